"""PNCC rendering: the posed mesh coloured by each vertex's normalised mean-face position.

Equal colours in two PNCC images mean the same surface point, which is what makes the
identity-matched reconstruction a dense correspondence.
"""

from __future__ import annotations

import torch

from facereenact.face3d.morphable import MorphableModel
from facereenact.face3d.params import FaceParams
from facereenact.face3d.raster import Rasterization, interpolate, rasterize


def vertices_to_crop(vertices: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Image-space vertices (B, N, 3) → pixels of ``size``² crops of square ``boxes`` (B, 4).

    Depth is scaled like x so that it stays in pixel units of the crop.
    """
    scale = size / (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-6)
    origin = torch.stack([boxes[:, 0], boxes[:, 1], torch.zeros_like(boxes[:, 0])], -1)
    return (vertices - origin[:, None, :]) * scale[:, None, None]


def params_to_crop(params: FaceParams, boxes: torch.Tensor, size: int) -> FaceParams:
    """The same faces described in pixels of ``size``² crops of square ``boxes`` (B, 4): the
    projection of the returned parameters equals :func:`vertices_to_crop` of the original's."""
    scale = size / (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-6)
    return params.replace(scale=params.scale * scale, translation=(params.translation - boxes[:, :2]) * scale[:, None])


def render_pncc(
    model: MorphableModel,
    vertices: torch.Tensor,
    height: int,
    width: int,
) -> tuple[torch.Tensor, torch.Tensor, Rasterization]:
    """PNCC images (B, 3, H, W) in [0, 1], coverage masks (B, 1, H, W) and the rasterization
    (reusable for other attributes) of vertices already in the target image's pixels."""
    raster = rasterize(vertices, model.triangles, height, width)
    return interpolate(raster, model.triangles, model.ncc[None]), raster.mask, raster


def render_identity_matched_pncc(
    model: MorphableModel,
    source: FaceParams,
    driving: FaceParams,
    boxes: torch.Tensor,
    size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reconstructed driving PNCC (source identity, driving pose/expression) in crops.

    ``boxes`` (B, 4) are square crop boxes in the driving frames; returns (B, 3, S, S) and masks.
    """
    vertices = vertices_to_crop(model.identity_matched_vertices(source, driving), boxes, size)
    pncc, mask, _ = render_pncc(model, vertices, size, size)
    return pncc, mask
