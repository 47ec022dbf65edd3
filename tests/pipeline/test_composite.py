"""Tests for facereenact.pipeline.composite: pasting back at the photo's own resolution."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facereenact.pipeline.composite import DEADBAND, Paster, crop

SIZE = 64


def _photo() -> np.ndarray:
    """A textured photo with detail down to single pixels."""
    rng = np.random.default_rng(1)
    ys, xs = np.mgrid[0:240, 0:320]
    smooth = (127 + 60 * np.sin(xs / 7.0) * np.cos(ys / 5.0))[..., None]
    return np.clip(smooth + rng.normal(0, 25, (240, 320, 1)), 0, 255).astype(np.uint8).repeat(3, 2)


BOX = np.array([100.0, 50.0, 228.0, 178.0])  # 128 px: the crop is made at half the photo's resolution


def _identity_field(offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return np.stack([xs + offset[0], ys + offset[1]], -1)


@settings(max_examples=15, deadline=None)
@given(noise=st.floats(0.0, DEADBAND[0] / 2 / np.sqrt(2) * 0.99))
def test_motion_below_the_deadband_leaves_the_photo_exactly_as_it_is(noise: float) -> None:
    """Tracking noise around a still pose (motion under the deadband: each offset at most
    ``noise`` crop pixels, a crop pixel being 2 photo pixels here) moves nothing: the output is
    the photo, to the bit."""
    photo = _photo()
    paster = Paster(photo, BOX, SIZE)
    rng = np.random.default_rng(2)
    field = _identity_field() + rng.uniform(-noise, noise, (SIZE, SIZE, 2)).astype(np.float32)
    out = paster.paste(crop(photo, BOX, SIZE), field, np.ones((SIZE, SIZE), np.float32))
    assert np.array_equal(out, photo)


def test_a_moved_field_moves_the_photo_at_full_resolution() -> None:
    """A field shifting by 2 crop pixels (4 photo pixels) moves the photo's own pixels, not the
    crop's: the detail the crop lost at half resolution is in the output."""
    photo = _photo()
    paster = Paster(photo, BOX, SIZE)
    low_res = crop(photo, BOX, SIZE)
    sharp = paster.paste(low_res, _identity_field((2.0, 0.0)), np.ones((SIZE, SIZE), np.float32))
    scaled = paster.paste(low_res)
    inner = (slice(70, 160), slice(120, 200))  # well inside the box, away from the feathered edge
    shifted = photo[inner[0], inner[1].start + 4 : inner[1].stop + 4]
    assert np.abs(sharp[inner].astype(int) - shifted).mean() < 1.0
    assert np.abs(scaled[inner].astype(int) - photo[inner]).mean() > 5, "the crop scaled up has lost the photo's detail"
    outside = np.ones(photo.shape[:2], bool)
    outside[paster.region] = False
    assert np.array_equal(sharp[outside], photo[outside]), "nothing outside the box changes"


@pytest.mark.parametrize("shift", [0.0, 2.0])
def test_the_stages_own_pixels_come_from_the_crop_where_something_moved(shift: float) -> None:
    """Where the stage made the pixels (``sampled`` 0) and the field moves, the crop is pasted as
    before; where nothing moved, the photo stays, holes or not (still means still)."""
    photo = _photo()
    paster = Paster(photo, BOX, SIZE)
    generated = np.full((SIZE, SIZE, 3), 200, np.uint8)
    field = _identity_field() + np.float32(shift)
    out = paster.paste(generated, field, np.zeros((SIZE, SIZE), np.float32))
    expected = paster.paste(generated) if shift else photo
    assert np.array_equal(out, expected)
