"""A source video (video-to-video): the timeline of the two clips, the request's options, and
``animate`` re-acting each source frame in place; its refusals, each one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facereenact.app.animate import animate_file
from facereenact.app.source_video import timeline
from facereenact.errors import InputError, NoFaceError, OptionError
from facereenact.io.image import read_image
from facereenact.io.video import VideoWriter, probe_video, read_frames
from facereenact.pipeline.composite import reenactment_box
from facereenact.pipeline.request import AnimateRequest, AudioFrom, GenerationMethod, LengthPolicy, VideoMotion
from facereenact.pipeline.source_video import reenacted_batches

WARP = GenerationMethod.warp


# ---- the timeline (no data needed) ---------------------------------------------------------------


def test_shortest_stops_with_the_shorter_clip() -> None:
    source, driving = timeline(10, 25.0, 6, 25.0, LengthPolicy.shortest)
    assert source.tolist() == [0, 1, 2, 3, 4, 5] and driving.tolist() == [0, 1, 2, 3, 4, 5]
    source, driving = timeline(4, 25.0, 6, 25.0, LengthPolicy.shortest)
    assert source.tolist() == driving.tolist() == [0, 1, 2, 3]


def test_loop_and_pingpong_last_as_long_as_the_driver() -> None:
    source, driving = timeline(3, 25.0, 8, 25.0, LengthPolicy.loop)
    assert source.tolist() == [0, 1, 2, 0, 1, 2, 0, 1] and driving.tolist() == list(range(8))
    source, _ = timeline(3, 25.0, 8, 25.0, LengthPolicy.pingpong)
    assert source.tolist() == [0, 1, 2, 1, 0, 1, 2, 1]
    source, _ = timeline(1, 25.0, 3, 25.0, LengthPolicy.pingpong)
    assert source.tolist() == [0, 0, 0]


def test_a_driver_at_another_rate_is_resampled_by_time() -> None:
    # 30 driving frames a second shown at 25: each output frame takes the driving frame on screen then.
    source, driving = timeline(100, 25.0, 30, 30.0, LengthPolicy.shortest)
    assert len(source) == 25 and driving[-1] == 28
    assert np.all(np.diff(driving) >= 1) and np.all(np.diff(driving) <= 2)
    # A slower driver: its frames repeat.
    _, driving = timeline(100, 30.0, 10, 15.0, LengthPolicy.shortest)
    assert driving.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9]


# ---- the request's options -----------------------------------------------------------------------


def test_the_video_options_take_their_names_and_refuse_others() -> None:
    request = AnimateRequest(video_motion="expression+pose", length="pingpong", audio="none")  # type: ignore[arg-type]
    assert (request.video_motion, request.length, request.audio) == (VideoMotion.expression_pose, LengthPolicy.pingpong, AudioFrom.none)
    with pytest.raises(OptionError, match="length bounce is not one of shortest, loop, pingpong"):
        AnimateRequest(length="bounce")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="audio both is not one of driving, source, none"):
        AnimateRequest(audio="both")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="expression_only and video_motion exclude each other"):
        AnimateRequest(expression_only=True, video_motion=VideoMotion.expression_pose)


def test_a_source_video_keeps_its_own_pose_unless_asked() -> None:
    assert not AnimateRequest().reenact_options(source_video=True).motion.transfer_pose
    assert AnimateRequest().reenact_options().motion.transfer_pose  # a photo: pose and expression, as before
    assert AnimateRequest(video_motion=VideoMotion.expression_pose).reenact_options(source_video=True).motion.transfer_pose
    lip_sync = AnimateRequest(regions="mouth").reenact_options(source_video=True).motion  # type: ignore[arg-type]
    assert lip_sync.transfer_expression and not lip_sync.transfer_pose


# ---- animate with a source video -----------------------------------------------------------------


def _clip(path: Path, frames: np.ndarray, fps: float = 25.0) -> Path:
    with VideoWriter(path, fps, crf=12) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if error == 0 else 10 * np.log10(255**2 / error)


def test_a_clip_driving_itself_gives_itself_back(fitter, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Each output frame is its own source frame moved by the driver's change: a clip that
    drives itself has nothing to change, so each frame comes back (the source's own head
    movement kept, not frame 0 repeated)."""
    clip = data_dir / "clips" / "st_radio2.mp4"
    output = tmp_path / "frames"
    report = animate_file(fitter, AnimateRequest(method=WARP, max_frames=8), clip, clip, output)
    written = sorted(output.iterdir())
    assert report.frames == len(written) == 8
    source = read_frames(clip, 8)
    made = np.stack([read_image(path) for path in written])
    assert made.shape == source.shape
    quality = [_psnr(m, s) for m, s in zip(made, source, strict=True)]
    assert min(quality) >= 33, f"PSNR to the source's own frames {[round(q, 1) for q in quality]}"
    # The source moves: frame 7 is not frame 0 (the output follows the source's frames).
    assert _psnr(made[7], source[0]) < min(quality) - 3


