"""One animation in one call, as ``facereenact animate`` makes it: the use case behind the
command line's single animation and behind :func:`facereenact.animate`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from facereenact.app import examples
from facereenact.app.animate import AnimateReport, AnimateRequest, animate_file, check_checkpoint
from facereenact.app.fit import load_fitter
from facereenact.app.locations import resolve_assets
from facereenact.app.progress import ProgressFactory, no_progress

#: Where the output goes when none is named.
DEFAULT_OUTPUT = Path("animated.mp4")

PathLike = str | os.PathLike[str]
#: One driver, or one per face of the source photo (``face_index`` all or a list).
Drivers = PathLike | Sequence[PathLike]


def run_animation(
    request: AnimateRequest,
    source: PathLike | None = None,
    driving: Drivers | None = None,
    output: PathLike | None = None,
    assets: PathLike | None = None,
    device: str = "cpu",
    data: PathLike | None = None,
    progress: ProgressFactory = no_progress,
) -> AnimateReport:
    """Check the model files (all missing ones named at once), take the example portrait and
    clip for a missing ``source`` or ``driving``, check the network, then animate."""
    resolved = resolve_assets(assets)
    source = Path(source) if source is not None else examples.default_portrait(data, assets)
    drivers: Path | list[Path]
    if driving is None:
        drivers = examples.default_clip(data, assets)
    elif isinstance(driving, (str, os.PathLike)):
        drivers = Path(driving)
    else:
        drivers = [Path(each) for each in driving]
    checkpoint = request.checkpoint()
    if checkpoint is not None:
        check_checkpoint(checkpoint)
    fitter = load_fitter(resolved, device)
    return animate_file(fitter, request, source, drivers, Path(output) if output is not None else DEFAULT_OUTPUT, progress)


def animate(
    source: PathLike | None = None,
    driving: Drivers | None = None,
    output: PathLike | None = None,
    *,
    assets: PathLike | None = None,
    device: str = "cpu",
    data: PathLike | None = None,
    **options: Any,
) -> AnimateReport:
    """``options`` are :class:`~facereenact.app.animate.AnimateRequest`'s fields, with its
    defaults (those of the command line); see :func:`facereenact.animate`."""
    known = {f.name for f in fields(AnimateRequest)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"animate() got unknown option(s) {', '.join(unknown)}; the options are {', '.join(sorted(known))}")
    if options.get("model") is not None:
        options["model"] = Path(options["model"])
    return run_animation(AnimateRequest(**options), source, driving, output, assets, device, data)
