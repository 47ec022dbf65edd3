"""``facereenact prepare``: crops and fits per clip, identities, resume, bad videos."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from facereenact.io.identities import read_identity_groups
from facereenact.train.clipstore import load_clip
from facereenact.train.prepare import plan_jobs, stable_boxes
from tests.cli_inputs import run_cli


def _run(*args: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
    return run_cli(*args)


@pytest.fixture(scope="module")
def prepared(assets, data_dir, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Two short clips of one identity in VoxCeleb-style nesting, plus a corrupt video."""
    videos = tmp_path_factory.mktemp("videos")
    (videos / "id1" / "vid1").mkdir(parents=True)
    shutil.copy(data_dir / "clips" / "dpe_s.mp4", videos / "id1" / "vid1" / "00001.mp4")
    shutil.copy(data_dir / "clips" / "grid_bbaf2n.mp4", videos / "id1" / "00002.mp4")
    (videos / "broken.mp4").write_bytes(b"not a video at all")
    out = tmp_path_factory.mktemp("prepared")
    result = _run("prepare", videos, out, "--size", "96", "--max-frames", "12", "--workers", "2", "--assets", assets.root)
    return videos, out, result


def test_prepare_writes_clips_and_manifest(prepared) -> None:  # type: ignore[no-untyped-def]
    _, out, result = prepared
    assert result.exit_code == 1, "a failed clip makes the exit code say not everything succeeded\n" + result.output
    assert "3 clip(s): 2 done, 0 skipped (finished earlier), 1 failed" in result.output
    assert "failed broken:" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(c["clip"], c["identity"], c["frames"]) for c in manifest["clips"]] == [("id1__00002", "id1", 12), ("id1__vid1__00001", "id1", 12)]
    assert [f["clip"] for f in manifest["failed"]] == ["broken"]
    clip = load_clip(out / "clips" / "id1__vid1__00001.npz")
    assert len(clip) == 12 and clip.found.all()
    crop = clip.crop(5)
    assert crop.shape == (96, 96, 3) and crop.std() > 10
    # The fits are in crop pixels: the face sits in the crop's middle, at a sensible size.
    landmarks = clip.landmarks[:, :, :2]
    centre = (landmarks.max(1) + landmarks.min(1)) / 2
    assert np.all(np.abs(centre - 48) < 20)
    extent = (landmarks.max(1) - landmarks.min(1)).max(1)
    assert np.all((extent > 96 / 2.0 * 0.8) & (extent < 96 / 2.0 * 1.2)), "crop side is twice the landmarks' extent"


def test_a_second_run_skips_prepared_clips(prepared, assets) -> None:  # type: ignore[no-untyped-def]
    videos, out, _ = prepared
    before = (out / "clips" / "id1__00002.npz").stat().st_mtime_ns
    result = _run("prepare", videos, out, "--size", "96", "--max-frames", "12", "--workers", "1", "--assets", assets.root)
    assert result.exit_code == 1, result.output  # the broken video fails again
    assert "0 done, 2 skipped (finished earlier), 1 failed" in result.output
    assert (out / "clips" / "id1__00002.npz").stat().st_mtime_ns == before
    assert not [p for p in (out / "clips").iterdir() if ".part" in p.name]


def test_no_videos_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _run("prepare", tmp_path / "empty", tmp_path / "out")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: no videos"), result.output


def test_identities_group_flat_clips(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.mp4").write_bytes(b"")
    (tmp_path / "groups.txt").write_text("# same person\na, c\n")
    jobs = plan_jobs(tmp_path, read_identity_groups(tmp_path / "groups.txt"))
    assert [(j.clip, j.identity) for j in jobs] == [("a", "a"), ("b", "b"), ("c", "a")]


def test_stable_boxes_hold_still_while_landmarks_jitter() -> None:
    generator = np.random.default_rng(0)
    face = np.stack(np.meshgrid(np.linspace(100, 200, 9), np.linspace(120, 220, 9)), -1).reshape(-1, 2)
    landmarks = face[None] + generator.normal(0, 3, (50, len(face), 2))
    landmarks = np.concatenate([landmarks, np.zeros((50, len(face), 1))], -1)
    found = np.ones(50, bool)
    found[20:25] = False
    boxes = stable_boxes(landmarks, found, fps=25)
    raw_jitter = np.abs(np.diff(landmarks[:, :, :2].mean(1), axis=0)).mean()
    box_jitter = np.abs(np.diff((boxes[:, :2] + boxes[:, 2:]) / 2, axis=0)).mean()
    assert box_jitter < raw_jitter / 5
    assert np.allclose(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def test_clips_prepared_with_fewer_frames_are_prepared_again(prepared, assets) -> None:  # type: ignore[no-untyped-def]
    from facereenact.train.clipstore import read_meta

    videos, out, _ = prepared
    assert read_meta(out / "clips" / "id1__00002.npz")["max_frames"] == 12
    result = _run("prepare", videos, out, "--size", "96", "--max-frames", "14", "--workers", "2", "--assets", assets.root)
    assert "2 done, 0 skipped (finished earlier), 1 failed" in result.output
    assert len(load_clip(out / "clips" / "id1__00002.npz")) == 14
