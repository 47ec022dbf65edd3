"""The estimated grid expression basis: the shipped file, its estimator, and the fc_lm head."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from benchmarks import expression_estimation as estimation
from facereenact.face3d import expression_basis as eb
from facereenact.face3d.params import angles_to_rotation

MM = 1000.0  # model units per millimetre (the mean face is ~150 mm = 1.5e5 units wide)


def _coefficient_spread() -> tuple[np.ndarray, np.ndarray]:
    from safetensors.numpy import load_file

    tensors = load_file(str(eb.DEFAULT_BASIS_PATH))
    return tensors["coefficient_mean"].astype(np.float64), tensors["coefficient_std"].astype(np.float64)


# ---- the shipped file ---------------------------------------------------------------------------------
def test_shipped_file_loads_with_the_model_layout() -> None:
    assert eb.DEFAULT_BASIS_PATH.stat().st_size < 1024 * 1024
    grid = eb.load_expression_basis()
    landmarks = eb.load_landmark_expression_basis()
    assert grid.shape == (4096 * 3, 10) and grid.dtype == np.float32
    assert landmarks.shape == (68 * 3, 10) and landmarks.dtype == np.float32
    assert np.isfinite(grid).all() and np.isfinite(landmarks).all()
    # Every column does something (the defective asset's columns moved vertices by ~1e-7 of the face).
    _, std = _coefficient_spread()
    assert (np.abs(grid * std).max(axis=0) > 0.5 * MM).all()
    meta = eb.expression_basis_metadata()
    for key in ("method", "target", "training_clips", "held_out_clips", "date", "validation_held_out_vs_dlib"):
        assert meta.get(key), key
    held, trained = set(meta["held_out_clips"].split(",")), set(meta["training_clips"].split(","))
    assert len(held) >= 8 and not held & trained


def test_loader_refuses_a_missing_or_wrong_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError):
        eb.load_expression_basis(tmp_path / "none.safetensors")
    from safetensors.numpy import save_file

    path = tmp_path / "bad.safetensors"
    save_file({eb.GRID_KEY: np.zeros((30, 10), np.float32), eb.LANDMARK_KEY: np.zeros((204, 10), np.float32)}, str(path))
    with pytest.raises(ValueError):
        eb.load_expression_basis(path)


def test_save_and_load_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    grid, landmarks = rng.normal(size=(12288, 10)), rng.normal(size=(204, 10))
    path = tmp_path / "basis.safetensors"
    estimation.save_expression_basis(path, grid, landmarks, {"target": "fc_lm", "frames": 12})
    assert np.array_equal(eb.load_expression_basis(path), grid.astype(np.float32))
    assert np.array_equal(eb.load_landmark_expression_basis(path), landmarks.astype(np.float32))
    meta = eb.expression_basis_metadata(path)
    assert meta["target"] == "fc_lm" and meta["frames"] == "12" and meta["date"]


def test_strong_jaw_open_parts_the_lips_and_keeps_the_upper_face() -> None:
    """Coefficient 0 is the regressor's jaw opening (negative opens); 3 std beyond its mean
    must part the inner lips by more than a centimetre while the brows and nose barely move."""
    mean, std = _coefficient_spread()
    basis = eb.load_landmark_expression_basis().astype(np.float64)

    def inner_gap(alpha: np.ndarray) -> float:
        points = (basis @ alpha).reshape(68, 3)
        return float((points[eb.UPPER_INNER_LIP, 1] - points[eb.LOWER_INNER_LIP, 1]).mean())

    neutral, wide = np.zeros(10), np.zeros(10)
    wide[0] = mean[0] - 3 * std[0]
    opening = inner_gap(wide) - inner_gap(neutral)
    assert opening > 8 * MM, f"inner lips part by only {opening / MM:.1f} mm"
    moved = (basis @ wide).reshape(68, 3)
    assert moved[eb.LOWER_INNER_LIP, 1].mean() < -5 * MM  # the lower lip goes down…
    assert moved[eb.UPPER_INNER_LIP, 1].mean() > -3 * MM  # …the upper lip mostly stays
    assert moved[8, 1] < -4 * MM  # the chin drops
    upper_face = np.r_[eb.BROWS, eb.NOSE[:4], eb.EYES]
    assert np.linalg.norm(moved[upper_face], axis=1).max() < 2 * MM


def test_jaw_open_on_the_mesh(model) -> None:  # type: ignore[no-untyped-def]
    """The grid vertices just below the lips' contact line move down, those just above do not,
    and the anchored forehead stays put."""
    mean_coefficients, std = _coefficient_spread()
    grid = eb.load_expression_basis().astype(np.float64)
    mean = model.mean.numpy().astype(np.float64)
    landmarks = model.landmark_mean.numpy().astype(np.float64)
    alpha = np.zeros(10)
    alpha[0] = mean_coefficients[0] - 3 * std[0]
    moved = (grid @ alpha).reshape(-1, 3)
    side = estimation.above_lip_line(mean, landmarks)
    centre = np.abs(mean[:, 0] - landmarks[62, 0]) < 8 * MM
    line_y = (landmarks[62, 1] + landmarks[66, 1]) / 2
    near = np.abs(mean[:, 1] - line_y) < 6 * MM
    upper, lower = centre & near & (side > 0), centre & near & (side < 0)
    assert upper.any() and lower.any()
    gap = moved[upper, 1].mean() - moved[lower, 1].mean()
    assert gap > 8 * MM, f"mesh lips part by only {gap / MM:.1f} mm"
    # No overshoot: the lower lip's vertices go no further than its landmarks (a sheet without
    # the cut between the lips bends past them, by ~3 mm here).
    lip_landmarks = (eb.load_landmark_expression_basis().astype(np.float64) @ alpha).reshape(68, 3)
    deepest = lip_landmarks[[57, 66], 1].min()
    assert moved[lower, 1].min() > deepest - 1.5 * MM, f"{(deepest - moved[lower, 1].min()) / MM:.1f} mm overshoot"
    anchors = estimation.default_anchors(mean, landmarks)
    assert np.abs(grid.reshape(-1, 3, 10)[anchors]).max() == 0.0
    # Only the triangles that bridge the lips may stretch a lot.
    gap_triangles = eb.mouth_gap_triangles(mean, model.triangles.numpy(), landmarks)
    assert 5 < gap_triangles.sum() < 60


# ---- the estimator ---------------------------------------------------------------------------------
def _synthetic(frames: int, seed: int, with_offset: bool) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(scale=2 * MM, size=(68 * 3, 10))
    offset = rng.normal(scale=1 * MM, size=(68, 3)) if with_offset else np.zeros((68, 3))
    angles = np.stack([rng.uniform(-40, 40, frames), rng.uniform(-20, 20, frames), rng.uniform(-15, 15, frames)], 1)
    rotation = angles_to_rotation(torch.from_numpy(angles)).numpy()
    rows = estimation.projection_rows(rotation)
    mixing = np.eye(10) + 0.5 * rng.normal(size=(10, 10)) * (rng.random((10, 10)) < 0.3)  # correlated coefficients
    alpha = rng.normal(size=(frames, 10)) @ mixing * rng.uniform(0.1, 1.5, 10) + rng.normal(size=10)
    shift = offset[None] + (alpha @ truth.T).reshape(frames, 68, 3)
    residual = np.einsum("frc,fkc->fkr", rows, shift)
    return truth, offset, rows, alpha, residual


@pytest.mark.parametrize("with_offset", [False, True])
def test_estimation_recovers_a_known_basis_from_projected_landmarks(with_offset: bool) -> None:
    truth, offset, rows, alpha, residual = _synthetic(400, seed=1, with_offset=with_offset)
    fit = estimation.estimate_landmark_basis(residual, rows, alpha, ridge=0.0, depth_ridge=0.0, offset_ridge=None if with_offset else 1e3)
    error = np.abs(fit.basis - truth).max() / np.abs(truth).max()
    assert error < 1e-6, f"basis off by {error:.2e} of its largest entry"
    # Depth is only seen through head turns, and it is recovered too.
    depth = fit.basis.reshape(68, 3, 10)[:, 2] - truth.reshape(68, 3, 10)[:, 2]
    assert np.abs(depth).max() < 1e-6 * np.abs(truth).max()
    assert np.abs(fit.offset - offset).max() < 1e-3 * MM


def test_estimation_shrugs_off_gross_reference_failures() -> None:
    truth, _, rows, alpha, residual = _synthetic(600, seed=2, with_offset=False)
    rng = np.random.default_rng(3)
    noisy = residual + rng.normal(scale=0.05 * MM, size=residual.shape)
    failed = rng.random(residual.shape[:2]) < 0.05
    noisy[failed] += rng.normal(scale=30 * MM, size=(failed.sum(), 2))
    robust = estimation.estimate_landmark_basis(noisy, rows, alpha, ridge=1e-6, depth_ridge=1e-6, offset_ridge=1e3)
    plain = estimation.estimate_landmark_basis(noisy, rows, alpha, ridge=1e-6, depth_ridge=1e-6, offset_ridge=1e3, iterations=1)
    xy = lambda b: b.reshape(68, 3, 10)[:, :2]  # noqa: E731
    robust_error = np.sqrt(np.mean((xy(robust.basis) - xy(truth)) ** 2))
    plain_error = np.sqrt(np.mean((xy(plain.basis) - xy(truth)) ** 2))
    assert robust_error < 0.25 * plain_error
    assert robust_error < 0.05 * np.sqrt(np.mean(xy(truth) ** 2))


def test_nuisance_regressors_keep_pose_effects_out_of_the_basis() -> None:
    truth, _, rows, alpha, residual = _synthetic(500, seed=4, with_offset=False)
    rng = np.random.default_rng(5)
    yaw = alpha[:, :1] * 0.3 + rng.normal(size=(500, 1))  # a pose term correlated with expression
    pose_effect = rng.normal(scale=3 * MM, size=(68, 3))
    residual = residual + np.einsum("frc,fkc->fkr", rows, yaw[:, :, None] * pose_effect[None])
    fit = estimation.estimate_landmark_basis(residual, rows, alpha, nuisance=yaw, ridge=0.0, depth_ridge=0.0, offset_ridge=1e3)
    assert np.abs(fit.basis - truth).max() < 1e-6 * np.abs(truth).max()
    assert np.allclose(fit.nuisance[..., 0], pose_effect, atol=1e-3 * MM)


def test_spreading_to_the_grid_keeps_the_landmarks(model, assets) -> None:  # type: ignore[no-untyped-def]
    from facereenact.face3d import morphable as mm

    mean = model.mean.numpy().astype(np.float64)
    landmarks = model.landmark_mean.numpy().astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weights = mm.landmark_weights(mm._dense_mean_face(assets)[mm._dense_landmark_vertices(assets)], mean, model.triangles.numpy())
    weights = estimation.cut_aware_weights(weights, mean, landmarks)
    rng = np.random.default_rng(6)
    # A smooth synthetic field on the lower face: its landmark values must come back.
    lower = (landmarks[:, 1] < landmarks[30, 1]).astype(float)[:, None, None]
    basis = (lower * rng.normal(scale=MM, size=(1, 3, 10)) * (1 + landmarks[:, :1, None] / 1e5)).reshape(204, 10)
    grid = estimation.extend_to_grid(basis, weights, mean, landmarks)
    read = (weights @ grid.reshape(4096, -1)).reshape(204, 10)
    assert np.abs(read - basis).max() < 0.02 * np.abs(basis).max()


# ---- the regressor's fc_lm head ------------------------------------------------------------------------
def test_fc_lm_decoding() -> None:
    raw = np.zeros((1, 136))
    raw[0, 0], raw[0, 68] = 1.0, -0.5  # landmark 0: right edge, a quarter from the top
    points = estimation.fc_lm_to_image(raw, np.array([[100.0, 50.0, 340.0, 290.0]]))
    assert np.allclose(points[0, 0], [340.0, 110.0])
    assert np.allclose(points[0, 1:], [220.0, 170.0])


def test_fc_lm_gives_our_68_landmarks(fitter, portraits) -> None:  # type: ignore[no-untyped-def]
    """fc_lm's brows, nose and eyes (no expression there) sit on our fitted landmarks."""
    from facereenact.face3d.regressor import box_from_landmarks, crop_faces

    stable = np.r_[eb.BROWS, eb.NOSE, eb.EYES]
    for name in ("lp_s1", "lp_s12"):
        image = portraits[name]
        box = box_from_landmarks(fitter.fit_one(image).landmarks)[None]
        ours = fitter.model.landmarks(fitter.regressor.regress(image, box))[0, :, :2].numpy()
        theirs = estimation.fc_lm_to_image(estimation.regressor_landmarks(fitter.regressor, crop_faces(image, box)).numpy(), box)[0]
        iod = np.linalg.norm(ours[36] - ours[45])
        error = np.linalg.norm(theirs[stable] - ours[stable], axis=1).mean() / iod
        assert error < 0.03, f"{name}: fc_lm is {error:.3f} IOD from our landmarks"
