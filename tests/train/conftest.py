"""A small prepared dataset (four people, a few frames each) shared by the training tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

#: Four clips of four different people (none grouped in ../shared/data/README.md).
CLIPS = ("dpe_s", "grid_bbaf2n", "pcavs_00015", "stk_nice")


@pytest.fixture(scope="session")
def prepared_dataset(assets, data_dir, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    from facereenact.train.prepare import prepare_dataset

    videos = tmp_path_factory.mktemp("videos")
    for name in CLIPS:
        shutil.copy(data_dir / "clips" / f"{name}.mp4", videos / f"{name}.mp4")
    out = tmp_path_factory.mktemp("prepared")
    report = prepare_dataset(videos, out, assets, size=64, workers=2, max_frames=10)
    assert not report.summary.failed, report.summary.failed
    return out
