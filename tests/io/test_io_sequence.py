"""Tests for facereenact.io.sequence: lossless frame folders, written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facereenact.errors import OutputError
from facereenact.io.image import read_image
from facereenact.io.sequence import FRAME_NAME, FrameFolderWriter


def _frames(count: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, 40, 48, 3), dtype=np.uint8)


def test_frames_come_back_exactly(tmp_path: Path) -> None:
    frames = _frames()
    with FrameFolderWriter(tmp_path / "out") as writer:
        writer.write_batch(frames)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [FRAME_NAME.format(i) for i in range(3)]
    assert all(np.array_equal(read_image(tmp_path / "out" / name), frame) for name, frame in zip(names, frames))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no partial folder is left beside it"


def test_a_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), FrameFolderWriter(tmp_path / "out") as writer:
        writer.write(_frames()[0])
        raise RuntimeError("stopped halfway")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_folder_is_filled_and_a_used_one_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with FrameFolderWriter(tmp_path / "empty") as writer:
        writer.write(_frames()[0])
    assert len(list((tmp_path / "empty").iterdir())) == 1
    with pytest.raises(OutputError, match="not an empty folder"):
        FrameFolderWriter(tmp_path / "empty")
    with pytest.raises(OutputError, match="does not exist"):
        FrameFolderWriter(tmp_path / "missing" / "out")
    with pytest.raises(OutputError, match="no frames"), FrameFolderWriter(tmp_path / "none"):
        pass
    assert not (tmp_path / "none").exists()
