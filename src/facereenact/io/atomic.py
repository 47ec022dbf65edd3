"""Write-to-temporary-then-rename, so a failure never leaves a half-written output.

A temporary is named ``.STEM.XXXXXXXX.partSUFFIX`` beside its output (``XXXXXXXX`` is
:mod:`tempfile`'s random part) and, while it is being written, its writer holds an exclusive
lock on it. A process killed outright (SIGKILL, the out-of-memory killer) cannot delete its
temporary, but the system drops its lock: so a temporary of the same output without a lock is
left from a dead writer, and the next write of that output deletes it (:func:`remove_partial`),
while a temporary that another live process is writing is never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from facereenact.errors import OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows: no locks; a temporary is swept only by age)
    fcntl = None  # type: ignore[assignment]

#: A temporary left this long without a lock-capable system is taken for a dead writer's.
STALE_SECONDS = 24 * 3600

_RANDOM = "[a-z0-9_]{8}"  # tempfile's names: eight of its lowercase letters, digits and "_"


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the final suffix so that writers that pick a format from the
    extension (PyAV, OpenCV, numpy) behave as for the real name. Temporaries of ``path`` that
    dead writers left are deleted first.
    """
    final = Path(path)
    folder = final.parent if str(final.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {final}: folder {folder} does not exist")
    remove_partial(final)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".part{final.suffix}", dir=folder)
    except OSError as error:
        raise OutputError(f"cannot write {final}: {error.strerror or error}") from None
    tmp = Path(tmp_name)
    try:
        _lock(fd)
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes it owner-only; outputs are not
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def partial_name_pattern(prefix: str, suffix: str) -> re.Pattern[str]:
    """The names tempfile gives with ``prefix`` and ``suffix``, and nothing else: the random part
    has exactly tempfile's length and alphabet."""
    return re.compile(rf"{re.escape(prefix)}{_RANDOM}{re.escape(suffix)}")


def remove_partial(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporaries of the file ``path`` that no live writer holds: those a process
    killed outright left (see the module docstring); one being written is kept. Returns what was
    removed."""
    final = Path(path)
    return remove_abandoned(final.parent if str(final.parent) else Path("."), f".{final.stem}.", f".part{final.suffix}")


def remove_abandoned(folder: Path, prefix: str, suffix: str) -> list[Path]:
    """Delete the files and folders in ``folder`` that tempfile named with ``prefix`` and
    ``suffix`` and that no live writer holds. Returns what was removed."""
    pattern = partial_name_pattern(prefix, suffix)
    try:
        candidates = sorted(p for p in folder.iterdir() if pattern.fullmatch(p.name))
    except OSError:
        return []
    removed = []
    for tmp in candidates:
        if _abandoned(tmp):
            try:
                if tmp.is_dir():
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink()
            except OSError:
                continue
            removed.append(tmp)
    return removed


def lock_folder(folder: Path) -> int:
    """An open descriptor of ``folder`` holding its writer's lock (close it to release)."""
    fd = os.open(folder, os.O_RDONLY)
    _lock(fd)
    return fd


def _lock(fd: int) -> None:
    """Take the writer's lock on a temporary just made (where the file system has no locks, the
    temporary goes without: it is then swept like a dead writer's)."""
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _abandoned(tmp: Path) -> bool:
    """Whether no process holds ``tmp``'s writer lock (without locks: whether it is a day old)."""
    if fcntl is None:  # pragma: no cover
        import time

        try:
            return time.time() - tmp.stat().st_mtime > STALE_SECONDS
        except OSError:
            return False
    try:
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # a live writer holds it
    finally:
        os.close(fd)
    return True


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
