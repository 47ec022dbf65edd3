"""The guard the command-line tests run under fails a command that changes or removes an input,
and lets it write its outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

import facereenact.app.network
from tests.cli_inputs import inputs_of, run_cli


def _release_that_damages(checkpoint: Path, output: Path, provenance: dict[str, str]) -> str:
    with open(checkpoint, "ab") as handle:
        handle.write(b"!")
    output.write_bytes(b"release")
    return "0" * 64


def _release_that_removes(checkpoint: Path, output: Path, provenance: dict[str, str]) -> str:
    checkpoint.unlink()
    output.write_bytes(b"release")
    return "0" * 64


def _release_that_writes(checkpoint: Path, output: Path, provenance: dict[str, str]) -> str:
    output.write_bytes(b"release")
    return "0" * 64


@pytest.mark.parametrize("release", [_release_that_damages, _release_that_removes])
def test_a_command_that_touches_an_input_fails_its_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release) -> None:  # type: ignore[no-untyped-def]
    checkpoint = tmp_path / "in.safetensors"
    checkpoint.write_bytes(b"weights")
    monkeypatch.setattr(facereenact.app.network, "release_file", release)
    with pytest.raises(AssertionError, match="changed or removed its inputs"):
        run_cli("release", checkpoint, "-o", tmp_path / "out.safetensors")


def test_a_command_may_write_its_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint = tmp_path / "in.safetensors"
    checkpoint.write_bytes(b"weights")
    (tmp_path / "out.safetensors").write_bytes(b"the previous release")
    monkeypatch.setattr(facereenact.app.network, "release_file", _release_that_writes)
    assert run_cli("release", checkpoint, "-o", tmp_path / "out.safetensors").exit_code == 0


def test_inputs_are_the_files_named_in_folders_and_in_batch_files(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(b"a")
    (tmp_path / "me.jpg").write_bytes(b"me")
    (tmp_path / "jobs.csv").write_text("source,driving\nme.jpg,clips/a.mp4\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.mp4").write_bytes(b"old")
    found = inputs_of([str(tmp_path / "jobs.csv"), str(tmp_path / "out")], {tmp_path / "out"})
    assert found == sorted(p.resolve() for p in (tmp_path / "jobs.csv", tmp_path / "me.jpg", tmp_path / "clips" / "a.mp4"))
