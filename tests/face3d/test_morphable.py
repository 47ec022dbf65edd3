"""The morphable model: loading, landmarks, and the identity-matched reconstruction."""

from __future__ import annotations

import pickle

import numpy as np
import torch

from facereenact.face3d.blendshapes import N_BLENDSHAPES
from facereenact.face3d.morphable import identity_matched, load_morphable_model
from facereenact.face3d.params import FaceParams, angles_to_rotation
from facereenact.face3d.pncc import params_to_crop, vertices_to_crop
from facereenact.io.assets import Assets


def _face_size(vertices: torch.Tensor) -> torch.Tensor:
    span = vertices[..., :2].amax(1) - vertices[..., :2].amin(1)
    return span.max(-1).values


def test_grid_model_layout(model) -> None:  # type: ignore[no-untyped-def]
    assert model.mean.shape == (4096, 3)
    assert model.basis.shape == (4096 * 3, 50 + N_BLENDSHAPES)
    assert 7000 < len(model.triangles) < 2 * 63 * 63
    assert model.ncc.min() >= 0 and model.ncc.max() <= 1
    assert model.landmark_basis.shape == (68 * 3, 50 + N_BLENDSHAPES)


def test_rebuilding_with_its_own_identity_is_exact(model, fitter, portraits) -> None:  # type: ignore[no-untyped-def]
    face = fitter.fit_one(portraits["lp_s12"])
    rebuilt = model.identity_matched_vertices(face.params, face.params)
    assert torch.equal(rebuilt, model.vertices(face.params))


def test_another_identity_changes_shape_but_keeps_the_pose(model, fitter, portraits) -> None:  # type: ignore[no-untyped-def]
    names = sorted(portraits)
    fits = {name: fitter.fit_one(portraits[name]).params for name in names}
    nose_tip = 30
    for driving_name in names:
        driving = fits[driving_name]
        own = model.vertices(driving)
        own_nose = model.landmarks(driving)[0, nose_tip, :2]
        for source_name in names:
            if source_name == driving_name:
                continue
            matched = identity_matched(fits[source_name], driving)
            rebuilt = model.vertices(matched)
            change = (rebuilt - own).norm(dim=-1).max() / _face_size(own)[0]
            # Real identities differ by 0.8–4.6 % of the face size at the most-changed point here.
            assert change > 0.005, f"{source_name}'s identity did not change {driving_name}'s shape"
            moved = (model.landmarks(matched)[0, nose_tip, :2] - own_nose).norm() / _face_size(own)[0]
            assert moved < 0.03, f"nose tip moved {moved:.3f} of the face size ({source_name} on {driving_name})"


def test_landmarks_follow_the_mesh(model, fitter, portraits) -> None:  # type: ignore[no-untyped-def]
    """Landmarks are interpolated on the mesh: each lies within a few pixels of some vertex."""
    params = fitter.fit_one(portraits["lp_s1"]).params
    vertices = model.vertices(params)[0]
    landmarks = model.landmarks(params)[0]
    nearest = torch.cdist(landmarks[:, :2], vertices[:, :2]).min(1).values
    face_size = _face_size(vertices[None])[0]
    assert (nearest < 0.03 * face_size).all()


def test_dense_model_is_used_when_supplied(tmp_path, assets, model) -> None:  # type: ignore[no-untyped-def]
    """A user-supplied bfm_noneck_v3.pkl replaces the grid; here one built from the grid itself."""
    folder = tmp_path / "assets"
    (folder / "3ddfa").mkdir(parents=True)
    for file in assets.root.joinpath("3ddfa").iterdir():
        (folder / "3ddfa" / file.name).symlink_to(file)
    mean = model.mean.numpy().T.reshape(-1, 1, order="F")
    basis = model.basis.numpy()
    keypoints = np.repeat(np.arange(68) * 50, 3) * 3 + np.tile([0, 1, 2], 68)
    dense = {"u": mean, "w_shp": basis[:, :40], "w_exp": basis[:, 40:], "tri": model.triangles.numpy().T, "keypoints": keypoints}
    with open(folder / "3ddfa" / "bfm_noneck_v3.pkl", "wb") as handle:
        pickle.dump(dense, handle)
    loaded = load_morphable_model(Assets.resolve(folder))
    assert loaded.name == "bfm_noneck_v3"
    generator = torch.Generator().manual_seed(0)
    params = FaceParams(
        rotation=torch.eye(3)[None], scale=torch.tensor([1e-3]), translation=torch.tensor([[100.0, 100.0]]),
        shape=torch.randn(1, 40, generator=generator) * 1e5, expression=torch.randn(1, 10, generator=generator),
    )  # fmt: skip
    assert torch.allclose(loaded.vertices(params), model.vertices(params), atol=1e-3)
    assert torch.allclose(loaded.landmarks(params)[0], model.vertices(params)[0, ::50][:68], atol=1e-3)


def test_params_to_crop_projects_like_vertices_to_crop(model) -> None:  # type: ignore[no-untyped-def]
    params = FaceParams(
        rotation=angles_to_rotation(torch.tensor([[15.0, -5.0, 4.0], [-20.0, 8.0, 0.0]])),
        scale=torch.tensor([1e-3, 2e-3]),
        translation=torch.tensor([[300.0, 200.0], [500.0, 420.0]]),
        shape=torch.zeros(2, 40),
        expression=torch.zeros(2, 10),
    )
    boxes = torch.tensor([[150.0, 60.0, 450.0, 360.0], [300.0, 200.0, 700.0, 600.0]])
    expected = vertices_to_crop(model.vertices(params), boxes, 128)
    assert torch.allclose(model.vertices(params_to_crop(params, boxes, 128)), expected, atol=1e-3)


def test_blendshape_components_move_what_they_name(model) -> None:  # type: ignore[no-untyped-def]
    """The shipped components: a blink closes both eyes, a brow raise lifts the brows, a smile
    lifts and widens the mouth corners (the unposed model, y up). The smile's components are
    small: the regressor's 10 coefficients already carry most of a smile (they see the mouth)."""
    from facereenact.face3d.blendshapes import CHANNEL_NAMES

    def landmarks(**scores: float) -> np.ndarray:
        values = torch.zeros(1, N_BLENDSHAPES)
        for name, value in scores.items():
            values[0, CHANNEL_NAMES.index(name)] = value
        return model.model_space_landmarks(torch.zeros(1, 40), torch.zeros(1, 10), values)[0].numpy()

    def eye_opening(p: np.ndarray) -> float:
        return float((p[[37, 38, 43, 44], 1] - p[[41, 40, 47, 46], 1]).mean())

    rest = landmarks()
    assert eye_opening(landmarks(eyeBlinkLeft=1, eyeBlinkRight=1)) < 0.4 * eye_opening(rest)
    assert eye_opening(landmarks(eyeWideLeft=1, eyeWideRight=1)) > eye_opening(rest)
    iod = float(np.linalg.norm(rest[36:42].mean(0) - rest[42:48].mean(0)))
    assert (landmarks(browInnerUp=1)[[20, 21, 22, 23], 1] - rest[[20, 21, 22, 23], 1]).mean() > 0.02 * iod
    assert (landmarks(browDownLeft=1, browDownRight=1)[17:27, 1] - rest[17:27, 1]).mean() < -0.02 * iod
    smile = landmarks(mouthSmileLeft=1, mouthSmileRight=1)
    assert (smile[[48, 54], 1] - rest[[48, 54], 1]).mean() > 0
    assert np.linalg.norm(smile[54] - smile[48]) > np.linalg.norm(rest[54] - rest[48])
