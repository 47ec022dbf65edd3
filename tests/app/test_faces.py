"""Several faces of one photo (``face_index`` all or a list): the request's choice, pasting faces
whose boxes overlap, and ``animate`` making one output of the photo's size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facereenact.app.animate import animate_file
from facereenact.errors import FaceIndexError, InputError, OptionError
from facereenact.io.image import write_image
from facereenact.io.video import probe_video, read_frames
from facereenact.pipeline.composite import Paster
from facereenact.pipeline.request import AnimateRequest, GenerationMethod

WARP = GenerationMethod.warp


def test_the_face_choice_is_one_index_several_or_all() -> None:
    assert AnimateRequest(face_index="all").face_index == "all"  # type: ignore[arg-type]
    assert AnimateRequest(face_index="2, 0").face_index == (0, 2)  # type: ignore[arg-type]
    assert AnimateRequest(face_index=[1, 1]).face_index == 1  # type: ignore[arg-type]
    assert AnimateRequest(face_index="3").face_index == 3  # type: ignore[arg-type]
    assert AnimateRequest(face_index="all").several_faces and not AnimateRequest(face_index=3).several_faces  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="face_index -1 is below 0"):
        AnimateRequest(face_index="0,-1")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="face_index everyone is not a face index"):
        AnimateRequest(face_index="everyone")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="crop_only makes one face's crop"):
        AnimateRequest(face_index="all", crop_only=True)  # type: ignore[arg-type]


def test_a_face_pasted_onto_another_keeps_what_the_first_moved() -> None:
    """Two boxes that overlap: the second face's paste changes the frame only where it moved,
    so the first face's change inside the second's box survives, and no box edge shows."""
    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8), (0, 0), 3)
    size = 64
    first, second = Paster(photo, np.array([20.0, 40, 170, 190]), size), Paster(photo, np.array([120.0, 40, 270, 190]), size)
    grid = np.mgrid[0:size, 0:size][::-1].transpose(1, 2, 0).astype(np.float32)
    moved = grid.copy()
    moved[..., 0] += 2.0  # the first face moves everything in its crop by 2 crop pixels
    still = grid.copy()
    still[40:, 40:, 1] += 2.0  # the second moves only its lower right corner
    sampled = np.ones((size, size), np.float32)
    crop = np.zeros((size, size, 3), np.uint8)
    alone = first.paste(crop, moved, sampled)
    both = second.paste(crop, still, sampled, onto=alone)
    overlap = (slice(60, 110), slice(125, 165))  # inside both boxes, where the second did not move
    assert np.array_equal(both[overlap], alone[overlap])
    assert not np.array_equal(alone[overlap], photo[overlap])  # the first face's change is there
    assert not np.array_equal(both[150:185, 230:265], alone[150:185, 230:265])  # the second's change too


@pytest.fixture(scope="module")
def group_photo(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three portraits side by side, 360 pixels tall."""
    from facereenact.io.image import read_image

    pictures = [read_image(data_dir / "portraits" / f"{name}.jpg") for name in ("lp_s1", "lp_s5", "lp_s7")]
    photo = np.concatenate([cv2.resize(p, (round(p.shape[1] * 360 / p.shape[0]), 360), interpolation=cv2.INTER_AREA) for p in pictures], 1)
    path = tmp_path_factory.mktemp("group") / "three.png"
    write_image(path, photo)
    return path


def test_every_face_of_a_group_photo_is_animated_into_one_output(fitter, data_dir: Path, group_photo: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    output = tmp_path / "all.mp4"
    report = animate_file(fitter, AnimateRequest(method=WARP, face_index="all", max_frames=10), group_photo, data_dir / "clips" / "hdtf_aoc.mp4", output)  # type: ignore[arg-type]
    info = probe_video(output)
    assert (info.width, info.height) == (1080, 360) and report.frames == info.frame_count == 10 and info.has_audio
    assert any("animating faces 0, 1, 2" in note for note in report.notes(""))
    frames, photo = read_frames(output), cv2.cvtColor(cv2.imread(str(group_photo)), cv2.COLOR_BGR2RGB)
    change = np.abs(frames.astype(np.int16) - photo.astype(np.int16)).max(-1).max(0)  # (H, W) over the frames
    for third in range(3):  # each portrait's face moved
        assert (change[:, third * 360 : (third + 1) * 360] > 40).mean() > 0.01, f"portrait {third} did not move"


def test_two_drivers_for_two_faces_and_the_refusals(fitter, data_dir: Path, group_photo: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clips = data_dir / "clips"
    request = AnimateRequest(method=WARP, face_index=(0, 2), max_frames=4)
    report = animate_file(fitter, request, group_photo, [clips / "hdtf_aoc.mp4", clips / "pcavs_00098.mp4"], tmp_path / "two.mp4")
    assert report.frames == 4 and report.face_indices == [0, 2]
    with pytest.raises(FaceIndexError) as raised:
        animate_file(fitter, AnimateRequest(method=WARP, face_index="0,5"), group_photo, clips / "hdtf_aoc.mp4", tmp_path / "o.mp4")  # type: ignore[arg-type]
    assert str(raised.value) == "face 5 asked for, but the source image has 3 face(s)"
    with pytest.raises(InputError, match="3 drivers for 2 faces"):
        animate_file(fitter, request, group_photo, [clips / "hdtf_aoc.mp4"] * 3, tmp_path / "o.mp4")
    with pytest.raises(OptionError, match="face_index .* is for a source photo"):
        animate_file(fitter, AnimateRequest(method=WARP, face_index="all"), clips / "hdtf_aoc.mp4", clips / "pcavs_00098.mp4", tmp_path / "o.mp4")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.mp4"]
