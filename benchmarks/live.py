"""Live driving: speed as the user sees it, and how the causal smoothing behaves.

Speed: each clip is played at its own frame rate by the wall clock (what ``facereenact live
--driving CLIP --realtime`` does, a camera's stand-in) through the live engine at a 256² crop,
pasted into the portrait; frames/s delivered, capture → shown latency (median, 95th percentile),
frames dropped while the engine was busy, and the median cost of each of its two steps.

Smoothing: the same clip with every frame made (none dropped, the filter stepping at the clip's
own frame spacing), once with the causal One Euro filter and once without any smoothing:

- jitter ratio: the mean second difference of the output face's 68 landmarks (in the generated
  crop, over the face's size there) over the same of the driver's fitted landmarks (over its
  size in the camera frame). Below 1: the output shakes less than the driver's fit.
- lag: the shift (in frames, parabola-refined) that maximises the cross-correlation of the
  output head's yaw, pitch and roll (relative to the source's) with the driver's fitted ones
  (relative to its first frame). Positive: the output trails the driver.

Web (``--web``): the same through ``facereenact serve``'s Live tab protocol: the server under
uvicorn on a loopback port, a WebSocket client sending the clip's frames as JPEGs (encoded
beforehand, as the page's browser would) at the clip's rate by the clock; the server's own
figures (its stats message: receipt → sent) and the client's (sent → answer received).

Usage::

    python benchmarks/live.py [--data ../shared/data] [--clips hdtf_aoc stk_nice] [--portrait lp_s12] [--seconds 8] [--method warp|neural] [--web] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facereenact.app.live import LiveEngine, LiveFrame, LiveOptions  # noqa: E402
from facereenact.app.live_run import PlayedFile, run_live  # noqa: E402
from facereenact.app.locations import resolve_assets  # noqa: E402
from facereenact.face3d.fitter import FaceFitter  # noqa: E402
from facereenact.face3d.params import rotation_to_angles  # noqa: E402
from facereenact.io.image import read_image  # noqa: E402
from facereenact.model.inference import load_stage  # noqa: E402
from facereenact.pipeline.reenactor import ReenactOptions  # noqa: E402
from facereenact.pipeline.request import resolve_checkpoint  # noqa: E402

MAX_LAG = 8


def jitter(landmarks: np.ndarray) -> float:
    """Mean |second difference| of landmarks (T, 68, ≥2) over the face's size (its extent)."""
    points = landmarks[..., :2]
    size = np.ptp(points, axis=1).max(-1).mean()
    return float(np.abs(np.diff(points, 2, axis=0)).mean() / size)


def angles(rotations: np.ndarray) -> np.ndarray:
    """(T, 3) yaw, pitch, roll in degrees of rotations (T, 3, 3)."""
    return rotation_to_angles(torch.from_numpy(np.ascontiguousarray(rotations, dtype=np.float32))).numpy()


def lag(driver: np.ndarray, output: np.ndarray) -> float:
    """Frames by which ``output`` (T, K) trails ``driver`` (T, K): the argmax of the summed
    normalised cross-correlation over shifts up to MAX_LAG, refined by a parabola."""
    a = (driver - driver.mean(0)) / driver.std(0).clip(1e-9)
    b = (output - output.mean(0)) / output.std(0).clip(1e-9)
    shifts = np.arange(-MAX_LAG, MAX_LAG + 1)
    scores = np.array([(a[: len(a) - s] * b[s:]).mean() if s >= 0 else (a[-s:] * b[: len(b) + s]).mean() for s in shifts])
    best = int(np.argmax(scores))
    if 0 < best < len(shifts) - 1:
        left, centre, right = scores[best - 1 : best + 2]
        return float(shifts[best] + 0.5 * (left - right) / (left - 2 * centre + right))
    return float(shifts[best])


def smoothing(results: list[LiveFrame]) -> dict[str, float]:
    found = [r for r in results if r.found and r.driving_landmarks is not None and r.driving_rotation is not None]
    driver_rotations = np.stack([r.driving_rotation for r in found])  # type: ignore[misc]
    relative = driver_rotations @ driver_rotations[0].T
    return {
        "frames": len(found),
        "jitter_ratio": round(jitter(np.stack([r.output_landmarks for r in found])) / jitter(np.stack([r.driving_landmarks for r in found])), 3),  # type: ignore[misc]
        "lag_frames": round(lag(angles(relative), angles(np.stack([r.output_rotation for r in found]))), 2),
    }


