"""The regressor's identity drift: its estimator, the shipped file, and what it explains on real video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import identity_drift as idrift


def _clips(drift: np.ndarray, people: int, frames: int, seed: int, identity_follows_mean_expression: float = 0.0, noise: float = 0.0):  # type: ignore[no-untyped-def]
    """Synthetic per-clip fits: each person's identity, plus ``drift``·expression, plus noise.
    With ``identity_follows_mean_expression``, people whose expressions sit higher on average also
    have other identities (a person's mean expression carries identity, as in real fits)."""
    rng = np.random.default_rng(seed)
    shapes, expressions = [], []
    mixing = rng.normal(size=(40, 10))
    for _ in range(people):
        mean_expression = rng.normal(size=10)
        expression = mean_expression + 0.3 * rng.normal(size=(frames, 10))
        identity = rng.normal(size=40) + identity_follows_mean_expression * mixing @ mean_expression
        shapes.append(identity + expression @ drift.T + noise * rng.normal(size=(frames, 40)))
        expressions.append(expression)
    return shapes, expressions


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_the_estimate_recovers_a_planted_drift_whatever_the_people_identities(seed: int) -> None:
    drift = np.random.default_rng(seed).normal(size=(40, 10))
    shapes, expressions = _clips(drift, people=6, frames=30, seed=seed, identity_follows_mean_expression=5.0)
    estimate = idrift.estimate_identity_drift(shapes, expressions)
    # Centring per clip keeps the people's identities (here tied to their mean expressions) out.
    np.testing.assert_allclose(estimate, drift, atol=1e-8)
    assert idrift.explained_share(shapes, expressions, estimate, np.ones(40)) == pytest.approx(1.0)


def test_explained_share_tells_drift_from_noise() -> None:
    drift = np.random.default_rng(1).normal(size=(40, 10))
    shapes, expressions = _clips(drift, people=5, frames=40, seed=2, noise=0.3)
    estimate = idrift.estimate_identity_drift(shapes, expressions)
    assert 0.8 < idrift.explained_share(shapes, expressions, estimate, np.ones(40)) < 1.0
    assert idrift.explained_share(shapes, expressions, np.zeros((40, 10)), np.ones(40)) == pytest.approx(0.0)
    still, moving = _clips(np.zeros((40, 10)), people=5, frames=40, seed=3, noise=0.3)
    assert idrift.explained_share(still, moving, idrift.estimate_identity_drift(still, moving), np.ones(40)) < 0.2


def test_save_and_load_round_trip_with_provenance(tmp_path: Path) -> None:
    drift = np.arange(400, dtype=np.float64).reshape(40, 10)
    path = tmp_path / "drift.safetensors"
    idrift.save_identity_drift(path, drift, {"method": "test", "share": {"held_out": 0.9}})
    np.testing.assert_array_equal(idrift.load_identity_drift(path).numpy(), drift.astype(np.float32))
    meta = idrift.identity_drift_metadata(path)
    assert meta["method"] == "test" and '"held_out": 0.9' in meta["share"]
    idrift.save_identity_drift(path, drift[:, :5], {})
    with pytest.raises(ValueError, match="expected \\(40, 10\\)"):
        idrift.load_identity_drift(path)


def test_shipped_drift_records_its_held_out_validation() -> None:
    drift = idrift.load_identity_drift()
    assert drift.shape == (40, 10) and bool(drift.isfinite().all()) and float(drift.abs().max()) > 0
    meta = idrift.identity_drift_metadata()
    held, trained = set(meta["held_out_clips"].split(",")), set(meta["training_clips"].split(","))
    assert len(held) >= 8 and not held & trained
    for key in ("method", "date", "explained_within_clip_variance", "validation_held_out_vs_dlib"):
        assert meta.get(key), key


def test_drift_explains_most_identity_movement_in_a_held_out_clip(fitter, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """lp_d6 (exaggerated expressions) was held out of the estimate; within it the person is fixed,
    so identity movement is the regressor's error, and the drift should account for most of it.
    The drift relates the regressor's own coefficients: its expression as it regressed it, before
    the tracker refines it to MediaPipe's landmarks."""
    from facereenact.io.video import iter_frames, probe_video

    clip = data_dir / "clips" / "lp_d6.mp4"
    assert "lp_d6" in idrift.identity_drift_metadata()["held_out_clips"].split(",")
    monkeypatch.setattr(fitter, "refiner", None)
    fit = fitter.track(iter_frames(clip, 90), probe_video(clip).fps, smoothing=False)
    shapes, expressions = fit.params.shape.double().numpy(), fit.params.expression.double().numpy()
    scale = fitter.coefficient_scale[:40].double().numpy()
    share = idrift.explained_share([shapes], [expressions], idrift.load_identity_drift().double().numpy(), scale)
    assert share > 0.8, f"the drift explains only {share:.2f} of lp_d6's identity movement"
