"""Digests of what the commands write, for checking that a change leaves outputs bit for bit.

Runs ``animate`` (warp and neural, video and still driving, pasted, crop-only and compare),
``fit`` (image and video), ``pncc`` and ``evaluate`` through the installed ``facereenact``
command on a fixed set of example inputs, and prints one SHA-256 per output: of the decoded
video frames and audio samples (not the container bytes, which carry muxer metadata), of each
array in an ``.npz``, and of JSON with its timing fields dropped. Run it before and after a
change and compare the two JSON files::

    python benchmarks/output_digests.py --out /tmp/before.json
    ...
    python benchmarks/output_digests.py --out /tmp/after.json --compare /tmp/before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import av
import numpy as np

SHARED = Path(os.environ.get("FACEREENACT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
TIMING_KEYS = {"seconds", "created"}


def _video_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            digest.update(frame.to_ndarray(format="rgb24").tobytes())
    with av.open(str(path)) as container:
        if container.streams.audio:
            for frame in container.decode(audio=0):
                digest.update(frame.to_ndarray().tobytes())
    return digest.hexdigest()


def _drop_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_drop_timing(v) for v in value]
    return value


def _digest(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in {".mp4", ".mov", ".mkv"}:
        return _video_digest(path)
    if suffix == ".npz":
        with np.load(path) as arrays:
            digest = hashlib.sha256()
            for name in sorted(arrays.files):
                digest.update(name.encode() + arrays[name].tobytes())
            return digest.hexdigest()
    if suffix == ".json":
        data = _drop_timing(json.loads(path.read_text()))
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    if suffix == ".html":
        return "(not compared: embeds timings)"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(args: list[str]) -> None:
    completed = subprocess.run([sys.executable, "-m", "facereenact", *args], capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"facereenact {' '.join(args)} failed:\n{completed.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file of digests to write")
    parser.add_argument("--compare", type=Path, help="an earlier run's JSON: report every difference")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--skip-evaluate", action="store_true")
    options = parser.parse_args()

    portrait = SHARED / "data/portraits/lp_s1.jpg"
    clip = SHARED / "data/clips/hdtf_aoc.mp4"
    still = SHARED / "data/portraits/lp_s5.jpg"
    short_clip = SHARED / "data/clips/vx_radio10.mp4"  # 61 frames with audio: decoded to its end
    n = str(options.frames)
    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        runs = {
            "animate-warp.mp4": ["animate", "-s", portrait, "-d", clip, "--method", "warp", "--max-frames", n],
            "animate-neural.mp4": ["animate", "-s", portrait, "-d", clip, "--max-frames", n],
            "animate-crop-compare.mp4": ["animate", "-s", portrait, "-d", clip, "--method", "warp", "--crop-only", "--compare", "--max-frames", n],
            "animate-absolute-expression.mp4": ["animate", "-s", portrait, "-d", clip, "--method", "warp", "--mode", "absolute", "--expression-only", "--max-frames", n],
            "animate-whole-clip.mp4": ["animate", "-s", portrait, "-d", short_clip, "--method", "warp"],
            "animate-whole-clip-neural-compare.mp4": ["animate", "-s", portrait, "-d", short_clip, "--compare"],
            "animate-still.png": ["animate", "-s", portrait, "-d", still, "--method", "warp"],
            "pncc.mp4": ["pncc", "-s", portrait, "-d", clip, "--max-frames", n],
        }
        for name, args in runs.items():
            output = work / name
            _run([{"-s": "--source", "-d": "--driving"}.get(str(a), str(a)) for a in args] + ["-o", str(output)])
            digests[name] = _digest(output)
        for name, target in {"fit-image": portrait, "fit-video": clip}.items():
            folder = work / name
            _run(["fit", str(target), "-o", str(folder), "--max-frames", n])
            for written in sorted(folder.iterdir()):
                digests[f"{name}/{written.name}"] = _digest(written)
        if not options.skip_evaluate:
            folder = work / "evaluation"
            _run(["evaluate", "--data", str(SHARED / "data"), "--clips", "hdtf_aoc,lp_d0", "--max-frames", "6", "--cross-frames", "4",
                  "--cross-sources", "1", "--bootstrap", "50", "--workers", "1", "--out", str(folder)])  # fmt: skip
            digests["evaluate/metrics.json"] = _digest(folder / "metrics.json")
            for strip in sorted((folder / "strips").iterdir()):
                digests[f"evaluate/strips/{strip.name}"] = _digest(strip)
    options.out.write_text(json.dumps(digests, indent=1) + "\n")
    for name, value in digests.items():
        print(f"{value[:16]}  {name}")
    if options.compare:
        before = json.loads(options.compare.read_text())
        differ = sorted(k for k in before.keys() | digests.keys() if before.get(k) != digests.get(k))
        print(f"{len(digests) - len(differ)} of {len(before.keys() | digests.keys())} outputs identical" + (f"; differ: {', '.join(differ)}" if differ else ""))
        if differ:
            sys.exit(1)


if __name__ == "__main__":
    main()
