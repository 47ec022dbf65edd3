"""The rasterizer: coverage, z-buffering, interpolation, culling and batching."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facereenact.face3d.params import N_EXPRESSION, N_SHAPE, FaceParams, angles_to_rotation
from facereenact.face3d.raster import (
    Rasterization,
    interpolate,
    rasterize,
    rasterize_compiled,
    rasterize_vectorised,
    render_attributes,
)

#: Both implementations must honour the same contract; ``rasterize`` picks one by device.
Rasterizer = Callable[..., Rasterization]
IMPLEMENTATIONS = pytest.mark.parametrize("implementation", [rasterize_compiled, rasterize_vectorised], ids=["compiled", "vectorised"])

# Front faces are counter-clockwise as seen on screen: down the left side, then right.
SQUARE = torch.tensor([[2.0, 2.0, 1.0], [2.0, 12.0, 1.0], [12.0, 12.0, 1.0], [12.0, 2.0, 1.0]])
SQUARE_TRIANGLES = torch.tensor([[0, 1, 2], [0, 2, 3]])


@IMPLEMENTATIONS
def test_square_split_in_two_covers_every_pixel_once_without_gaps(implementation: Rasterizer) -> None:
    raster = implementation(SQUARE[None], SQUARE_TRIANGLES, 16, 16)
    mask = raster.mask[0, 0]
    assert mask[2:13, 2:13].all(), "pixels on and inside the square must be covered"
    assert mask.sum() == 11 * 11
    triangle = raster.triangle_map[0]
    assert set(triangle[mask > 0].unique().tolist()) == {0, 1}


@IMPLEMENTATIONS
def test_nearer_triangle_wins_whatever_the_drawing_order(implementation: Rasterizer) -> None:
    far = torch.tensor([[0.0, 0.0, 1.0], [0.0, 20.0, 1.0], [20.0, 0.0, 1.0]])
    near = far.clone()
    near[:, 2] = 5.0
    vertices = torch.cat([far, near])[None]
    for order in ([[0, 1, 2], [3, 4, 5]], [[3, 4, 5], [0, 1, 2]]):
        triangles = torch.tensor(order)
        raster = implementation(vertices, triangles, 24, 24)
        near_index = order.index([3, 4, 5])
        covered = raster.triangle_map[0] >= 0
        assert (raster.triangle_map[0][covered] == near_index).all()
        assert torch.allclose(raster.depth_map[0][covered], torch.tensor(5.0))


@IMPLEMENTATIONS
def test_depth_interpolates_across_a_slanted_triangle(implementation: Rasterizer) -> None:
    vertices = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 30.0, 0.0], [30.0, 0.0, 30.0]]])
    raster = implementation(vertices, torch.tensor([[0, 1, 2]]), 32, 32)
    depth = raster.depth_map[0]
    ys, xs = torch.nonzero(depth > 0, as_tuple=True)
    assert torch.allclose(depth[ys, xs], xs.float(), atol=1e-3), "depth equals x on the plane z = x"


@IMPLEMENTATIONS
def test_back_faces_are_culled_unless_asked(implementation: Rasterizer) -> None:
    reversed_winding = SQUARE[None][:, [0, 3, 2]]  # clockwise on screen: a back face
    triangles = torch.tensor([[0, 1, 2]])
    assert implementation(reversed_winding, triangles, 16, 16).mask.sum() == 0
    assert implementation(reversed_winding, triangles, 16, 16, cull_back_faces=False).mask.sum() > 0


def test_linear_attributes_are_reproduced_exactly() -> None:
    attributes = torch.stack([SQUARE[:, 0], SQUARE[:, 1]], -1)[None]  # the vertex's own x, y
    images, mask = render_attributes(SQUARE[None], SQUARE_TRIANGLES, attributes, 16, 16)
    ys, xs = torch.nonzero(mask[0, 0] > 0, as_tuple=True)
    assert torch.allclose(images[0, 0, ys, xs], xs.float(), atol=1e-4)
    assert torch.allclose(images[0, 1, ys, xs], ys.float(), atol=1e-4)


@IMPLEMENTATIONS
def test_geometry_outside_the_image_is_clipped(implementation: Rasterizer) -> None:
    shifted = SQUARE.clone()
    shifted[:, :2] -= 7
    raster = implementation(shifted[None], SQUARE_TRIANGLES, 16, 16)
    assert raster.mask[0, 0].sum() == 6 * 6  # x, y in [0, 5]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_batch_equals_one_at_a_time(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    vertices = torch.rand(3, 30, 3, generator=generator) * torch.tensor([40.0, 40.0, 10.0])
    triangles = torch.randint(0, 30, (25, 3), generator=generator)
    colours = torch.rand(3, 30, 2, generator=generator)
    batched, batched_mask = render_attributes(vertices, triangles, colours, 40, 40)
    for i in range(3):
        single, single_mask = render_attributes(vertices[i : i + 1], triangles, colours[i : i + 1], 40, 40)
        assert torch.equal(single_mask, batched_mask[i : i + 1])
        assert torch.allclose(single, batched[i : i + 1], atol=1e-5)


@IMPLEMENTATIONS
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_matches_a_brute_force_reference(implementation: Rasterizer, seed: int) -> None:
    """Every pixel against every triangle, in numpy: the same visible triangle and depth."""
    rng = np.random.default_rng(seed)
    vertices = rng.uniform([0, 0, 0], [24, 24, 10], size=(12, 3)).astype(np.float32)
    triangles = rng.integers(0, 12, size=(8, 3))
    raster = implementation(torch.from_numpy(vertices)[None], torch.from_numpy(triangles), 24, 24)
    ys, xs = np.mgrid[0:24, 0:24]
    best = np.full((24, 24), -np.inf)
    for tri in triangles:
        (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = vertices[tri]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area >= 0:  # clockwise on screen (a back face) or degenerate
            continue
        w0 = ((x1 - xs) * (y2 - ys) - (x2 - xs) * (y1 - ys)) / area
        w1 = ((x2 - xs) * (y0 - ys) - (x0 - xs) * (y2 - ys)) / area
        w2 = 1 - w0 - w1
        inside = (w0 >= 1e-4) & (w1 >= 1e-4) & (w2 >= 1e-4)  # strictly inside: no edge ambiguity
        depth = w0 * z0 + w1 * z1 + w2 * z2
        best = np.where(inside & (depth > best), depth, best)
    strictly = np.isfinite(best)
    ours = raster.depth_map[0].numpy()
    covered = raster.mask[0, 0].numpy() > 0
    assert covered[strictly].all()
    # Where the reference is unambiguous, our depth is at least the nearest strict-inside depth.
    assert np.all(ours[strictly] >= best[strictly] - 1e-3 * 10)


def test_interpolate_accepts_per_image_attributes() -> None:
    vertices = SQUARE[None].expand(2, -1, -1)
    attributes = torch.stack([torch.zeros(4, 1), torch.ones(4, 1)])
    raster = rasterize(vertices, SQUARE_TRIANGLES, 16, 16)
    images = interpolate(raster, SQUARE_TRIANGLES, attributes)
    assert images[0].max() == 0
    assert torch.allclose(images[1][raster.mask[1] > 0], torch.tensor(1.0))


def test_implementations_agree_on_a_fitted_face(model) -> None:  # type: ignore[no-untyped-def]
    """The grid mesh posed and scaled as in a 256² crop: the same coverage, the same visible
    triangle on all but a few depth-tie pixels, the same depth."""
    params = FaceParams(
        rotation=angles_to_rotation(torch.tensor([[25.0, 8.0, 4.0], [-30.0, -10.0, -6.0]])),
        scale=torch.ones(2),
        translation=torch.zeros(2, 2),
        shape=torch.zeros(2, N_SHAPE),
        expression=torch.zeros(2, N_EXPRESSION),
    )
    vertices = model.vertices(params)
    extent = vertices[..., :2].amax(1) - vertices[..., :2].amin(1)
    centre = (vertices[..., :2].amax(1) + vertices[..., :2].amin(1)) / 2
    scale = 128 / extent.amax(1)
    pixels = torch.cat([(vertices[..., :2] - centre[:, None]) * scale[:, None, None] + 128, vertices[..., 2:] * scale[:, None, None]], -1)
    compiled = rasterize_compiled(pixels, model.triangles, 256, 256)
    vectorised = rasterize_vectorised(pixels, model.triangles, 256, 256)
    assert torch.equal(compiled.mask, vectorised.mask)
    assert compiled.pixels.numel() > 10_000
    same = (compiled.triangle_map == vectorised.triangle_map).float().mean()
    assert same > 0.999
    assert torch.allclose(compiled.depth_map, vectorised.depth_map, atol=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu() -> None:
    cpu = rasterize(SQUARE[None], SQUARE_TRIANGLES, 16, 16)
    gpu = rasterize(SQUARE[None].cuda(), SQUARE_TRIANGLES.cuda(), 16, 16)
    assert torch.equal(cpu.mask, gpu.mask.cpu())
    assert torch.equal(cpu.triangle_map, gpu.triangle_map.cpu())
