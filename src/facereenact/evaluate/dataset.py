"""Which files an evaluation uses: the clips and portraits of a data folder.

Layout: ``DIR/clips/`` and ``DIR/portraits/`` (as ../shared/data), or videos and images directly
in ``DIR``; an identities file (``DIR/identities.txt`` unless named) says which clips show the
same person (see :mod:`facereenact.io.identities`), else every clip is its own person. Files are picked by extension here; a file that turns out unreadable fails on its own
(recorded in the report) without stopping the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from facereenact.errors import InputError
from facereenact.io.identities import read_identity_groups

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class EvaluationData:
    root: Path
    clips: list[Path]
    portraits: list[Path]
    #: clip name → person, for clips known to show the same person (others are their own).
    person_of: dict[str, str] = field(default_factory=dict)

    def person(self, clip: str) -> str:
        return self.person_of.get(clip, clip)


def _files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."))


def discover(folder: Path, only: Sequence[str] | None = None, identities: Path | None = None) -> EvaluationData:
    """The clips and portraits in ``folder``; ``only`` keeps the clips with these names (stems);
    ``identities`` (default ``folder/identities.txt`` where there is one) groups them by person.

    Raises:
        InputError: the folder does not exist, holds no clips, a name in ``only`` is unknown, or
        the identities file cannot be read.
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
    if identities is None and (folder / "identities.txt").is_file():
        identities = folder / "identities.txt"
    return EvaluationData(folder, clips, portraits, read_identity_groups(identities) if identities is not None else {})
