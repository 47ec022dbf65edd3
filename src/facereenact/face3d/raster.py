"""Z-buffer rendering of triangles with per-vertex attributes, batched, on CPU and CUDA.

Two implementations of one contract. On CPU a compiled loop (:mod:`raster_compiled`) is fastest.
On other devices :func:`rasterize_vectorised` runs in PyTorch with no per-pixel Python loop: each
triangle's rows are enumerated at once, each row's exact run of covered pixels is laid end to
end with ``repeat_interleave``, and the nearest triangle per pixel wins a
``scatter_reduce(amax)`` over a key packing quantised depth above the triangle index.

Coordinates: vertices (B, N, 3) in pixels of the target image, pixel (row i, column j) centred
at (x=j, y=i); z is depth with larger values nearer the camera (orthographic projection).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: Barycentric slack so pixels exactly on a shared edge are not dropped by rounding.
_EDGE_TOLERANCE = 1e-5

@dataclass
class Rasterization:
    """What each covered pixel sees, stored sparsely (only covered pixels are kept).

    ``pixels`` (P,) are flat indices into (B, H, W); ``triangles`` (P,) the visible triangle;
    ``weights`` (P, 3) its barycentric weights; ``depth`` (P,) the interpolated depth.
    """

    shape: tuple[int, int, int]
    pixels: torch.Tensor
    triangles: torch.Tensor
    weights: torch.Tensor
    depth: torch.Tensor

    def scatter(self, values: torch.Tensor, fill: float) -> torch.Tensor:
        """Per-covered-pixel ``values`` (P, …) → a dense (B, H, W, …) map, ``fill`` elsewhere."""
        out = torch.full((self.shape[0] * self.shape[1] * self.shape[2], *values.shape[1:]), fill,
                         dtype=values.dtype, device=values.device)  # fmt: skip
        out.index_copy_(0, self.pixels, values)
        return out.view(*self.shape, *values.shape[1:])

    @property
    def mask(self) -> torch.Tensor:
        """Coverage (B, 1, H, W) as float 0/1."""
        return self.scatter(torch.ones_like(self.depth), 0.0).unsqueeze(1)

    @property
    def triangle_map(self) -> torch.Tensor:
        """The visible triangle per pixel (B, H, W), -1 on background."""
        return self.scatter(self.triangles, -1)

    @property
    def depth_map(self) -> torch.Tensor:
        """Depth per pixel (B, H, W), larger nearer; 0 on background."""
        return self.scatter(self.depth, 0.0)


def _edge_coefficients(corners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For triangles (…, 3, 2): barycentric weights as affine functions of (x, y).

    Returns coefficients (…, 3, 3) such that ``w_k = a_k·x + b_k·y + c_k`` and the signed
    doubled area (…) in the coordinates given (negative for a counter-clockwise triangle on screen).
    """
    x, y = corners[..., 0], corners[..., 1]
    x0, x1, x2 = x.unbind(-1)
    y0, y1, y2 = y.unbind(-1)
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    safe = torch.where(area.abs() < 1e-12, torch.full_like(area, 1e-12), area)
    # w0 is the edge (v1, v2), w1 the edge (v2, v0), w2 the edge (v0, v1).
    a = torch.stack([y1 - y2, y2 - y0, y0 - y1], -1) / safe[..., None]
    b = torch.stack([x2 - x1, x0 - x2, x1 - x0], -1) / safe[..., None]
    c = torch.stack([x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0], -1) / safe[..., None]
    return torch.stack([a, b, c], -1), area


def rasterize(
    vertices: torch.Tensor,
    triangles: torch.Tensor,
    height: int,
    width: int,
    cull_back_faces: bool = True,
) -> Rasterization:
    """Z-buffer ``triangles`` (F, 3) of ``vertices`` (B, N, 3) into an (H, W) image.

    With ``cull_back_faces``, triangles facing away from the camera are skipped: front faces
    are wound counter-clockwise as seen on screen (see ``morphable``), which is a negative signed
    area in pixel coordinates because their y axis points down.
    """
    if vertices.device.type == "cpu":
        return rasterize_compiled(vertices, triangles, height, width, cull_back_faces)
    return rasterize_vectorised(vertices, triangles, height, width, cull_back_faces)


