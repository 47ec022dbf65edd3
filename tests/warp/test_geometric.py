"""The geometric warp and the Reenactor on real portraits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facereenact.face3d.params import angles_to_rotation
from facereenact.face3d.transfer import MotionMode, MotionOptions
from facereenact.pipeline.composite import Paster, crop, reenactment_box
from facereenact.pipeline.reenactor import ReenactOptions, Reenactor
from facereenact.warp.geometric import INPAINT_RADIUS, MOUTH_CAVITY, _gaussian_blur, _smooth_opening_edge, _thin_parts, fill_holes


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


def test_pasting_the_untouched_crop_gives_back_the_photo(portraits) -> None:  # type: ignore[no-untyped-def]
    image = portraits["lp_s12"]
    box = reenactment_box(np.array([[100.0, 90.0], [250.0, 260.0]]), 2.0)
    size = 256
    pasted = Paster(image, box, size).paste(crop(image, box, size))
    inside = (slice(int(box[1]) + 30, int(box[3]) - 30), slice(int(box[0]) + 30, int(box[2]) - 30))
    assert _psnr(pasted, image) > 30
    assert _psnr(pasted[inside], image[inside]) > 30


def test_driving_with_the_source_itself_reproduces_the_source(fitter, portraits) -> None:  # type: ignore[no-untyped-def]
    image = portraits["lp_s1"]
    reenactor = Reenactor(image, fitter)
    params = reenactor.source.params
    batch = reenactor.reenact(params, params)
    assert _psnr(batch.crops[0], reenactor.source_crop_uint8()) > 30
    assert batch.frames is not None and batch.frames.shape == (1, *image.shape)
    assert _psnr(batch.frames[0], image) > 30
    assert batch.stage.holes.mean() < 0.01


@pytest.mark.parametrize("name", ["lp_s5", "lp_s9"])
def test_closed_lips_driven_by_themselves_show_no_cavity(fitter, portraits, name: str) -> None:  # type: ignore[no-untyped-def]
    """These two portraits' fitted lip lines sit a pixel off the painted ones: the mouth's gap
    triangles cover a few scattered pixels, which must stay lips, not dark specks."""
    reenactor = Reenactor(portraits[name], fitter)
    params = reenactor.source.params
    batch = reenactor.reenact(params, params)
    assert float(batch.stage.mouth.sum()) == 0
    assert _psnr(batch.crops[0], reenactor.source_crop_uint8()) > 30


def test_a_turned_head_moves_the_face_and_keeps_the_background(fitter, portraits) -> None:  # type: ignore[no-untyped-def]
    image = portraits["lp_s12"]
    reenactor = Reenactor(image, fitter, ReenactOptions(motion=MotionOptions(MotionMode.absolute)))
    turned = reenactor.source.params.replace(rotation=angles_to_rotation(torch.tensor([[-25.0, 0.0, 0.0]])))
    batch = reenactor.reenact(turned, reenactor.source.params)
    source_crop = reenactor.source_crop_uint8().astype(np.float64)
    produced = batch.crops[0].astype(np.float64)
    face = batch.stage.face[0, 0].numpy() > 0
    assert np.abs(produced - source_crop)[face].mean() > 8, "the face must change when the head turns"
    corner = (slice(0, 20), slice(0, 20))
    assert np.abs(produced[corner] - source_crop[corner]).mean() < 2, "the far background stays still"
    assert reenactor.fitter.model.vertices(batch.targets).shape[0] == 1
    yaw = batch.targets.angles()[0, 0].item()
    assert abs(yaw + 25) < 1e-3


@settings(max_examples=25, deadline=None)
@given(sigma=st.floats(0.5, 12.0), height=st.integers(8, 96), width=st.integers(8, 96), seed=st.integers(0, 2**16))
def test_the_blur_is_a_normalised_gaussian_that_sees_zeros_beyond_the_border(sigma: float, height: int, width: int, seed: int) -> None:
    """Compared with the definition, written out as a direct sum over a zero-padded image."""
    images = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(seed))
    radius = max(1, int(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = torch.nn.functional.pad(images.double(), (radius, radius, radius, radius))
    expected = torch.zeros_like(images, dtype=torch.float64)
    for dy in range(2 * radius + 1):
        rows = padded[:, :, dy : dy + height] * kernel[dy]
        for dx in range(2 * radius + 1):
            expected += rows[..., dx : dx + width] * kernel[dx]
    assert torch.allclose(_gaussian_blur(images, sigma).double(), expected, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), density=st.floats(0.05, 0.6))
def test_a_thin_part_goes_whole_or_not_at_all(seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    mask = (rng.random((2, 1, 24, 32)) < density).astype(np.float32)
    thin = _thin_parts(torch.from_numpy(mask), 3).numpy() > 0
    # Where a 3 × 3 square fits: every pixel of the squares wholly inside the mask, written out.
    wide = np.zeros_like(thin)
    for y in range(mask.shape[2] - 2):
        for x in range(mask.shape[3] - 2):
            inside = mask[:, 0, y : y + 3, x : x + 3].all((1, 2))
            wide[inside, 0, y : y + 3, x : x + 3] = True
    assert not (thin & ~(mask > 0)).any() and not (thin & wide).any()
    for i in range(2):
        _, labels = cv2.connectedComponents(mask[i, 0].astype(np.uint8), connectivity=8)
        for label in range(1, labels.max() + 1):
            part = labels == label
            assert thin[i, 0][part].all() or not thin[i, 0][part].any(), "a part is kept or dropped whole"
            assert thin[i, 0][part].all() == (not wide[i, 0][part].any())


def test_a_thin_line_is_dropped_unless_it_widens_somewhere() -> None:
    mask = torch.zeros(1, 1, 20, 30)
    mask[0, 0, 4, 2:28] = 1  # a line alone: dropped
    mask[0, 0, 12, 2:28] = 1  # a line that widens into a 3 × 3 block: kept whole
    mask[0, 0, 11:14, 20:23] = 1
    thin = _thin_parts(mask, 3)[0, 0]
    assert torch.equal(thin[4], mask[0, 0, 4]) and float(thin[10:15].sum()) == 0


def _whole_picture_fill(images: torch.Tensor, holes: torch.Tensor, mouth: torch.Tensor) -> torch.Tensor:
    """What filling holes means, done the slow way: each whole picture inpainted."""
    images = torch.where(mouth > 0, torch.tensor(MOUTH_CAVITY)[None, :, None, None], images)
    rest = (holes > 0) & (mouth == 0)
    out = images.clone()
    for i in range(len(images)):
        picture = (images[i].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        filled = cv2.inpaint(picture, rest[i, 0].numpy().astype(np.uint8), INPAINT_RADIUS, cv2.INPAINT_TELEA)
        out[i] = torch.from_numpy(filled).permute(2, 0, 1).float() / 255
    return torch.where(rest, out, images)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), blobs=st.integers(1, 4), with_mouth=st.booleans())
def test_filling_around_the_holes_gives_the_whole_pictures_fill(seed: int, blobs: int, with_mouth: bool) -> None:
    rng = np.random.default_rng(seed)
    size = 96
    noise = rng.random((2, size, size, 3)).astype(np.float32)
    images = torch.from_numpy(np.stack([cv2.GaussianBlur(n, (0, 0), 2.0) for n in noise])).permute(0, 3, 1, 2).contiguous()
    holes = np.zeros((2, 1, size, size), np.float32)
    for _ in range(blobs):  # slivers and specks anywhere, the picture's edge included
        y, x = rng.integers(0, size, 2)
        holes[0, 0, max(y - 3, 0) : y + int(rng.integers(1, 12)), max(x - 2, 0) : x + int(rng.integers(1, 5))] = 1
    mouth = np.zeros_like(holes)
    if with_mouth:
        mouth[0, 0, 40:50, 30:60] = holes[0, 0, 40:50, 30:60] = 1
    holes_t, mouth_t = torch.from_numpy(holes), torch.from_numpy(mouth)
    filled = fill_holes(images.clone(), holes_t, mouth_t)
    assert torch.equal(filled, _whole_picture_fill(images, holes_t, mouth_t))
    assert torch.equal(filled[1], images[1]), "a picture without holes is left as it is"


def test_the_mouth_openings_edge_is_anti_aliased_inside_and_nothing_else_changes() -> None:
    """A mouth opening is a set of whole crop pixels; scaled up into a large photo its staircase
    would show. Its fill fades into the warped lips over the edge's inner pixels only."""
    size = 48
    warped = torch.zeros(1, 3, size, size)
    mouth = torch.zeros(1, 1, size, size)
    mouth[0, 0, 20:30, 10:40] = 1  # a wide opening
    mouth[0, 0, 30:33, 18:24] = 1  # with a step down, three pixels wide
    filled = torch.where(mouth > 0, torch.ones_like(warped), warped)
    filled[0, :, 2:5, 2:5] = 0.5  # an inpainted hole elsewhere
    smoothed = _smooth_opening_edge(filled, warped, mouth)
    outside = mouth[0, 0] == 0
    assert torch.equal(smoothed[0, :, outside], filled[0, :, outside]), "outside the opening, nothing changes"
    assert torch.allclose(smoothed[0, :, 23:27, 15:35], torch.ones(3, 4, 20), atol=1e-3), "its middle keeps the fill"
    edge = smoothed[0, 0, 20, 12:38]
    assert bool(((edge > 0.3) & (edge < 0.95)).all()), "its edge pixels are partly fill, partly lips"
    assert float(smoothed[0, 0, 31, 21]) > 0.8, "a three-pixel opening keeps most of its fill along its middle"
