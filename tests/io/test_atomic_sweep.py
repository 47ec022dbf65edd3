"""Temporaries that a killed writer left are deleted by the next write of the same output, and
nothing else is: not a temporary that a live writer holds, not another output's, not a file
that only looks like one."""

from __future__ import annotations

import fcntl
import os
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facereenact.io.atomic import atomic_output, remove_partial
from facereenact.io.sequence import FrameFolderWriter

#: Output names: dots, spaces, unicode, glob and regex characters.
NAMES = st.text(string.ascii_letters + string.digits + " ._-[]*?+()é漢", min_size=1, max_size=16).filter(
    lambda name: name not in {".", ".."} and not name.startswith(".") and "/" not in name
)
SUFFIXES = st.sampled_from([".mp4", ".npz", ".json", ".png", ".safetensors", ".tar.gz"])


def _dead_writers_part(folder: Path, stem: str, suffix: str, random: str = "k1ll3d_x") -> Path:
    """What atomic_output leaves behind when its process is killed outright."""
    part = folder / f".{stem}.{random}.part{suffix}"
    part.write_bytes(b"half a file")
    return part


def _decoys(folder: Path, stem: str, suffix: str) -> list[Path]:
    """Files that are not temporaries of STEM+SUFFIX, however alike."""
    names = [
        f".{stem}.ABCDEFGH.part{suffix}",  # tempfile never uses capitals
        f".{stem}.abc.part{suffix}",  # nor fewer than eight characters
        f".{stem}.abcdefghi.part{suffix}",  # nor more
        f".{stem}.abcdefgh.part.bak",  # another suffix
        f".{stem}x.abcdefgh.part{suffix}",  # another output
        f"{stem}.abcdefgh.part{suffix}",  # not hidden
        f".{stem}.abcdefgh.partial{suffix}",
        f"{stem}{suffix}.part",
    ]
    made = []
    for name in names:
        path = folder / name
        path.write_bytes(b"keep me")
        made.append(path)
    return made


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stem=NAMES, suffix=SUFFIXES)
def test_the_next_write_removes_a_dead_writers_temporary_and_nothing_else(tmp_path_factory: pytest.TempPathFactory, stem: str, suffix: str) -> None:
    folder = tmp_path_factory.mktemp("out")
    output = folder / f"{stem}{suffix}"
    stale = _dead_writers_part(folder, Path(output.name).stem, output.suffix)
    decoys = _decoys(folder, Path(output.name).stem, output.suffix)
    with atomic_output(output) as tmp:
        assert not stale.exists(), "swept when the new write starts"
        tmp.write_bytes(b"whole")
    assert output.read_bytes() == b"whole"
    assert all(decoy.read_bytes() == b"keep me" for decoy in decoys)
    assert sorted(p.name for p in folder.iterdir()) == sorted([output.name, *(d.name for d in decoys)])


def test_a_temporary_that_a_live_writer_holds_is_kept(tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"
    live = _dead_writers_part(tmp_path, "out", ".mp4", "l1ve_abc")
    holder = os.open(live, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a writer in another process holds it
    try:
        with atomic_output(output) as tmp:
            tmp.write_bytes(b"whole")
        assert remove_partial(output) == []
        assert live.exists(), "a live writer's temporary is not touched"
    finally:
        os.close(holder)
    assert remove_partial(output) == [live], "once its writer is gone, it is a dead writer's"
    assert not live.exists()


def test_two_writers_of_one_output_leave_each_other_alone(tmp_path: Path) -> None:
    output = tmp_path / "out.json"
    with atomic_output(output) as first:
        first.write_bytes(b"one")
        with atomic_output(output) as second:
            assert first.exists(), "the first writer's temporary is live"
            second.write_bytes(b"two")
    assert output.read_bytes() == b"one" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES.filter(lambda name: "." not in name))
def test_a_frame_folder_write_removes_a_dead_writers_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> None:
    folder = tmp_path_factory.mktemp("frames")
    stale = folder / f".{name}.d3ad_abc.part"
    stale.mkdir()
    (stale / "frame_000000.png").write_bytes(b"half")
    decoy = folder / f".{name}.ABCDEFGH.part"
    decoy.mkdir()
    with FrameFolderWriter(folder / name) as writer:
        writer.write(np.zeros((8, 8, 3), np.uint8))
    assert not stale.exists() and decoy.is_dir()
    assert sorted(p.name for p in folder.iterdir()) == sorted([name, decoy.name])