def rasterize_compiled(
    vertices: torch.Tensor, triangles: torch.Tensor, height: int, width: int, cull_back_faces: bool = True
) -> Rasterization:
    """:func:`rasterize` on CPU with the compiled z-buffer loop."""
    from facereenact.face3d.raster_compiled import zbuffer  # numba compiles on first use

    batch = vertices.shape[0]
    winner = np.full((batch, height, width), -1, np.int32)
    weights = np.empty((batch, height, width, 3), np.float32)
    depth = np.empty((batch, height, width), np.float32)
    points = vertices.detach().to("cpu", torch.float32).contiguous().numpy()
    zbuffer(points, triangles.detach().cpu().long().contiguous().numpy(), cull_back_faces, _EDGE_TOLERANCE, winner, weights, depth)
    flat_winner = torch.from_numpy(winner).view(-1)
    covered = (flat_winner >= 0).nonzero().squeeze(1)
    return Rasterization(
        (batch, height, width),
        covered,
        flat_winner.index_select(0, covered).long(),
        torch.from_numpy(weights).view(-1, 3).index_select(0, covered),
        torch.from_numpy(depth).view(-1).index_select(0, covered),
    )


def rasterize_vectorised(
    vertices: torch.Tensor, triangles: torch.Tensor, height: int, width: int, cull_back_faces: bool = True
) -> Rasterization:
    """:func:`rasterize` in PyTorch on any device (CUDA's path; also runs on CPU)."""
    device = vertices.device
    batch, n_triangles = vertices.shape[0], triangles.shape[0]
    n_pixels = batch * height * width
    triangle_bits = max(1, int(n_triangles).bit_length())
    # int32 keys (half the memory traffic of int64) leave ≥11 bits of depth for up to a million
    # triangles: depth is normalised per image, so that is still sub-pixel depth resolution.
    # Levels stay below 2^23 so float32 holds them exactly.
    key_dtype = torch.int32 if triangle_bits <= 20 else torch.int64
    depth_bits = min((31 if key_dtype == torch.int32 else 63) - triangle_bits, 23)
    depth_levels = 2**depth_bits - 1

    vertex_ids = triangles.reshape(1, -1) + (torch.arange(batch, device=device) * vertices.shape[1])[:, None]
    corners = vertices.reshape(-1, 3).float().index_select(0, vertex_ids.reshape(-1)).view(batch * n_triangles, 3, 3)
    coefficients, area = _edge_coefficients(corners[..., :2])  # (BF, 3 weights, [a, b, c])
    triangle_z = corners[..., 2].contiguous()
    z = vertices[..., 2].float()
    z_low = z.amin(1)
    z_scale = depth_levels / (z.amax(1) - z_low).clamp(min=1e-6)
    image_of = torch.arange(batch, device=device).repeat_interleave(n_triangles)
    z_levels = (triangle_z - z_low[image_of, None]) * z_scale[image_of, None]  # (BF, 3)
    depth_plane = (coefficients * z_levels[..., None]).sum(1)  # (BF, 3): level = A·x + B·y + C

    visible = area < 0 if cull_back_faces else area != 0
    low = corners[..., :2].amin(1).ceil().clamp(min=0)
    high = torch.minimum(corners[..., :2].amax(1).floor(), torch.tensor([width - 1.0, height - 1.0], device=device))
    rows_per_triangle = ((high[:, 1] - low[:, 1] + 1).clamp(min=0) * visible * (high[:, 0] >= low[:, 0])).long()
    # Everything a scanline needs, one row per triangle, gathered with a single index_select.
    row_record = torch.cat([coefficients.reshape(-1, 9), depth_plane, low, high[:, :1]], dim=1)

    # Scanlines: one record per (triangle, row) with the exact run of pixels inside the triangle,
    # so the per-pixel work below touches only covered pixels.
    drawn = rows_per_triangle.nonzero().squeeze(1)
    rows_per_triangle = rows_per_triangle[drawn]
    row_owner = torch.repeat_interleave(drawn, rows_per_triangle)
    first_row = torch.repeat_interleave(torch.cumsum(rows_per_triangle, 0) - rows_per_triangle, rows_per_triangle)
    record = row_record.index_select(0, row_owner)
    coeff = record[:, :9].view(-1, 3, 3)
    plane, row_low, row_high_x = record[:, 9:12], record[:, 12:14], record[:, 14]
    y = row_low[:, 1] + (torch.arange(row_owner.numel(), device=device) - first_row).float()
    a = coeff[..., 0]
    offset = coeff[..., 1] * y[:, None] + coeff[..., 2]  # weight_k(x) = a_k·x + offset_k
    bound = (-_EDGE_TOLERANCE - offset) / torch.where(a == 0, torch.ones_like(a), a)
    infinity = torch.full_like(bound, float("inf"))
    lower = torch.where(a > 0, bound, -infinity).amax(1)
    upper = torch.where(a < 0, bound, infinity).amin(1)
    blocked = ((a == 0) & (offset < -_EDGE_TOLERANCE)).any(1)
    x_start = torch.maximum(lower.ceil(), row_low[:, 0])
    x_end = torch.minimum(upper.floor(), row_high_x)
    run = ((x_end - x_start + 1).clamp(min=0) * ~blocked).long()

    row_level = plane[:, 0] * x_start + plane[:, 1] * y + plane[:, 2]
    row_slope = plane[:, 0].contiguous()
    row_pixel = (image_of[row_owner] * height + y.long()) * width + x_start.long()
    row_key = (row_owner % n_triangles).to(key_dtype)

    # Per pixel, only 1-D gathers (index_select is several times faster than fancy indexing).
    pixel_row = torch.repeat_interleave(torch.arange(run.numel(), device=device), run)
    step = torch.arange(pixel_row.numel(), device=device) - torch.repeat_interleave(torch.cumsum(run, 0) - run, run)
    level = row_level.index_select(0, pixel_row) + row_slope.index_select(0, pixel_row) * step.float()
    key = (level.clamp(0, depth_levels).to(key_dtype) << triangle_bits) | row_key.index_select(0, pixel_row)
    pixel = row_pixel.index_select(0, pixel_row) + step

    zbuffer = torch.full((n_pixels,), -1, dtype=key_dtype, device=device)
    zbuffer.scatter_reduce_(0, pixel, key, reduce="amax")

    covered = (zbuffer >= 0).nonzero().squeeze(1)
    winner = (zbuffer.index_select(0, covered) & ((1 << triangle_bits) - 1)).long()
    flat_winner = covered // (height * width) * n_triangles + winner
    record = torch.cat([coefficients.reshape(-1, 9), triangle_z], dim=1).index_select(0, flat_winner)
    coeff = record[:, :9].view(-1, 3, 3)
    triangle_depth = record[:, 9:]
    cy = ((covered // width) % height).float()
    cx = (covered % width).float()
    bary = (coeff[..., 0] * cx[:, None] + coeff[..., 1] * cy[:, None] + coeff[..., 2]).clamp(min=0)
    bary = bary / (bary[:, 0] + bary[:, 1] + bary[:, 2]).clamp(min=1e-12)[:, None]
    depth = bary[:, 0] * triangle_depth[:, 0] + bary[:, 1] * triangle_depth[:, 1] + bary[:, 2] * triangle_depth[:, 2]
    return Rasterization((batch, height, width), covered, winner, bary, depth)


def interpolate(raster: Rasterization, triangles: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """Per-vertex ``attributes`` (B or 1, N, C) → images (B, C, H, W), zero on background."""
    batch, height, width = raster.shape
    n_vertices, channels = attributes.shape[1], attributes.shape[2]
    vertex_ids = triangles.index_select(0, raster.triangles)  # (P, 3)
    if attributes.shape[0] > 1:
        vertex_ids = vertex_ids + (raster.pixels // (height * width) * n_vertices)[:, None]
    values = attributes.reshape(-1, channels).index_select(0, vertex_ids.reshape(-1)).view(-1, 3, channels)
    w = raster.weights.to(values.dtype)
    blended = values[:, 0] * w[:, 0:1] + values[:, 1] * w[:, 1:2] + values[:, 2] * w[:, 2:3]
    out = torch.zeros(batch * height * width, channels, dtype=values.dtype, device=values.device)
    out.index_copy_(0, raster.pixels, blended)
    return out.view(batch, height, width, channels).permute(0, 3, 1, 2)


def render_attributes(
    vertices: torch.Tensor, triangles: torch.Tensor, attributes: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rasterize and interpolate in one call: (images (B, C, H, W), mask (B, 1, H, W))."""
    raster = rasterize(vertices, triangles, height, width)
    return interpolate(raster, triangles, attributes), raster.mask
