"""``animate`` as a use case: one pass over the driving video, the request's options honoured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from facereenact.app.animate import animate_file
from facereenact.io import video
from facereenact.io.video import probe_video
from facereenact.pipeline.request import AnimateRequest, GenerationMethod

FRAMES = 12


@pytest.mark.parametrize("compare", [False, True])
def test_the_driving_video_is_opened_once_and_decoded_once(fitter, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compare: bool) -> None:  # type: ignore[no-untyped-def]
    """Tracking, the driving mouths, ``compare`` and the soundtrack all come from one decode."""
    clip = data_dir / "clips" / "hdtf_aoc.mp4"
    opened: list[str] = []
    decoded: list[int] = []
    real_open, real_decode = av.open, video._decode_frames

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def counting_decode(file: Path, *args: Any, **kwargs: Any) -> Iterator[np.ndarray]:
        for frame in real_decode(file, *args, **kwargs):
            if file == clip:
                decoded.append(1)
            yield frame

    monkeypatch.setattr(video.av, "open", counting_open)
    monkeypatch.setattr(video, "_decode_frames", counting_decode)
    output = tmp_path / "out.mp4"
    request = AnimateRequest(method=GenerationMethod.warp, max_frames=FRAMES, compare=compare)
    report = animate_file(fitter, request, data_dir / "portraits" / "lp_s1.jpg", clip, output)
    monkeypatch.undo()
    assert opened.count(str(clip)) == 1, f"the driving clip was opened {opened.count(str(clip))} times"
    assert len(decoded) == FRAMES, f"{len(decoded)} frames decoded for {FRAMES} animated"
    info = probe_video(output)
    assert report.frames == info.frame_count == FRAMES and info.has_audio


def test_frame_zero_of_a_self_reenactment_is_the_source_photo(fitter, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """Relative motion with no change yet: the pasted frame is the photo, not a re-made copy."""
    from facereenact.io.video import read_frames
    from facereenact.pipeline.reenactor import Reenactor

    clip = data_dir / "clips" / "st_radio2.mp4"
    frames = read_frames(clip, 4)
    fit = fitter.track(list(frames), probe_video(clip).fps)
    reenactor = Reenactor(frames[0], fitter)
    pasted = reenactor.reenact(fit.params[:1], fit.params[0], frames=frames[:1]).frames
    assert pasted is not None
    error = np.mean((pasted[0].astype(np.float64) - frames[0]) ** 2)
    assert error == 0 or 10 * np.log10(255**2 / error) >= 45, f"frame 0 is {10 * np.log10(255**2 / error):.1f} dB from the source"


def test_a_folder_of_frames_capped_in_size(fitter, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from facereenact.io.image import read_image

    output = tmp_path / "frames"
    request = AnimateRequest(method=GenerationMethod.warp, max_frames=5, max_size=300)
    report = animate_file(fitter, request, data_dir / "portraits" / "lp_s1.jpg", data_dir / "clips" / "hdtf_aoc.mp4", output)
    written = sorted(output.iterdir())
    assert report.frames == len(written) == 5
    assert max(read_image(written[0]).shape[:2]) == 300
    assert any("audio is not in them" in note for note in report.notes("")), "the clip's audio could not come along: said"


@pytest.mark.slow
def test_a_36_megapixel_portrait_animates_in_under_4_gb(data_dir: Path, tmp_path: Path) -> None:
    """The paste-back works band by band and frame by frame, and the encoder keeps few huge
    frames: a 6000² portrait animates with the command's defaults in a bounded memory."""
    import resource
    import subprocess
    import sys

    import cv2

    from facereenact.io.image import read_image, write_image

    portrait = tmp_path / "huge.jpg"
    write_image(portrait, cv2.resize(read_image(data_dir / "portraits" / "lp_s1.jpg"), (6000, 6000), interpolation=cv2.INTER_CUBIC))
    output = tmp_path / "huge.mp4"
    command = [sys.executable, "-m", "facereenact", "animate", "-s", str(portrait), "-d", str(data_dir / "clips" / "hdtf_aoc.mp4"), "--max-frames", "16", "-o", str(output)]
    completed = subprocess.run(command, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    peak_bytes = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    assert peak_bytes < 4e9, f"peak RSS {peak_bytes / 1e9:.2f} GB"
    info = probe_video(output)
    assert (info.width, info.height, info.frame_count) == (6000, 6000, 16)


def test_frames_whose_eyes_could_not_be_read_are_named_once() -> None:
    from facereenact.app.animate import AnimateReport

    notes = AnimateReport(Path("out.mp4"), 40, unread_ranges=[(3, 5), (9, 9)]).notes("")
    said = [note for note in notes if "could not be read" in note]
    assert len(said) == 1 and "3–5, 9" in said[0]


@pytest.mark.parametrize("spelling", ["same", "dot", "symlink", "hardlink"])
@pytest.mark.parametrize("role", ["source", "driving"])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str, role: str) -> None:
    import os
    import shutil

    from facereenact.errors import InputError

    source, driving = tmp_path / "portrait.jpg", tmp_path / "clip.mp4"
    shutil.copy(data_dir / "portraits" / "lp_s1.jpg", source)
    shutil.copy(data_dir / "clips" / "hdtf_aoc.mp4", driving)
    target = source if role == "source" else driving
    before = target.read_bytes()
    monkeypatch.chdir(tmp_path)
    if spelling == "same":
        output = target
    elif spelling == "dot":
        output = Path(".") / target.name
    elif spelling == "symlink":
        output = tmp_path / "link"
        output.symlink_to(target)
    else:
        output = tmp_path / "hard"
        os.link(target, output)
    request = AnimateRequest(method=GenerationMethod.warp, max_frames=4)
    with pytest.raises(InputError, match=f"is the {role}"):
        animate_file(None, request, source, driving, output)  # type: ignore[arg-type]  # refused before any fitting
    assert target.read_bytes() == before


def test_a_source_without_a_face_stops_the_tracking_early(fitter, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The source is prepared while the driving video is tracked; when it has no face, the
    tracking stops at the next frame instead of running through the clip, and nothing is written."""
    from facereenact.errors import NoFaceError

    source = tmp_path / "wall.png"
    cv2.imwrite(str(source), np.full((480, 640, 3), 128, np.uint8))
    clip = data_dir / "clips" / "pcavs_00104.mp4"  # about 300 frames
    ticks: list[int] = []
    output = tmp_path / "out.mp4"
    with pytest.raises(NoFaceError, match="no face found in the source"):
        animate_file(fitter, AnimateRequest(method=GenerationMethod.warp), source, clip, output, progress=lambda _, __: ticks.append)
    assert len(ticks) < probe_video(clip).frame_count - 1, f"tracked {len(ticks)} frames after the source had failed"
    assert not output.exists() and list(tmp_path.iterdir()) == [source]
