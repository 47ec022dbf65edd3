"""facereenact: one-shot face reenactment with identity-matched 3D correspondence."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facereenact.app.animate import AnimateReport

__version__ = "0.1.0"

__all__ = ["__version__", "animate"]


def animate(
    source: str | os.PathLike[str] | None = None,
    driving: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    assets: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    data: str | os.PathLike[str] | None = None,
    **options: Any,
) -> AnimateReport:
    """Animate the portrait ``source`` with the driving video (or image) ``driving`` into
    ``output``, as ``facereenact animate`` does, with the same defaults: the example portrait and
    clip when ``source`` or ``driving`` is None, ``animated.mp4``, the shipped network.

    ``options`` are those of the command line, by their Python names (``method="warp"``,
    ``mode="absolute"``, ``max_frames=100``, ``regions="mouth"``, ``crop_size=384`` …: every field
    of :class:`facereenact.app.animate.AnimateRequest`). ``source`` may be a video, re-acted
    frame by frame (``video_motion``, ``length``, ``audio``). With ``face_index="all"`` (or a
    list of indices) several faces of a photo are animated in one output; ``driving`` may then
    be a list, one driver per face. ``assets`` is the model-file folder
    (default: as the command line finds it); ``device`` a torch device. Returns the
    :class:`~facereenact.app.animate.AnimateReport` (output path, frame count, notes). A bad
    input raises a :class:`facereenact.errors.FaceReenactError` whose message is one line.

    The package is imported lazily: ``import facereenact`` stays light.
    """
    from facereenact.app.api import animate as run  # the one-call façade over the application layer

    return run(source, driving, output, assets=assets, device=device, data=data, **options)