def play(fitter: FaceFitter, portrait: np.ndarray, clip: Path, method: object, realtime: bool, smooth: bool, seconds: float) -> tuple[dict, list[LiveFrame]]:
    results: list[LiveFrame] = []
    with LiveEngine(fitter, portrait, ReenactOptions(), method, LiveOptions(smooth=smooth)) as engine:  # type: ignore[arg-type]
        stats = run_live(engine, PlayedFile(clip, realtime), None, False, seconds, results.append)
    return stats.summary(), results


def web(fitter: FaceFitter, portrait: Path, clip: Path, seconds: float) -> dict:
    """A live session of the web server driven by ``clip`` at its own rate; both ends' figures."""
    import socket
    import struct
    import threading
    import urllib.request

    import cv2
    import uvicorn
    from websockets.sync.client import connect

    from facereenact.io.video import iter_frames, probe_video
    from facereenact.web.app import create_app
    from facereenact.web.settings import ServerSettings

    fps = probe_video(clip).fps
    jpegs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes() for f in iter_frames(clip, round(seconds * fps))]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ServerSettings(), fitter=fitter), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"127.0.0.1:{port}"
    upload = urllib.request.Request(f"http://{base}/api/uploads/source?name=p.jpg", portrait.read_bytes(), {"Content-Type": "application/octet-stream"})
    source = json.loads(urllib.request.urlopen(upload).read())["id"]
    latencies: list[float] = []
    received: list[float] = []
    server_stats: dict = {}
    try:
        with connect(f"ws://{base}/api/live?source={source}", origin=f"http://{base}", max_size=None) as ws:  # type: ignore[arg-type]
            while json.loads(ws.recv()).get("type") != "ready":
                pass

            def send() -> None:
                start = time.monotonic()
                for index, jpeg in enumerate(jpegs):
                    time.sleep(max(0.0, start + index / fps - time.monotonic()))
                    ws.send(struct.pack("<d", time.monotonic() * 1000) + jpeg)
                time.sleep(0.5)
                ws.send(json.dumps({"type": "ping"}))  # one last stats message

            sender = threading.Thread(target=send)
            sender.start()
            deadline = time.monotonic() + seconds + 3
            while time.monotonic() < deadline:
                try:
                    message = ws.recv(timeout=1)
                except TimeoutError:
                    continue
                if isinstance(message, bytes):
                    received.append(time.monotonic())
                    latencies.append(received[-1] * 1000 - struct.unpack_from("<d", message)[0])
                else:
                    server_stats = json.loads(message)
            sender.join()
    finally:
        server.should_exit = True
    return {
        "sent": len(jpegs), "fps_in": round(fps, 2),
        "client_fps": round((len(received) - 1) / (received[-1] - received[0]), 2),
        "client_latency_p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "client_latency_p95_ms": round(float(np.percentile(latencies, 95)), 1),
        "server": {k: server_stats.get(k) for k in ("delivered", "fps", "latency_p50_ms", "latency_p95_ms", "dropped", "follow_p50_ms", "make_p50_ms")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--clips", nargs="+", default=["hdtf_aoc", "stk_nice"])
    parser.add_argument("--portrait", default="lp_s12")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--method", choices=["warp", "neural"], default="warp")
    parser.add_argument("--skip-smoothing", action="store_true")
    parser.add_argument("--web", action="store_true", help="through the web server's Live protocol instead")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as `facereenact live`: one core tracks, the other generates
    fitter = FaceFitter(resolve_assets(None))
    method = load_stage(resolve_checkpoint(None)) if args.method == "neural" else None
    portrait = read_image(args.data / "portraits" / f"{args.portrait}.jpg")
    report = []
    for name in args.clips:
        clip = args.data / "clips" / f"{name}.mp4"
        started = time.time()
        if args.web:
            row = {"clip": name, "web": web(fitter, args.data / "portraits" / f"{args.portrait}.jpg", clip, args.seconds), "load_average": round(os.getloadavg()[0], 2)}
            print(json.dumps(row), flush=True)
            report.append(row)
            continue
        speed, delivered = play(fitter, portrait, clip, method, True, True, args.seconds)
        row: dict = {"clip": name, "method": args.method, "fps_in": round(PlayedFile(clip, True).fps, 2), **speed}
        row["realtime_jitter_ratio"] = smoothing(delivered)["jitter_ratio"]
        if not args.skip_smoothing:
            _, every = play(fitter, portrait, clip, method, False, True, None)
            _, raw = play(fitter, portrait, clip, method, False, False, None)
            row["smoothed"], row["unsmoothed"] = smoothing(every), smoothing(raw)
        row["load_average"] = round(os.getloadavg()[0], 2)  # other work on the machine while it ran
        row["seconds"] = round(time.time() - started, 1)
        print(json.dumps(row), flush=True)
        report.append(row)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
