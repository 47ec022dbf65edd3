"""Metric sanity: identical images score perfectly (PSNR inf, reported as such), degraded ones
score worse; the geometry metrics and the aggregates behave at their edges."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from facereenact.evaluate import metrics
from facereenact.evaluate.stats import jackknife_statistic, jsonable, mean_or_none, summarize


def _texture(seed: int = 0, size: int = 256) -> np.ndarray:
    """A photo-like (smooth, multi-scale) RGB uint8 image."""
    rng = np.random.default_rng(seed)
    image = np.zeros((size, size, 3), np.float32)
    for scale in (4, 16, 64):
        image += cv2.resize(rng.random((scale, scale, 3), np.float32), (size, size), interpolation=cv2.INTER_CUBIC) / scale**0.3
    image = (image - image.min()) / (image.max() - image.min())
    return (image * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images() -> dict[str, torch.Tensor]:
    clean = _texture()
    blurred = cv2.GaussianBlur(clean, (0, 0), 3)
    shifted = np.roll(clean, (6, 4), axis=(0, 1))
    return {name: metrics.to_tensor(image[None]) for name, image in {"clean": clean, "blurred": blurred, "shifted": shifted}.items()}


def test_identical_images_score_perfectly(images: dict[str, torch.Tensor]) -> None:
    clean = images["clean"]
    assert metrics.l1(clean, clean).item() == 0
    assert math.isinf(metrics.psnr(clean, clean).item()) and metrics.psnr(clean, clean).item() > 0
    assert metrics.structural_similarity(clean, clean).item() == pytest.approx(1.0, abs=1e-6)
    assert metrics.multiscale_structural_similarity(clean, clean).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("degraded", ["blurred", "shifted"])
def test_degraded_images_score_worse(images: dict[str, torch.Tensor], degraded: str) -> None:
    clean, worse = images["clean"], images[degraded]
    assert metrics.l1(worse, clean).item() > 0.005
    assert 10 < metrics.psnr(worse, clean).item() < 40
    assert metrics.structural_similarity(worse, clean).item() < 0.95
    assert metrics.multiscale_structural_similarity(worse, clean).item() < 0.99


def test_more_blur_scores_worse(images: dict[str, torch.Tensor]) -> None:
    clean = images["clean"]
    image = (clean[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    scores = [metrics.structural_similarity(metrics.to_tensor(cv2.GaussianBlur(image, (0, 0), s)[None]), clean).item() for s in (1, 2, 4)]
    assert scores[0] > scores[1] > scores[2]


def test_infinite_psnr_aggregates_without_nan() -> None:
    rng = np.random.default_rng(0)
    summary = summarize([float("inf"), 30.0, 31.0, None, float("nan")], 200, rng)
    assert summary["n"] == 3 and summary["n_infinite"] == 1
    assert math.isinf(summary["mean"])
    assert not any(math.isnan(v) for v in summary["ci95"])
    text = json.dumps(jsonable(summary), allow_nan=False)
    assert json.loads(text)["mean"] == "inf"
    finite = summarize([30.0, 31.0, 32.0], 200, rng)
    assert finite["mean"] == pytest.approx(31.0) and 30.0 <= finite["ci95"][0] <= 31.0 <= finite["ci95"][1] <= 32.0
    assert summarize([None, float("nan")], 200, rng) == {"mean": None, "ci95": None, "n": 0}
    assert mean_or_none(np.array([np.nan, np.inf])) == float("inf")
    assert mean_or_none(np.array([np.nan])) is None


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    values = list(np.random.default_rng(1).normal(size=30))
    first = summarize(values, 500, np.random.default_rng(7))
    assert first == summarize(values, 500, np.random.default_rng(7))
    assert first["ci95"][0] < first["mean"] < first["ci95"][1]



def test_jackknife_interval_of_a_mean_is_the_classical_one() -> None:
    values = np.abs(np.random.default_rng(2).normal(loc=5, size=40))
    summary = jackknife_statistic(list(values), lambda v: float(np.mean(v)))
    half_width = 1.959964 * values.std(ddof=1) / np.sqrt(len(values))
    assert summary["mean"] == pytest.approx(values.mean())
    assert summary["ci95"] == pytest.approx([values.mean() - half_width, values.mean() + half_width], rel=1e-5)
    assert jackknife_statistic([1.0, 2.0], lambda v: float(np.mean(v)))["ci95"] is None


def test_jsonable_has_no_nan() -> None:
    data = {"a": np.float32(np.nan), "b": [np.inf, -np.inf, np.int64(3)], "c": np.array([1.5, np.nan]), "d": np.bool_(True)}
    assert jsonable(data) == {"a": None, "b": ["inf", "-inf", 3], "c": [1.5, None], "d": True}


def test_pose_errors_wrap_and_mirror() -> None:
    angles = torch.tensor([[30.0, 5.0, 179.0]])
    assert metrics.pose_errors(angles, angles).abs().max().item() == 0
    assert metrics.pose_errors(angles, torch.tensor([[-30.0, 5.0, -179.0]])).tolist() == [[60.0, 0.0, 2.0]]
    errors = torch.tensor([[3.0, 4.0, float("nan")], [0.0, 0.0, 0.0]])
    assert metrics.root_mean_square(errors) == pytest.approx(math.sqrt(25 / 5))
    assert math.isnan(metrics.root_mean_square(torch.full((2, 3), float("nan"))))


def test_frechet_distance() -> None:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(4000, 8)))
    y = torch.from_numpy(rng.normal(size=(4000, 8)))
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert metrics.frechet_distance(x, y) < 0.05
    # N(0, I) against N(m, 4I): |m|² + d·(1 + 4 − 2·2) = |m|² + d.
    shifted = y * 2 + 1.5
    assert metrics.frechet_distance(x, shifted) == pytest.approx(8 * 1.5**2 + 8, rel=0.05)
    with pytest.raises(ValueError):
        metrics.frechet_distance(x[:1], y)


def test_blendshape_difference_and_agreement() -> None:
    driving = torch.tensor([[0.9, 0.1, 0.5, 0.0], [0.1, 0.1, 0.1, 0.1]])
    output = torch.tensor([[0.8, 0.6, 0.1, 0.0], [float("nan")] * 4])
    assert metrics.blendshape_difference(output[:1], driving[:1]).item() == pytest.approx((0.1 + 0.5 + 0.4) / 4)
    both, either = metrics.blendshape_activation_counts(output, driving, 0.3)
    # Frame 0: on in both = {0}; on in either = {0, 1, 2}. Frame 1: no face in the output.
    assert both[0].item() == 1 and either[0].item() == 3
    assert math.isnan(both[1].item()) and math.isnan(either[1].item())
    same_both, same_either = metrics.blendshape_activation_counts(driving, driving, 0.3)
    assert same_both.sum().item() == same_either.sum().item() == 2


def test_landmark_distance_and_jitter() -> None:
    rng = np.random.default_rng(0)
    points = torch.from_numpy(rng.uniform(0, 256, size=(5, 478, 2)))
    assert metrics.landmark_distance(points, points).abs().max().item() == 0
    assert metrics.landmark_distance(points + torch.tensor([3.0, 4.0]), points).tolist() == pytest.approx([5.0] * 5)
    steady = points[:1] + torch.arange(10.0)[:, None, None] * torch.tensor([2.0, 1.0])  # constant velocity
    assert metrics.landmark_jitter(steady) == pytest.approx(0.0, abs=1e-9)
    shaky = steady + torch.from_numpy(rng.normal(scale=1.0, size=steady.shape))
    assert metrics.landmark_jitter(shaky) > 1.0
    shaky[4] = float("nan")  # a frame without a face: its triples are left out
    assert math.isfinite(metrics.landmark_jitter(shaky))
    assert math.isnan(metrics.landmark_jitter(steady[:2]))


def test_cosine_similarity() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [float("nan"), 1.0]])
    similarity = metrics.cosine_similarity(a, torch.tensor([[1.0, 0.0]]))
    assert similarity[:2].tolist() == pytest.approx([1.0, 0.0])
    assert math.isnan(similarity[2].item())
