"""Where a warp-refining model acts: L1 inside the warp's holes, warp against a neural model.

Whole-frame metrics hardly see a model that changes only the holes (a few percent of the
pixels), so this measures the holes alone: self-reenactment on prepared clips, source = each
clip's first frame with a face, driving = every ``--every``-th frame after it (at most
``--max-frames``), at the prepared crop size. The region is the warp's hole mask grown and
feathered as the holes-only generator grows it (any pixel it can touch). Prints L1 inside that
region and over the whole crop, per clip and pooled over pixels:

    python benchmarks/hole_error.py --prepared prepared/ \\
        --clips mimic_trump,stk_trump,pcavs_00086,st_radio2,stk_sadgirl [--model CHECKPOINT]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from facereenact.app.locations import resolve_assets
from facereenact.face3d.morphable import identity_matched, load_morphable_model
from facereenact.model.generator import hole_region
from facereenact.model.inference import load_stage
from facereenact.model.release import shipped_checkpoint
from facereenact.stage import WarpTargets
from facereenact.train.clipstore import load_clip
from facereenact.warp.geometric import GeometricWarp
from facereenact.warp.head import HeadEllipsoid, head_field


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, required=True, help="a folder written by facereenact prepare")
    parser.add_argument("--clips", required=True, help="comma-separated clip names (the held-out ones)")
    parser.add_argument("--model", type=Path, help="checkpoint (default: the shipped model)")
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--max-frames", type=int, default=30)
    parser.add_argument("--assets", type=Path)
    args = parser.parse_args()

    morphable = load_morphable_model(resolve_assets(args.assets))
    stage = load_stage(args.model or shipped_checkpoint())
    pooled = {"warp": np.zeros(2), "neural": np.zeros(2)}  # (error inside, error over the crop)
    region_pixels, crop_pixels = 0.0, 0.0
    for name in args.clips.split(","):
        clip = load_clip(args.prepared / "clips" / f"{name}.npz")
        found = np.flatnonzero(clip.found)
        source_index = int(found[0])
        driving = found[found > source_index][:: args.every][: args.max_frames]

        def crops(indices: list[int]) -> torch.Tensor:
            return torch.stack([torch.from_numpy(clip.crop(i)) for i in indices]).permute(0, 3, 1, 2).float() / 255  # noqa: B023

        source_crop, real = crops([source_index]), crops([int(i) for i in driving])
        size = source_crop.shape[-1]
        source = clip.face_params([source_index])
        repeated = source[[0] * len(driving)]
        target = identity_matched(repeated, clip.face_params(driving))
        source_vertices = morphable.vertices(source)
        targets = WarpTargets(morphable.vertices(target), morphable.landmarks(target), head_field(HeadEllipsoid.of(morphable, source.shape), repeated, target, size))
        with torch.inference_mode():
            warped = GeometricWarp(morphable, source_vertices, size)(source_crop, targets)
            neural = stage.bound_to(morphable, source_vertices, source_crop)(source_crop, targets)
        region = (hole_region(warped.holes) > 0).float()
        line = [f"{name}: {len(driving)} frames, {int((warped.holes.flatten(1).amax(1) > 0).sum())} with holes, {float(region.sum()) / len(driving):.0f} region px/frame"]
        for method, images in (("warp", warped.images), ("neural", neural.images)):
            error = (images - real).abs().mean(1, keepdim=True)
            inside, whole = float((error * region).sum()), float(error.sum())
            pooled[method] += (inside, whole)
            line.append(f"{method} L1 inside {inside / max(float(region.sum()), 1):.4f}, crop {whole / error.numel():.5f}")
        region_pixels += float(region.sum())
        crop_pixels += real[:, 0].numel()
        print("; ".join(line))
    for method, (inside, whole) in pooled.items():
        print(f"{method}: L1 inside the hole region {inside / max(region_pixels, 1):.4f}, over whole crops {whole / crop_pixels:.5f}")


if __name__ == "__main__":
    main()
