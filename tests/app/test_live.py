"""Live driving: the latest-frame-wins mailbox, the causal smoother, the engine on a real clip
(a face leaving and coming back, re-centring) and ``facereenact live`` on good and bad input."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from facereenact.app.live import Captured, LatestFrame, LiveEngine, LiveFrame, LiveOptions, LiveStats, blend, drive
from facereenact.face3d.params import FaceParams, angles_to_rotation
from facereenact.face3d.smoothing import POSE_SETTINGS, CausalSmoother, OneEuro, one_euro
from facereenact.io.video import VideoWriter, iter_frames, read_frames
from tests.cli_inputs import run_cli

CLIP = "hdtf_aoc"
PORTRAIT = "lp_s12"


def _params(yaw: float = 0.0, batch: int = 1) -> FaceParams:
    angles = torch.tensor([[yaw, 0.0, 0.0]]).expand(batch, 3)  # degrees
    return FaceParams(
        rotation=angles_to_rotation(angles), scale=torch.full((batch,), 0.002), translation=torch.zeros(batch, 2),
        shape=torch.zeros(batch, 40), expression=torch.zeros(batch, 10),
    )  # fmt: skip


def _angle(rotation: np.ndarray) -> float:
    """Degrees of turn of a rotation matrix (3, 3)."""
    return math.degrees(math.acos(float(np.clip((np.trace(rotation) - 1) / 2, -1, 1))))


# ---- the mailbox ------------------------------------------------------------------------------
def test_the_newest_frame_wins_and_the_replaced_ones_are_counted() -> None:
    inbox: LatestFrame[int] = LatestFrame()
    for item in range(5):
        inbox.put(item)
    assert inbox.take() == 4 and inbox.dropped == 4
    inbox.put(5)
    inbox.close()
    assert inbox.take() == 5, "what waits when the mailbox closes is still taken"
    assert inbox.take() is None and inbox.dropped == 4


def test_a_waiting_put_drops_nothing() -> None:
    inbox: LatestFrame[int] = LatestFrame()
    taken: list[int] = []

    def consume() -> None:
        while (item := inbox.take()) is not None:
            taken.append(item)
            time.sleep(0.002)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for item in range(20):
        inbox.put(item, wait=True)
    inbox.close()
    consumer.join(5)
    assert taken == list(range(20)) and inbox.dropped == 0


# ---- the causal smoother ----------------------------------------------------------------------
def test_one_euro_state_is_the_offline_filter_step_by_step() -> None:
    signal = torch.randn(40, 3).cumsum(0)
    state = OneEuro(POSE_SETTINGS)
    stepped = torch.stack([state(sample, 1 / 25) for sample in signal])
    assert torch.allclose(stepped, one_euro(signal, 25, POSE_SETTINGS), atol=1e-6)


def test_the_causal_smoother_never_looks_ahead_and_calms_jitter() -> None:
    generator = torch.Generator().manual_seed(0)
    yaws = 10 * torch.sin(torch.linspace(0, 3, 60)) + 0.5 * torch.randn(60, generator=generator)
    frames = [_params(float(y)) for y in yaws]

    def run(items: list[FaceParams]) -> np.ndarray:
        smoother = CausalSmoother(torch.ones(50))
        return np.array([smoother(p, 1 / 25).angles()[0, 0].item() for p in items])

    smoothed = run(frames)
    changed_future = run(frames[:30] + [_params(30.0)] * 30)
    np.testing.assert_allclose(smoothed[:30], changed_future[:30], atol=1e-6)  # frame t sees nothing after t
    raw = yaws.numpy()
    assert np.abs(np.diff(smoothed, 2)).mean() < 0.5 * np.abs(np.diff(raw, 2)).mean()


def test_blend_goes_from_one_pose_to_the_other_along_the_turn() -> None:
    a, b = _params(20.0), _params(-10.0)
    assert torch.allclose(blend(a, b, 0.0).rotation, a.rotation, atol=1e-5)
    assert torch.allclose(blend(a, b, 1.0).rotation, b.rotation, atol=1e-5)
    assert blend(a, b, 0.5).angles()[0, 0].item() == pytest.approx(5.0, abs=1e-2)


def test_stats_measure_latency_rate_and_drops() -> None:
    stats = LiveStats()
    for index in range(11):
        captured = Captured(np.zeros((2, 2, 3), np.uint8), 100.0 + index * 0.04, index * 0.04, index)
        frame = LiveFrame(np.zeros((2, 2, 3), np.uint8), captured, index % 2 == 0, False, 0.01, 0.02, None, None, np.zeros((68, 3)), np.eye(3))
        stats.record(frame, captured.captured_at + 0.05 + 0.01 * (index == 10))
    summary = stats.summary()
    assert summary["delivered"] == 11 and summary["no_face"] == 5
    assert summary["latency_p50_ms"] == pytest.approx(50.0) and summary["latency_p95_ms"] > 50.0
    assert summary["fps"] == pytest.approx(10 / 0.41, rel=1e-3)
    assert summary["follow_p50_ms"] == pytest.approx(10.0) and summary["make_p50_ms"] == pytest.approx(20.0)


# ---- the engine on real frames ----------------------------------------------------------------
@pytest.fixture(scope="module")
def clip_frames(data_dir: Path) -> list[np.ndarray]:
    return list(iter_frames(data_dir / "clips" / f"{CLIP}.mp4", 30))


@pytest.fixture(scope="module")
def source_image(portraits: dict[str, np.ndarray]) -> np.ndarray:
    return portraits[PORTRAIT]


def test_the_portrait_follows_then_holds_then_eases_back_when_the_face_leaves(fitter, clip_frames, source_image) -> None:  # type: ignore[no-untyped-def]
    live = LiveOptions(hold_seconds=0.2, ease_seconds=0.4, max_size=256)
    # The driver turned: the clip's later frames mirrored about a different start (a clear turn).
    turned = [np.ascontiguousarray(f[:, ::-1]) for f in clip_frames[:10]]
    blank = np.zeros_like(clip_frames[0])
    frames = clip_frames[:10] + turned + [blank] * 20 + clip_frames[:3]
    results: list[LiveFrame] = []
    with LiveEngine(fitter, source_image, live=live) as engine:
        for index, frame in enumerate(frames):
            results.append(engine.process(Captured(frame, time.monotonic(), index / 25, index)))
    assert all(r.found for r in results[:20]) and not any(r.found for r in results[20:40])
    assert results[0].image.shape[0] <= 256 and max(results[0].image.shape[:2]) == 256
    assert _angle(results[0].output_rotation) < 0.5, "the first frame is the reference: the source's own pose"
    last_seen = results[19].output_rotation
    held = results[20 + 4]  # 0.16 s after: still holding
    assert held.resting and _angle(held.output_rotation @ last_seen.T) < 0.5
    eased = results[39]  # 0.8 s after: past hold + ease
    assert _angle(eased.output_rotation) < 0.5 and _angle(last_seen) > 2 * 0.5
    between = results[20 + 10]  # 0.4 s after: on the way
    assert 0.5 < _angle(between.output_rotation) < _angle(last_seen)
    assert results[-1].found and not results[-1].resting


def test_recentre_takes_the_next_face_as_the_source_pose(fitter, clip_frames, source_image) -> None:  # type: ignore[no-untyped-def]
    turned = np.ascontiguousarray(clip_frames[0][:, ::-1])
    with LiveEngine(fitter, source_image, live=LiveOptions(smooth=False, max_size=128)) as engine:
        engine.process(Captured(clip_frames[0], 0.0, 0.0, 0))
        before = engine.process(Captured(turned, 0.0, 0.04, 1))
        engine.recentre()
        after = engine.process(Captured(turned, 0.0, 0.08, 2))
        again = engine.process(Captured(clip_frames[0], 0.0, 0.12, 3))
    assert _angle(before.output_rotation) > 2.0
    assert _angle(after.output_rotation) < 0.1
    assert _angle(again.output_rotation) == pytest.approx(_angle(before.output_rotation), abs=3.0)  # the way back: as far, tracked from another box


def test_drive_drops_what_arrives_while_busy_and_keeps_latency_bounded(fitter, clip_frames, source_image) -> None:  # type: ignore[no-untyped-def]
    inbox: LatestFrame[Captured] = LatestFrame()
    stats = LiveStats()
    shown: list[int] = []

    def feed() -> None:  # 40 frames at 400 frames/s: far faster than any engine here
        for index in range(40):
            inbox.put(Captured(clip_frames[index % len(clip_frames)], time.monotonic(), index / 400, index))
            time.sleep(1 / 400)
        inbox.close()

    with LiveEngine(fitter, source_image, live=LiveOptions(max_size=128)) as engine:
        feeder = threading.Thread(target=feed)
        feeder.start()
        drive(engine, inbox, lambda r: shown.append(r.captured.index), stats)
        feeder.join()
    assert stats.dropped > 0 and stats.delivered + stats.dropped == 40
    assert shown == sorted(shown) and shown[-1] == 39, "the newest frame is the one made"
    slowest = max(f + m for f, m in zip(stats.follow, stats.make))
    assert max(stats.latencies) < 3 * slowest + 0.1, "no frame waited behind a queue"


# ---- the command line -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--camera", "0", "--driving", "x.mp4", "-o", "o.mp4"], "--camera and --driving exclude each other"),
        (["--realtime", "-o", "o.mp4"], "--realtime plays a --driving video"),
        (["--driving", "x.mp4", "--no-preview"], "write it with --output FILE"),
        (["--driving", "x.mp4", "--preview", "-o", "o.mp4"], "no display to show a window on"),
    ],
)
def test_live_refuses_bad_combinations(args: list[str], expected: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = run_cli("live", *args)
    assert result.exit_code == 1 and result.output.startswith("error:") and expected in result.output, result.output


def test_live_refuses_an_image_output_and_a_missing_camera(assets, data_dir, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FACEREENACT_ASSETS", str(assets.root))
    clip = data_dir / "clips" / f"{CLIP}.mp4"
    result = run_cli("live", "--driving", clip, "-o", tmp_path / "out.png")
    assert result.exit_code == 1 and "the live result is a video" in result.output
    result = run_cli("live", "--camera", "7", "-o", tmp_path / "out.mp4", "--source", data_dir / "portraits" / f"{PORTRAIT}.jpg")
    assert result.exit_code == 1 and "cannot open camera 7" in result.output.splitlines()[-1]
    assert not (tmp_path / "out.mp4").exists()


def test_live_from_a_file_writes_every_frame_and_reports(assets, data_dir, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FACEREENACT_ASSETS", str(assets.root))
    clip = tmp_path / "short.mp4"
    with VideoWriter(clip, 25) as writer:
        writer.write_batch(np.stack(list(iter_frames(data_dir / "clips" / f"{CLIP}.mp4", 12))))
    output = tmp_path / "live.mp4"
    threads = torch.get_num_threads()
    result = run_cli("live", "--source", data_dir / "portraits" / f"{PORTRAIT}.jpg", "--driving", clip, "-o", output, "--max-size", "200")
    assert result.exit_code == 0, result.output
    assert "12 frames shown" in result.output and "0 dropped" in result.output
    frames = read_frames(output)
    assert len(frames) == 12 and max(frames.shape[1:3]) == 200
    assert torch.get_num_threads() == threads


def _short_clip(data_dir: Path, folder: Path, frames: int = 12) -> Path:
    clip = folder / "short.mp4"
    with VideoWriter(clip, 25) as writer:
        writer.write_batch(np.stack(list(iter_frames(data_dir / "clips" / f"{CLIP}.mp4", frames))))
    return clip


def test_a_file_played_in_real_time_keeps_its_clock_and_drops_for_a_slow_engine(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from facereenact.app.live_run import PlayedFile

    played = PlayedFile(_short_clip(data_dir, tmp_path), realtime=True)
    inbox: LatestFrame[Captured] = LatestFrame()
    taken: list[Captured] = []

    def slow_engine() -> None:
        while (captured := inbox.take()) is not None:
            taken.append(captured)
            time.sleep(0.1)  # 2.5 frame periods a frame

    consumer = threading.Thread(target=slow_engine)
    consumer.start()
    started = time.monotonic()
    played.run(inbox, threading.Event())
    inbox.close()
    consumer.join(5)
    assert time.monotonic() - started >= 11 / 25, "paced by the clock, not as fast as it decodes"
    assert inbox.dropped + played.skipped > 0 and len(taken) + inbox.dropped + played.skipped == 12
    assert taken[-1].index == 11 and all(c.time == pytest.approx(c.index / 25) for c in taken)
    due = np.array([c.captured_at - c.time for c in taken])
    assert np.ptp(due) < 1e-6, "each frame is stamped with the time a camera would have given it"


def test_the_written_file_holds_each_output_through_the_frames_dropped_after_it() -> None:
    from facereenact.app.live_run import _HeldWriter

    class Sink:
        def __init__(self) -> None:
            self.frames: list[int] = []

        def write(self, frame: np.ndarray) -> None:
            self.frames.append(int(frame[0, 0, 0]))

    sink = Sink()
    held = _HeldWriter(sink)  # type: ignore[arg-type]
    for index in (0, 3, 4, 7):
        captured = Captured(np.zeros((2, 2, 3), np.uint8), 0.0, 0.0, index)
        held.write(LiveFrame(np.full((2, 2, 3), index, np.uint8), captured, True, False, 0, 0, None, None, np.zeros((68, 3)), np.eye(3)))
    held.finish(10)  # the capture went on to frame 9: dropped at the end
    assert sink.frames == [0, 0, 0, 3, 4, 4, 4, 7, 7, 7]


def test_live_in_real_time_writes_a_file_as_long_as_the_clip(assets, data_dir, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FACEREENACT_ASSETS", str(assets.root))
    output = tmp_path / "live.mp4"
    clip = _short_clip(data_dir, tmp_path, 25)
    result = run_cli("live", "--source", data_dir / "portraits" / f"{PORTRAIT}.jpg", "--driving", clip, "--realtime", "-o", output, "--max-size", "128")
    assert result.exit_code == 0, result.output
    assert "frames/s; latency median" in result.output
    assert len(read_frames(output)) == 25, "one output per captured frame, dropped ones held"


def test_bench_reports_live_rows_with_latency(assets, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from facereenact.app.bench import run_live as bench_live

    clip = _short_clip(data_dir, tmp_path, 10)
    threads = torch.get_num_threads()
    report = bench_live(assets, data_dir / "portraits" / f"{PORTRAIT}.jpg", clip, 10)
    rows = {stage: (fps, note) for stage, fps, note in report.rows}
    assert "live --method warp" in rows and rows["live --method warp"][0] > 0
    assert "latency p50" in rows["live --method warp"][1] and "frames dropped" in rows["live --method warp"][1]
    assert torch.get_num_threads() == threads
