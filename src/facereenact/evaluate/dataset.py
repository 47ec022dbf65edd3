"""Which files an evaluation uses: the clips and portraits of a data folder.

Layout: ``DIR/clips/`` and ``DIR/portraits/`` (as ../shared/data), or videos and images directly
in ``DIR``. Files are picked by extension here; a file that turns out unreadable fails on its own
(recorded in the report) without stopping the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from facereenact.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class EvaluationData:
    root: Path
    clips: list[Path]
    portraits: list[Path]


def _files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."))


def discover(folder: Path, only: Sequence[str] | None = None) -> EvaluationData:
    """The clips and portraits in ``folder``; ``only`` keeps the clips with these names (stems).

    Raises:
        InputError: the folder does not exist, holds no clips, or a name in ``only`` is unknown.
    """
    if not folder.is_dir():
        raise InputError(f"data folder {folder} does not exist")
    clip_folder = folder / "clips" if (folder / "clips").is_dir() else folder
    portrait_folder = folder / "portraits" if (folder / "portraits").is_dir() else folder
    clips = _files(clip_folder, VIDEO_SUFFIXES)
    portraits = _files(portrait_folder, IMAGE_SUFFIXES)
    if not clips:
        raise InputError(f"no video clips in {clip_folder} (looked for {', '.join(VIDEO_SUFFIXES)})")
    stems = [p.stem for p in clips]
    repeated = sorted({s for s in stems if stems.count(s) > 1})
    if repeated:
        raise InputError(f"two clips in {clip_folder} are named {repeated[0]} (different extensions); rename one")
    if only:
        unknown = [name for name in only if name not in stems]
        if unknown:
            raise InputError(f"no clip named {unknown[0]} in {clip_folder}")
        clips = [p for p in clips if p.stem in set(only)]
    return EvaluationData(folder, clips, portraits)
