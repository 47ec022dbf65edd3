"""Commands that need an optional extra check it before any work: one line naming the install."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facereenact.app.extras import EXTRAS, missing_modules
from facereenact.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("extra", "hidden", "arguments", "purpose"),
    [
        ("eval", "matplotlib", ("evaluate", "--out", "{tmp}/evaluation"), "evaluate"),
        ("eval", "dlib", ("evaluate", "--out", "{tmp}/evaluation"), "evaluate"),
        ("web", "uvicorn", ("serve",), "serve"),
        ("ray", "ray", ("prepare", "{tmp}/videos", "{tmp}/prepared", "--backend", "ray"), "--backend ray"),
        ("ray", "ray", ("evaluate", "--backend", "ray", "--out", "{tmp}/evaluation"), "--backend ray"),
        ("ray", "ray", ("animate", "--batch", "{tmp}/jobs.csv", "--out", "{tmp}/out", "--backend", "ray"), "--backend ray"),
        ("train", "tensorboard", ("train", "--config", "{tmp}/config.yaml"), "train"),
    ],
)
def test_a_missing_extra_is_one_line_with_the_install_command_before_any_work(
    extra: str, hidden: str, arguments: tuple[str, ...], purpose: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, hidden, None)  # as if the package were not installed
    assert missing_modules(extra) == [hidden]
    started = time.perf_counter()
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in arguments])
    elapsed = time.perf_counter() - started
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0] == f'error: {purpose} needs the {extra!r} extra ({hidden} not installed): pip install "facereenact[{extra}]"'
    assert elapsed < 2.0
    assert list(tmp_path.iterdir()) == [], "no work was done, nothing was written"


def test_the_extras_match_pyproject() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert set(EXTRAS) <= set(project["optional-dependencies"])
