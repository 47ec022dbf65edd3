"""Write-to-temporary-then-rename, so a failure never leaves a half-written output."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from facereenact.errors import OutputError


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the final suffix so that writers that pick a format from the
    extension (PyAV, OpenCV, numpy) behave as for the real name.
    """
    final = Path(path)
    folder = final.parent if str(final.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {final}: folder {folder} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".part{final.suffix}", dir=folder)
    except OSError as error:
        raise OutputError(f"cannot write {final}: {error.strerror or error}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes it owner-only; outputs are not
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_partial(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporaries :func:`atomic_output` left beside ``path`` when its process was
    killed outright (SIGKILL, the OOM killer: no cleanup runs). Call it only when nothing is
    writing ``path``, e.g. once every task of a run has finished. Returns what was removed."""
    final = Path(path)
    # mkstemp's random part is 8 characters, so another output's temporaries never match.
    pattern = f".{glob.escape(final.stem)}.{'?' * 8}.part{glob.escape(final.suffix)}"
    removed = sorted(final.parent.glob(pattern))
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return removed


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
