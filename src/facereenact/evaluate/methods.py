"""The methods an evaluation compares, each a generation stage of the same :class:`Reenactor`.

* ``source``: the source crop, unchanged, for every frame (the naive baseline every reenactment
  must beat on fidelity, and the ceiling of identity similarity);
* ``warp``: the training-free geometric warp (:class:`~facereenact.warp.geometric.GeometricWarp`);
* ``neural:PATH``: a trained network, loaded by ``facereenact.model.inference.load_stage``.

Sharing the Reenactor means every method gets the same source crop, the same target geometry and
the same crop framing: only the stage differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from facereenact.errors import InputError, NotAvailableError
from facereenact.face3d.morphable import MorphableModel
from facereenact.model.checkpoint import check_checkpoint
from facereenact.pipeline.request import resolve_checkpoint
from facereenact.stage import StageMethod, WarpResult, WarpTargets

NEURAL_PREFIX = "neural:"


class SourceStage:
    """The ``source`` baseline as a generation stage: the source crop repeated."""

    def bound_to(self, model: MorphableModel, source_vertices: torch.Tensor, source_crop: torch.Tensor) -> SourceStage:
        return self

    def __call__(self, source_crop: torch.Tensor, targets: WarpTargets) -> WarpResult:
        batch = len(targets.vertices)
        _, _, height, width = source_crop.shape
        images = source_crop.expand(batch, -1, -1, -1)
        empty = torch.zeros(batch, 1, height, width, device=source_crop.device)
        ys, xs = torch.meshgrid(torch.arange(height, device=source_crop.device), torch.arange(width, device=source_crop.device), indexing="ij")
        field = torch.stack([xs, ys], -1).float().expand(batch, -1, -1, -1)
        return WarpResult(images=images, holes=empty, mouth=empty, face=empty, field=field, sampled=torch.ones_like(empty))


@dataclass(frozen=True)
class Method:
    """A named method (a checkpoint is named by its file name). ``stage`` is None for ``warp``: the Reenactor builds a GeometricWarp from
    each source's own geometry."""

    name: str
    stage: StageMethod | None


def load_neural_stage(path: Path, device: str) -> StageMethod:
    """The trained network as a generation stage, through the model package's agreed entry point."""
    check_checkpoint(path)
    try:
        from facereenact.model.inference import (
            load_stage,  # optional part of the install
        )
    except ImportError as error:
        raise NotAvailableError(
            f"the neural model is not available in this install ({error}); evaluate the methods source and warp instead"
        ) from None
    return load_stage(path, device=device)


def absolute_spec(spec: str) -> str:
    """The same methods with each checkpoint's path made absolute, so that workers running in
    another folder (or on another machine with the same shared paths) find it."""
    names = [part.strip() for part in spec.split(",") if part.strip()]
    return ",".join(
        f"{NEURAL_PREFIX}{Path(name[len(NEURAL_PREFIX) :]).expanduser().absolute()}" if name.startswith(NEURAL_PREFIX) and len(name) > len(NEURAL_PREFIX) else name
        for name in names
    )


def parse_methods(spec: str, device: str = "cpu") -> list[Method]:
    """``"source,warp,neural,neural:ckpt.safetensors"`` → methods, in that order (neural stages
    loaded; plain ``neural`` is the shipped model)."""
    names = [part.strip() for part in spec.split(",") if part.strip()]
    if not names:
        raise InputError("no methods given: choose from source, warp, neural, neural:PATH")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(f"method {duplicates[0]} is listed twice")
    methods = []
    for name in names:
        if name == "source":
            methods.append(Method(name, SourceStage()))
        elif name == "warp":
            methods.append(Method(name, None))
        elif name == "neural":
            methods.append(Method("neural", load_neural_stage(resolve_checkpoint(None), device)))
        elif name.startswith(NEURAL_PREFIX) and len(name) > len(NEURAL_PREFIX):
            path = Path(name[len(NEURAL_PREFIX) :]).expanduser()
            methods.append(Method(f"{NEURAL_PREFIX}{path.name}", load_neural_stage(path, device)))
        else:
            raise InputError(f"unknown method {name!r}: choose from source, warp, neural, neural:PATH")
    labels = [method.name for method in methods]
    if len(set(labels)) < len(labels):
        raise InputError("two checkpoints have the same file name; rename one so the report can tell them apart")
    return methods
