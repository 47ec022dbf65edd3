"""Per-frame cost of each stage of ``prepare`` on one core, and what it projects to for a
dataset of a given size on N nodes: the numbers behind the README's "Scaling out" projection.

    python benchmarks/prepare_stages.py ../shared/data/clips --clips 8 --max-frames 150

Each sampled clip goes through the stages ``prepare_clip`` runs (decode, fit with tracking,
crop boxes and crops, JPEG coding), each timed on its own with one torch thread, then through
``prepare_clip`` itself (which decodes twice and writes the file) for the end-to-end cost.
Costs are CPU time (core-seconds, what a cluster bills and what other work on a shared machine
does not inflate much); wall time is printed beside. The projection multiplies the end-to-end
per-frame CPU cost by the dataset's frame count.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from facereenact.app.locations import resolve_assets
from facereenact.face3d.fitter import FaceFitter
from facereenact.io.video import iter_frames, probe_video
from facereenact.pipeline.composite import crop
from facereenact.train.clipstore import encode_crops
from facereenact.train.prepare import ClipToPrepare, find_videos, prepare_clip, stable_boxes


class Clock:
    """CPU and wall seconds per stage, summed over calls."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        cpu, wall = time.process_time(), time.perf_counter()
        yield
        self.cpu[stage] = self.cpu.get(stage, 0.0) + time.process_time() - cpu
        self.wall[stage] = self.wall.get(stage, 0.0) + time.perf_counter() - wall


def measure(videos: list[Path], fitter: FaceFitter, size: int, max_frames: int) -> tuple[Clock, int]:
    """The stages' times over ``videos``, and the frames they processed."""
    clock = Clock()
    frames = 0
    with tempfile.TemporaryDirectory() as folder:
        for video in videos:
            info = probe_video(video)
            with clock("decode"):
                decoded = list(iter_frames(video, max_frames))
            with clock("fit"):
                fit = fitter.track(decoded, info.fps)
            boxes = stable_boxes(fit.landmarks, fit.found, info.fps)
            with clock("crop"):
                crops = [crop(frame, box, size) for frame, box in zip(decoded, boxes)]
            with clock("jpeg"):
                encode_crops(crops)
            with clock("end to end"):
                prepare_clip(fitter, ClipToPrepare(video, video.stem, video.stem), Path(folder) / f"{video.stem}.npz", size, max_frames)
            frames += len(decoded)
    return clock, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", type=Path)
    parser.add_argument("--clips", type=int, default=8, help="clips sampled evenly from the folder")
    parser.add_argument("--max-frames", type=int, default=150)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--assets", type=Path, default=None)
    parser.add_argument("--dataset-frames", type=float, default=2442 * 3600 * 25, help="frames to project for (default: VoxCeleb2, 2,442 h at 25 fps)")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--cores-per-node", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    fitter = FaceFitter(resolve_assets(args.assets))
    videos = find_videos(args.videos)
    step = max(1, len(videos) // args.clips)
    sample = videos[::step][: args.clips]
    fitter.track(list(iter_frames(sample[0], 8)), 25.0)  # warm-up (first-call allocations, JIT)
    clock, frames = measure(sample, fitter, args.size, args.max_frames)
    print(f"{len(sample)} clips, {frames} frames, one torch thread, {args.size}² crops; per frame:")
    for stage, seconds in clock.cpu.items():
        print(f"  {stage:<11} {1000 * seconds / frames:7.2f} ms CPU  ({1000 * clock.wall[stage] / frames:7.2f} ms wall)")
    cost = clock.cpu["end to end"] / frames
    core_hours = args.dataset_frames * cost / 3600
    print(f"projection: {args.dataset_frames / 1e6:.1f} M frames × {1000 * cost:.1f} ms = {core_hours:,.0f} core-hours")
    for nodes in args.nodes:
        print(f"  {nodes:>3} node(s) × {args.cores_per_node} cores: {core_hours / (nodes * args.cores_per_node):,.1f} h wall (perfect scaling)")


if __name__ == "__main__":
    main()
