"""Running the command line in tests with its inputs guarded: every file a command is handed
(an argument, a file inside a folder argument, a file a batch CSV names) is hashed before and
after, and a command that changed one fails the test, whatever else the test checks."""

from __future__ import annotations

import csv
import itertools
import os
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from facereenact.cli import app
from facereenact.io.assets import sha256_of

runner = CliRunner()




def _named_by_csv(path: Path) -> list[Path]:
    """The files a batch CSV names (relative ones from its folder); nothing when unreadable."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            rows = list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    named = []
    for row in rows:
        for column in ("source", "driving", "model"):
            cell = (row.get(column) or "").strip()
            if cell and "\x00" not in cell:
                named.append(path.parent / Path(cell).expanduser())
    return named


#: Files hashed in one folder argument at most (a data folder of clips is a few hundred).
MOST_FILES_PER_FOLDER = 2000


def inputs_of(args: list[str], outputs: set[Path]) -> list[Path]:
    """The existing files among ``args`` (and in folders among them, and named by a batch CSV
    among them), except ``outputs`` and what lies in them (what the command may write)."""
    written = {o.resolve() for o in outputs}
    found: list[Path] = []
    for arg in args:
        if "\x00" in arg or len(arg) > 4096:
            continue
        path = Path(arg)
        try:
            if path.resolve() in written:
                continue
            if path.is_file():
                found.append(path)
                if path.suffix.lower() == ".csv":
                    found.extend(p for p in _named_by_csv(path) if p.is_file())
            elif path.is_dir():
                found.extend(itertools.islice((p for p in path.rglob("*") if p.is_file()), MOST_FILES_PER_FOLDER))
        except OSError:
            continue
    return sorted(p.resolve() for p in found if not any(p.resolve() == o or o in p.resolve().parents for o in written))


def _output_args(args: list[str]) -> set[Path]:
    """Where a command may write (a re-run replaces): the arguments of ``-o/--output/--out``,
    and ``prepare``'s second argument (``prepare VIDEOS_DIR OUT_DIR``)."""
    written = set()
    if args[:1] == ["prepare"] and len(args) > 2:
        written.add(Path(args[2]))
    for flag, value in zip(args, args[1:]):
        if flag in {"-o", "--output", "--out"}:
            written.add(Path(value))
    return written


def run_cli(*args: str | os.PathLike[str], env: dict[str, str] | None = None, **kwargs: Any) -> Result:
    """``facereenact ARGS`` in this process; asserts that no input file changed."""
    words = [str(a) for a in args]
    guarded = inputs_of(words, _output_args(words))
    before = {path: sha256_of(path) for path in guarded}
    result = runner.invoke(app, words, env={"FACEREENACT_ASSETS": os.environ.get("FACEREENACT_ASSETS", ""), **(env or {})}, **kwargs)
    changed = [str(path) for path in guarded if not path.is_file() or sha256_of(path) != before[path]]
    assert not changed, f"facereenact {' '.join(words)} changed or removed its inputs {changed}"
    return result


def error_line(result: Result) -> str:
    """The command's one output line, which must be an ``error:`` line (no traceback)."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:"), lines[0]
    return lines[0]
