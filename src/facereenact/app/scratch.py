"""A process's own temporary folder, which the next process deletes if this one was killed.

The folder is held with the same writer's lock as the temporaries of an output
(:mod:`facereenact.io.atomic`): a process killed outright cannot delete its folder, but the
system drops its lock, so a folder of the same name pattern without a lock is a dead process's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from facereenact.io.atomic import lock_folder, remove_abandoned


def claim_scratch_folder(parent: Path, prefix: str) -> tuple[Path, int]:
    """Delete the folders ``prefix``… in ``parent`` that no live process holds, then make and lock
    a new one: the folder and the descriptor holding its lock (close it after deleting the
    folder)."""
    remove_abandoned(parent, prefix, "")
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        return folder, lock_folder(folder)
    except OSError:
        os.rmdir(folder)
        raise
