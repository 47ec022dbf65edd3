"""How a use case reports progress: it asks for one counter per stage of its work."""

from __future__ import annotations

from collections.abc import Callable

#: Called once per frame done, with the frame's index.
Progress = Callable[[int], None]
#: Called once per stage with the stage's name and its number of frames (0 when unknown).
ProgressFactory = Callable[[str, int], Progress]


def no_progress(_: str, __: int) -> Progress:
    return lambda _: None
