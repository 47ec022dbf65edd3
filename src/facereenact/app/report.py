"""What an animation wrote, and the notes its user should hear."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class AnimateReport:
    """What was written, and what the user should hear about it."""

    output: Path
    frames: int
    #: Faces found in the source, and the one animated (largest first).
    faces_found: int = 1
    face_index: int = 0
    #: The faces animated when several were asked for (``face_index`` all, or a list).
    face_indices: list[int] | None = None
    #: Inclusive driving-frame ranges where the face was lost (those frames hold the last pose).
    lost_ranges: list[tuple[int, int]] = field(default_factory=list)
    #: Ranges where the face was tracked but its eyes, brows and mouth could not be read.
    unread_ranges: list[tuple[int, int]] = field(default_factory=list)
    #: The driving clip had audio that a folder of frames could not carry.
    audio_left_out: bool = False
    #: What could not be read of the driving (a file cut short, damaged data), one line each:
    #: the result covers what was read.
    warnings: list[str] = field(default_factory=list)
    #: A source video's frame rate and the driver's, when they differ (the driver is resampled).
    resampled: tuple[float, float] | None = None
    #: The audio asked for, when the input named had none.
    audio_missing: str | None = None

    def notes(self, choose_face: str) -> list[str]:
        """The notes for the user; ``choose_face`` says how this interface picks another face."""
        notes = []
        if self.face_indices is not None:
            notes.append(f"the source has {self.faces_found} faces; animating faces {', '.join(map(str, self.face_indices))} (largest first)")
        elif self.faces_found > 1:
            notes.append(f"the source has {self.faces_found} faces; animating face {self.face_index} (largest first; {choose_face})")
        if self.lost_ranges:
            notes.append(f"the driving face was lost in frames {spans(self.lost_ranges)}; those frames hold the last good pose and expression")
        if self.unread_ranges:
            notes.append(f"the driving eyes, brows and mouth could not be read in frames {spans(self.unread_ranges)}; they move from the frames before to those after")
        if self.resampled is not None:
            source_fps, driving_fps = self.resampled
            notes.append(f"the driving clip runs at {driving_fps:g} frames/s and the source at {source_fps:g}: the driving motion is resampled to the source's rate by time")
        if self.audio_missing is not None:
            notes.append(f"the {self.audio_missing} has no audio: the output is silent")
        if self.audio_left_out:
            notes.append("the frames are PNG images: the audio is not in them")
        return notes


def spans(ranges: list[tuple[int, int]]) -> str:
    """Inclusive frame ranges as a user reads them: ``3–5, 9``."""
    return ", ".join(f"{a}–{b}" if a != b else f"{a}" for a, b in ranges)
