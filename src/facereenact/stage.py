"""The generation-stage contract: what the pipeline hands a stage and what it gets back.

A *method* (the training-free warp, a trained network, an evaluation baseline) is first bound
to one source: the pipeline calls :meth:`StageMethod.bound_to` once per source portrait, with
the morphable model, the source's vertices in source-crop pixels and the source crop. The
:class:`GenerationStage` it returns then turns the source crop into target crops, batch after
batch. Binding is separate so one loaded network serves many sources at once and each source's
expensive preparation (its PNCC, its encoder features, its visibility) happens once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from facereenact.face3d.morphable import MorphableModel


@dataclass
class DrivingMouths:
    """Cut-outs (B, 3, P, P) in [0, 1] around each driving frame's mouth, scaled so that the
    driving face has the target face's size, and the driving frames' own fitted vertices
    (B, N, 2) in cut-out pixels; ``usable`` (B,) is False for frames without a tracked face."""

    patches: torch.Tensor
    vertices: torch.Tensor
    usable: torch.Tensor


@dataclass
class IrisShifts:
    """The target faces as a warp of the picture renders them, in source-crop pixels: their
    vertices (B, N, 3) looking sideways as far as the sources do, and how far each iris then
    slides inside its eye opening: ``shifts`` (B, 2, 2) per eye, the irises' centres (B, 2, 2)
    and radii (B, 2) where they end up, and the eyes' outlines (B, 2, 6, 2). See
    :mod:`facereenact.face3d.irises` for why the iris slides in the picture rather than with
    the mesh."""

    vertices: torch.Tensor
    shifts: torch.Tensor
    centres: torch.Tensor
    radii: torch.Tensor
    outlines: torch.Tensor


@dataclass
class WarpTargets:
    """What the warp needs about the target faces, in source-crop pixels: vertices (B, N, 3),
    landmarks (B, 68, 3), and ``head`` (B, 2, S, S): for each target pixel, the source pixel the
    head around the face carries there (:func:`facereenact.warp.head.head_field`). A stage that
    warps the picture renders ``irises.vertices`` instead and slides the irises (a network reads
    the whole geometry from ``vertices``)."""

    vertices: torch.Tensor
    landmarks: torch.Tensor
    head: torch.Tensor
    mouths: DrivingMouths | None = None
    irises: IrisShifts | None = None


@dataclass
class WarpResult:
    """Warped crops (B, 3, S, S) in [0, 1] with holes filled; ``holes`` (B, 1, S, S) marks pixels
    the source could not supply, ``mouth`` (B, 1, S, S) the opening mouth, ``face`` (B, 1, S, S)
    the rendered face, ``field`` (B, S, S, 2) the backward warp in source-crop pixels.

    ``sampled`` (B, 1, S, S) in [0, 1] says how much of each output pixel is the source sampled
    along ``field`` (1) rather than made by the stage (0: a filled hole, a borrowed mouth, the
    network's own pixels); None when the stage makes every pixel. Where it is 1 the pipeline
    samples the source photo itself along the field, at the photo's full resolution.
    """

    images: torch.Tensor
    holes: torch.Tensor
    mouth: torch.Tensor
    face: torch.Tensor
    field: torch.Tensor
    sampled: torch.Tensor | None = None


class GenerationStage(Protocol):
    """Turns the source crop (1, 3, S, S) in [0, 1] into target crops given the target geometry."""

    def __call__(self, source_crop: torch.Tensor, targets: WarpTargets) -> WarpResult: ...


class StageMethod(Protocol):
    """A generation method not yet tied to a source (see the module's docstring)."""

    def bound_to(self, model: MorphableModel, source_vertices: torch.Tensor, source_crop: torch.Tensor) -> GenerationStage:
        """The stage for one source: ``source_vertices`` (1, N, 3) in pixels of ``source_crop``
        (1, 3, S, S) in [0, 1]. Bound to B sources (B, …: the frames of a source video), the
        stage turns the i-th source into the i-th of B targets."""
        ...
