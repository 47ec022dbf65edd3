"""Batch CSVs of every shape: any content is either a list of rows or one error line naming what
is wrong, read whole before anything runs; the networks the rows name are checked before any
row runs; an animated driving image is named as a video output."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from facereenact.app.batch import read_batch
from facereenact.errors import InputError
from facereenact.model.checkpoint import FORMAT
from facereenact.model.config import PRESETS
from facereenact.pipeline.request import OPTION_NAMES
from tests.cli_inputs import error_line, run_cli

COLUMNS = ["source", "driving", "output", *OPTION_NAMES]
CELLS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "me.jpg", "clip.mp4", "../x.mp4", "/abs.mp4", "a\x00b", "x\ny", '"', "yes", "no", "nan", "inf", "-1", "0", "1e9", "١٢",
                     "eyes,mouth", "warp", "neural", "absolute", "holes", "out.png", "sub/out.mp4", "\x1b[31m.mp4", "é.mov"]),
    st.integers(-(10**20), 10**20).map(str),
    st.floats().map(str),
)  # fmt: skip


@st.composite
def batch_files(draw: st.DrawFn) -> str:
    """A CSV: a header of known and unknown columns in any order, rows of any cells."""
    header = draw(st.lists(st.sampled_from([*COLUMNS, "source", "driving", "colour", " source ", ""]), min_size=0, max_size=6, unique=True))
    if draw(st.booleans()):
        header = ["source", "driving", *header]
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=len(header) + 2), max_size=4))
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue() if draw(st.booleans()) else draw(st.text(max_size=60))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=batch_files())
@example(content="source,driving,model\nme.jpg,clip.mp4,a\x00b\n")
@example(content="source,driving\nme\x00.jpg,clip.mp4\n")
@example(content="\ufeffsource,driving,max_frames\nme.jpg,clip.mp4,99999999999999999999999\n")
@example(content="source,driving,method\r\n0,0,0\x850\r\n")  # a value holding a line break of its own (NEL)
def test_any_batch_file_is_rows_or_one_error_line(tmp_path_factory: pytest.TempPathFactory, content: str) -> None:
    folder = tmp_path_factory.mktemp("batch")
    jobs = folder / "jobs.csv"
    jobs.write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        rows = read_batch(jobs, folder / "out")
    except InputError as error:
        assert "\n" not in str(error).strip("\n") or "line" in str(error)
    else:
        assert rows and all(row.output.is_relative_to((folder / "out").absolute()) for row in rows)
    # The command reads the same file whole before it runs anything: with no model files
    # there, each outcome is one error line (the file's fault, or the missing assets).
    result = run_cli("animate", "--batch", jobs, "--out", folder / "out", "--method", "warp", "--assets", folder / "no-assets")
    assert result.exit_code == 1
    error_line(result)
    assert not (folder / "out").exists() or not any((folder / "out").iterdir())


def _impossible_checkpoint(path: Path) -> Path:
    architecture = json.dumps({**PRESETS["tiny"].as_dict(), "base": 100000})
    save_file({"ema.weight": torch.zeros(2)}, str(path), metadata={"format": FORMAT, "version": "1", "architecture": architecture})
    return path


@pytest.mark.parametrize("model", ["folder", "garbage", "missing", "impossible"])
def test_a_rows_network_is_checked_before_any_row_runs(tmp_path: Path, model: str) -> None:
    named = tmp_path / f"{model}.safetensors"
    if model == "folder":
        named.mkdir()
    elif model == "garbage":
        named.write_bytes(b"not a checkpoint at all")
    elif model == "impossible":
        _impossible_checkpoint(named)
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"source,driving,output,method,model\nme.jpg,a.mp4,first.mp4,warp,\nme.jpg,b.mp4,second.mp4,neural,{named.name}\n")
    line = error_line(run_cli("animate", "--batch", jobs, "--out", tmp_path / "out", "--assets", tmp_path / "no-assets"))
    assert "second.mp4" in line and str(named) in line, line
    expected = {"folder": "is not a file but a folder", "garbage": "not a safetensors file", "missing": "does not exist", "impossible": "model.base"}[model]
    assert expected in line, line


def _animated(path: Path, frames: int) -> Path:
    animation = cv2.Animation()
    animation.frames = [np.full((40, 40, 3), 40 * i, np.uint8) for i in range(frames)]
    animation.durations = [100] * frames
    assert cv2.imwriteanimation(str(path), animation)
    return path


@pytest.mark.parametrize("extension", [".gif", ".png", ".webp"])
def test_outputs_are_named_by_what_the_driving_holds(tmp_path: Path, extension: str) -> None:
    _animated(tmp_path / f"moving{extension}", 3)
    _animated(tmp_path / f"still{extension}", 1)
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"source,driving\nme.jpg,moving{extension}\nme.jpg,still{extension}\nme.jpg,gone{extension}\nme.jpg,clip.mp4\n")
    names = [row.name for row in read_batch(jobs, tmp_path / "out")]
    still_by_name = ".mp4" if extension == ".gif" else ".png"  # a file not there is judged by its name
    assert names == ["me__moving.mp4", "me__still.png", f"me__gone{still_by_name}", "me__clip.mp4"]
