"""The blendshape signal: channels, regions, gaps, mirroring and which face is read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facereenact.face3d.blendshapes import CHANNEL_NAMES, CHANNELS, N_BLENDSHAPES, Region, fill_gaps, mirror_order, nearest_face, region_mask


def test_every_channel_belongs_to_exactly_one_region() -> None:
    masks = np.stack([region_mask([region]) for region in Region])
    assert (masks.sum(0) == 1).all()
    assert region_mask(Region).all() and not region_mask([]).any()
    assert len(set(CHANNEL_NAMES)) == N_BLENDSHAPES == sum(len(names) for names in CHANNELS.values())


def test_mirroring_trades_left_and_right() -> None:
    order = mirror_order()
    assert sorted(order) == list(range(N_BLENDSHAPES)) and (order[order] == np.arange(N_BLENDSHAPES)).all(), "a permutation, its own inverse"
    assert CHANNEL_NAMES[order[CHANNEL_NAMES.index("eyeBlinkLeft")]] == "eyeBlinkRight"
    assert CHANNEL_NAMES[order[CHANNEL_NAMES.index("mouthLeft")]] == "mouthRight"
    assert CHANNEL_NAMES[order[CHANNEL_NAMES.index("browInnerUp")]] == "browInnerUp"


@settings(max_examples=50, deadline=None)
@given(found=st.lists(st.booleans(), min_size=1, max_size=30), seed=st.integers(0, 1000))
def test_unread_frames_lie_between_their_neighbours(found: list[bool], seed: int) -> None:
    mask = np.array(found)
    scores = np.random.default_rng(seed).random((len(mask), 3)).astype(np.float32)
    filled = fill_gaps(scores, mask)
    if not mask.any():
        assert (filled == 0).all()
        return
    assert np.array_equal(filled[mask], scores[mask]), "read frames are kept"
    good = np.flatnonzero(mask)
    for index in np.flatnonzero(~mask):
        before, after = good[good < index], good[good > index]
        neighbours = scores[[*before[-1:], *after[:1]]]
        assert (filled[index] >= neighbours.min(0) - 1e-6).all() and (filled[index] <= neighbours.max(0) + 1e-6).all()


def test_the_face_read_is_the_one_the_fitter_follows() -> None:
    def face(x: float) -> tuple[np.ndarray, np.ndarray]:
        points = np.zeros((478, 3), np.float32)
        points[:, 0] = x + np.linspace(-40, 40, 478)
        return np.full(N_BLENDSHAPES, x, np.float32), points

    faces = [face(100.0), face(400.0)]
    chosen = nearest_face(faces, np.array([390.0, 0.0]), size=80.0)
    assert chosen is not None and chosen[0][0] == 400.0
    assert nearest_face(faces, np.array([250.0, 0.0]), size=80.0) is None, "no face where the fitter's is"
    assert nearest_face(faces, np.array([100.0, 0.0]), size=float("nan")) is None
    assert nearest_face([], np.array([100.0, 0.0]), size=80.0) is None


def test_mirrored_parameters_swap_the_sides(fitter) -> None:  # type: ignore[no-untyped-def]
    from facereenact.face3d.mirror import ParamMirror
    from facereenact.face3d.params import FaceParams

    params = FaceParams(
        rotation=torch.eye(3)[None], scale=torch.ones(1), translation=torch.zeros(1, 2), shape=torch.zeros(1, 40), expression=torch.zeros(1, 10),
        blendshapes=torch.zeros(1, N_BLENDSHAPES),
    )  # fmt: skip
    params.blendshapes[0, CHANNEL_NAMES.index("eyeBlinkLeft")] = 0.7
    mirrored = ParamMirror(fitter.model)(params, width=100.0)
    assert float(mirrored.blendshapes[0, CHANNEL_NAMES.index("eyeBlinkRight")]) == pytest.approx(0.7)
    assert float(mirrored.blendshapes[0, CHANNEL_NAMES.index("eyeBlinkLeft")]) == 0.0
