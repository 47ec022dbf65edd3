"""Refining a fit's expression to MediaPipe's landmarks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facereenact.face3d.blendshapes import CHANNEL_NAMES, Region, region_mask
from facereenact.face3d.landmark_fit import BROWS, FITTED
from facereenact.face3d.params import N_EXPRESSION, FaceParams


def _pictured(refiner, params: FaceParams) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """(B, 478, 2) MediaPipe-like landmarks of the model itself: the fitted points where the
    fit puts them (the rest at zero, unused)."""
    coefficients = torch.cat([params.shape, params.expression, params.blendshapes], 1)
    surface = refiner.bound_mean + torch.einsum("lcj,bj->blc", refiner.bound_all, coefficients)
    placed = torch.einsum("bij,blj->bli", params.rotation[:, :2], surface) * params.scale[:, None, None]
    placed = placed * torch.tensor([1.0, -1.0]) + params.translation[:, None, :2]
    points = torch.zeros(len(params), 478, 2)
    points[:, torch.from_numpy(FITTED)] = placed
    return points


@pytest.fixture(scope="module")
def photo_fit(fitter, portraits):  # type: ignore[no-untyped-def]
    return fitter.fit_one(portraits["lp_s1"]).params


def test_a_fit_already_on_the_landmarks_stays(fitter, photo_fit) -> None:  # type: ignore[no-untyped-def]
    change = fitter.refiner.change(photo_fit, _pictured(fitter.refiner, photo_fit))
    assert float(change.abs().max()) < 1e-3


def test_the_refinement_follows_a_raised_brow_and_an_opened_jaw(fitter, photo_fit) -> None:  # type: ignore[no-untyped-def]
    """Landmarks of the same face with its brows raised and its jaw opened: the refined fit lands
    much closer to them (one ridge step goes more than half the way), its brows and its lower lip
    moving with them."""
    moved = photo_fit.blendshapes.clone()
    for name in ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"):
        moved[0, CHANNEL_NAMES.index(name)] += 0.5
    expression = photo_fit.expression.clone()
    expression[0, 0] += 1.0
    refiner = fitter.refiner
    points = _pictured(refiner, photo_fit.replace(blendshapes=moved, expression=expression))
    refined = refiner.apply(photo_fit, refiner.change(photo_fit, points))
    fitted = torch.from_numpy(FITTED)
    before, after, wanted = (_pictured(refiner, photo_fit)[0, fitted], _pictured(refiner, refined)[0, fitted], points[0, fitted])
    assert float((after - wanted).norm(dim=-1).mean()) < 0.5 * float((before - wanted).norm(dim=-1).mean())

    def followed(indices: tuple[int, ...]) -> float:
        """How much of the wanted motion of these points the refinement made (1: all of it)."""
        rows = [int(np.flatnonzero(FITTED == i)[0]) for i in indices]
        made, asked = after[rows] - before[rows], wanted[rows] - before[rows]
        return float((made * asked).sum() / asked.square().sum())

    assert followed(BROWS) > 0.5, "the brows rise with the landmarks"
    assert followed((17, 84, 314, 181, 405)) > 0.5, "the lower lip moves with them"


def test_tracking_keeps_only_the_refinements_motion(fitter, data_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Through a clip the refinement's constant part (the fitted identity's mismatch with the
    picture) is taken off: what tracking adds to the regressor's and MediaPipe's expression has
    a median of zero over the clip, and moves from frame to frame."""
    from facereenact.io.video import iter_frames

    frames = list(iter_frames(data_dir / "clips" / "dpe_s.mp4", 9))
    refined = fitter.track(frames, fps=25.0, smoothing=False)
    monkeypatch.setattr(fitter, "refiner", None)
    plain = fitter.track(frames, fps=25.0, smoothing=False)
    added = torch.cat([refined.params.expression - plain.params.expression, refined.params.blendshapes - plain.params.blendshapes], 1)
    assert added.shape[1] == N_EXPRESSION + len(CHANNEL_NAMES)
    # The eye scores then take the clip's eyelid offset (face3d.eyelids), made on the refined fit.
    not_eyes = torch.from_numpy(np.r_[np.ones(N_EXPRESSION, bool), ~region_mask([Region.eyes])])
    assert float(added[:, not_eyes].median(dim=0).values.abs().max()) < 1e-5
    assert float(added.std(dim=0).max()) > 1e-3


def test_a_basis_file_without_mediapipes_landmarks_is_a_clear_error(assets, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from safetensors.numpy import save_file

    from facereenact.errors import AssetError
    from facereenact.face3d import fitter as fitter_module
    from facereenact.face3d.expression_basis import load_mediapipe_on_mean_face

    older = tmp_path / "basis.safetensors"
    save_file({"blendshape_basis": np.zeros((3, 1), np.float32)}, str(older))
    with pytest.raises(ValueError, match="no mediapipe_on_mean_face"):
        load_mediapipe_on_mean_face(older)
    monkeypatch.setattr(fitter_module, "load_mediapipe_on_mean_face", lambda: load_mediapipe_on_mean_face(older))
    with pytest.raises(AssetError, match="MediaPipe's landmarks on the mean face could not be read"):
        fitter_module.FaceFitter(assets)