def test_the_output_has_the_sources_rate_and_the_chosen_audio(fitter, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = data_dir / "clips" / "pcavs_00098.mp4"  # 25 frames/s, with audio
    driving = data_dir / "clips" / "stk_trump.mp4"  # 30 frames/s, no audio
    output = tmp_path / "driven.mp4"
    request = AnimateRequest(method=WARP, crop_only=True, crop_size=128, max_frames=6, audio=AudioFrom.source)
    report = animate_file(fitter, request, source, driving, output)
    info = probe_video(output)
    assert report.frames == info.frame_count == 6 and info.fps == pytest.approx(25.0) and info.has_audio
    assert (info.width, info.height) == (128, 128)
    notes = report.notes("")
    assert sum("resampled" in note for note in notes) == 1, notes
    silent = tmp_path / "silent.mp4"
    report = animate_file(fitter, AnimateRequest(method=WARP, crop_only=True, crop_size=128, max_frames=4, audio=AudioFrom.driving), source, driving, silent)
    assert not probe_video(silent).has_audio
    none = tmp_path / "none.mp4"
    animate_file(fitter, AnimateRequest(method=WARP, crop_only=True, crop_size=128, max_frames=4, audio=AudioFrom.none), source, source, none)
    assert not probe_video(none).has_audio


def test_loop_repeats_a_short_source_for_the_whole_driver(fitter, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = _clip(tmp_path / "short.mp4", read_frames(data_dir / "clips" / "st_radio2.mp4", 3))
    driving = data_dir / "clips" / "hdtf_aoc.mp4"
    output = tmp_path / "loop"
    report = animate_file(fitter, AnimateRequest(method=WARP, crop_only=True, crop_size=96, length=LengthPolicy.loop, max_frames=7), source, driving, output)
    assert report.frames == 7  # the driver is longer than 3 frames: the source loops
    report = animate_file(fitter, AnimateRequest(method=WARP, crop_only=True, crop_size=96), source, driving, tmp_path / "shortest")
    assert report.frames == 3


def test_frames_without_the_source_face_pass_through_unchanged(fitter, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    frames = read_frames(data_dir / "clips" / "st_radio2.mp4", 9)
    frames[3:6] = 90  # the face gone for three frames
    source = _clip(tmp_path / "gap.mp4", frames)
    output = tmp_path / "frames"
    report = animate_file(fitter, AnimateRequest(method=WARP, max_frames=9), source, data_dir / "clips" / "pcavs_00098.mp4", output)
    decoded = read_frames(source)
    made = np.stack([read_image(path) for path in sorted(output.iterdir())])
    for index in (3, 4, 5):
        assert np.array_equal(made[index], decoded[index]), f"frame {index} was changed"
    lost = [line for line in report.warnings if "source face was lost" in line]
    assert len(lost) == 1 and "3–5" in lost[0], report.warnings
    assert not np.array_equal(made[8], decoded[8])  # the others are re-acted


def test_a_source_video_without_a_face_is_one_error(fitter, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blank = _clip(tmp_path / "wall.mp4", np.full((5, 128, 128, 3), 120, np.uint8))
    with pytest.raises(NoFaceError, match=r"no face found in any frame of the video \(source video wall.mp4\)"):
        animate_file(fitter, AnimateRequest(method=WARP), blank, data_dir / "clips" / "hdtf_aoc.mp4", tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_what_a_source_video_cannot_take_is_refused(fitter, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip, portrait = data_dir / "clips" / "pcavs_00098.mp4", data_dir / "portraits" / "lp_s1.jpg"
    with pytest.raises(InputError, match="the source .* is a video, so the result is one too"):
        animate_file(fitter, AnimateRequest(method=WARP), clip, clip, tmp_path / "out.png")
    with pytest.raises(InputError, match="is a still image: a source video needs a driving video"):
        animate_file(fitter, AnimateRequest(method=WARP), clip, portrait, tmp_path / "out.mp4")
    with pytest.raises(OptionError, match="face_index 1 is for a source photo"):
        animate_file(fitter, AnimateRequest(method=WARP, face_index=1), clip, clip, tmp_path / "out.mp4")
    with pytest.raises(OptionError, match="audio source is for a source video"):
        animate_file(fitter, AnimateRequest(method=WARP, audio=AudioFrom.source), portrait, clip, tmp_path / "out.mp4")
    assert not list(tmp_path.iterdir())


def test_the_batch_csv_takes_the_video_options_per_row(tmp_path: Path) -> None:
    from facereenact.app.batch import read_batch

    table = tmp_path / "jobs.csv"
    table.write_text("source,driving,length,audio,video_motion\na.mp4,b.mp4,pingpong,source,expression+pose\nc.mp4,d.mp4,,,\n")
    first, second = read_batch(table, tmp_path / "out")
    assert (first.request.length, first.request.audio, first.request.video_motion) == (LengthPolicy.pingpong, AudioFrom.source, VideoMotion.expression_pose)
    assert (second.request.length, second.request.audio, second.request.video_motion) == (LengthPolicy.shortest, AudioFrom.driving, VideoMotion.expression)
    table.write_text('source,driving,face_index\na.jpg,b.mp4,all\nc.jpg,d.mp4,"2,0"\n')
    assert [row.request.face_index for row in read_batch(table, tmp_path / "out")] == ["all", (0, 2)]
    table.write_text("source,driving,length\na.mp4,b.mp4,forever\n")
    with pytest.raises(InputError, match="jobs.csv line 2: length forever is not one of shortest, loop, pingpong"):
        read_batch(table, tmp_path / "out")


def test_compare_shows_the_source_frame_the_driving_frame_and_the_result(fitter, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    output = tmp_path / "panel"
    request = AnimateRequest(method=WARP, crop_only=True, crop_size=96, compare=True, max_frames=2)
    animate_file(fitter, request, data_dir / "clips" / "st_radio2.mp4", data_dir / "clips" / "pcavs_00098.mp4", output)
    panel = read_image(sorted(output.iterdir())[0])
    assert panel.shape == (96, 3 * 96, 3)


def test_a_photo_animated_without_audio(fitter, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    output = tmp_path / "silent.mp4"
    request = AnimateRequest(method=WARP, crop_only=True, crop_size=96, max_frames=3, audio=AudioFrom.none)
    animate_file(fitter, request, data_dir / "portraits" / "lp_s1.jpg", data_dir / "clips" / "hdtf_aoc.mp4", output)
    assert not probe_video(output).has_audio  # the driving clip has audio, left out as asked


def test_each_source_frame_is_warped_from_its_own_fit(fitter, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """A smoothed fit would leave a quick blink or lip movement of the source in its picture, on
    top of the driver's expression: each frame is warped from its own, and only its crop box
    follows the steady, smoothed track."""
    frames = read_frames(data_dir / "clips" / "st_radio2.mp4", 6)
    fit = fitter.track(list(frames), 25.0)
    assert fit.unsmoothed is not None
    options = AnimateRequest(method=WARP).reenact_options(source_video=True)
    at = np.arange(len(frames))
    (batch,) = reenacted_batches(fitter.model, options, frames, fit, frames, fit, at, at, None)
    assert batch.bound is not None
    assert torch.equal(batch.bound.params.expression.cpu(), fit.unsmoothed.expression.cpu())
    assert torch.equal(batch.bound.params.rotation.cpu(), fit.unsmoothed.rotation.cpu())
    assert np.allclose(batch.bound.boxes, [reenactment_box(points, options.crop_scale) for points in fit.landmarks])
