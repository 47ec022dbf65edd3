"""Expression by region over time: the signals' definitions, r and the amplitude ratio at their
edges (a constant signal has no r, not r = 0), the strip's frames, the aggregate over pairs, and
the two instruments agreeing on a real driver's blinks and brows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from facereenact.errors import AssetError
from facereenact.evaluate import metrics
from facereenact.evaluate.catalog import REGION_SIGNALS
from facereenact.evaluate.methods import parse_methods
from facereenact.evaluate.protocols import strip_frames
from facereenact.evaluate.report import _expression_html
from facereenact.evaluate.suite import EvaluationSettings, _expression_summary

NAMES = [
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight",
    "eyeLookUpLeft", "eyeLookUpRight", "jawOpen", "mouthSmileLeft", "mouthSmileRight", "mouthPucker",
]  # fmt: skip


def _scores(**values: float) -> torch.Tensor:
    """One frame's blendshape scores (1, K) in the order of NAMES; unnamed ones 0."""
    return torch.tensor([[values.get(name, 0.0) for name in NAMES]], dtype=torch.float64)


def test_blendshape_region_signals() -> None:
    frame = _scores(eyeBlinkLeft=0.8, eyeBlinkRight=0.6, eyeLookOutLeft=0.4, eyeLookInRight=0.2, eyeLookInLeft=0.1, eyeLookUpLeft=0.3,
                    eyeLookUpRight=0.5, eyeLookDownLeft=0.1, browInnerUp=0.5, browOuterUpLeft=0.2, browOuterUpRight=0.4,
                    browDownLeft=0.1, browDownRight=0.3, jawOpen=0.7, mouthSmileLeft=0.2, mouthSmileRight=0.6, mouthPucker=0.9)  # fmt: skip
    signals = {name: float(value[0]) for name, value in metrics.blendshape_region_signals(frame, NAMES).items()}
    assert set(signals) == set(REGION_SIGNALS["mediapipe"]) - {"active_blendshapes"}
    assert signals == pytest.approx({
        "eyes": 0.7,
        "gaze_horizontal": (0.4 + 0.2 - 0.1 - 0.0) / 2,
        "gaze_vertical": 0.4 - 0.05,
        "brows": 0.5 + 0.3 - 0.2,
        "mouth_open": 0.7,
        "smile": 0.4,
    })  # fmt: skip
    # Both eyes turned the other way: the horizontal gaze changes sign.
    mirrored = metrics.blendshape_region_signals(_scores(eyeLookInLeft=0.4, eyeLookOutRight=0.2, eyeLookOutLeft=0.1), NAMES)
    assert float(mirrored["gaze_horizontal"][0]) == pytest.approx(-0.25)
    frown = metrics.blendshape_region_signals(_scores(browDownLeft=0.6, browDownRight=0.8), NAMES)
    assert float(frown["brows"][0]) == pytest.approx(-0.7)


def _face() -> np.ndarray:
    """68 points (iBUG): eye centres (0, 0) and (10, 0), each lid 2 apart, brows 3 above the
    eyes, inner lips 1 apart, mouth corners 6 apart."""
    points = np.zeros((68, 2))
    eye = np.array([[-2, 0], [-1, -1], [1, -1], [2, 0], [1, 1], [-1, 1]], np.float64)  # 36-41, centred on (0, 0)
    points[36:42], points[42:48] = eye, eye + (10, 0)
    points[17:22], points[22:27] = (0, -3), (10, -3)
    points[48], points[54] = (2, 8.5), (8, 8.5)
    points[62], points[66] = (5, 8), (5, 9)
    return points


def test_landmark_region_signals_in_inter_ocular_distances() -> None:
    face = _face()
    closed = face.copy()
    closed[[37, 38, 43, 44], 1] += 0.9  # upper lids down: each eye 0.2 open instead of 2
    moved = face * 3 + (40, 17)  # larger and elsewhere: the same expression
    signals = metrics.landmark_region_signals(torch.from_numpy(np.stack([face, closed, moved])))
    assert set(signals) == set(REGION_SIGNALS["dlib"])
    values = {name: signal.tolist() for name, signal in signals.items()}
    assert values["eye_opening"] == pytest.approx([0.2, 0.11, 0.2])
    assert values["brow_height"] == pytest.approx([0.3, 0.33, 0.3])  # lowered lids lower the eye's centre by 0.3
    assert values["mouth_opening"] == pytest.approx([0.1, 0.1, 0.1])
    assert values["mouth_width"] == pytest.approx([0.6, 0.6, 0.6])


def test_signal_agreement_correlation_and_amplitude() -> None:
    driver = torch.sin(torch.linspace(0, 6, 50, dtype=torch.float64))
    follows = metrics.signal_agreement(0.5 * driver + 3, driver)
    assert follows.r == pytest.approx(1.0) and follows.ratio == pytest.approx(0.5) and follows.frames == 50
    opposite = metrics.signal_agreement(-2 * driver, driver)
    assert opposite.r == pytest.approx(-1.0) and opposite.ratio == pytest.approx(2.0)
    noise = np.random.default_rng(0).normal(size=(2, 50))
    mixed = metrics.signal_agreement(torch.from_numpy(noise[0] + noise[1]), torch.from_numpy(noise[1]))
    assert mixed.r == pytest.approx(np.corrcoef(noise[0] + noise[1], noise[1])[0, 1])
    assert mixed.ratio == pytest.approx((noise[0] + noise[1]).std() / noise[1].std())
    # Frames without a face (NaN) in either series are left out, not scored.
    holes = 0.5 * driver
    holes[[3, 17]] = float("nan")
    driver_holes = driver.clone()
    driver_holes[40] = float("nan")
    partial = metrics.signal_agreement(holes, driver_holes)
    assert partial.r == pytest.approx(1.0) and partial.frames == 47


def test_a_constant_signal_has_no_correlation() -> None:
    driver = torch.sin(torch.linspace(0, 6, 50, dtype=torch.float64))
    still = metrics.signal_agreement(torch.full((50,), 0.3, dtype=torch.float64), driver)
    assert math.isnan(still.r), "a still output has no correlation, rather than r = 0"
    assert still.ratio == 0, "a still output has no amplitude"
    unmoved = metrics.signal_agreement(driver, torch.full((50,), 0.3, dtype=torch.float64))
    assert math.isnan(unmoved.r) and math.isnan(unmoved.ratio), "nothing to follow"
    short = metrics.signal_agreement(driver[:2], driver[:2])
    assert math.isnan(short.r) and short.frames == 2


def test_active_blendshape_agreement() -> None:
    t = torch.linspace(0, 6, 50, dtype=torch.float64)
    moving, other, faint = 0.4 * torch.sin(t), 0.3 * torch.cos(t), 0.01 * torch.sin(t)
    driver = torch.stack([moving, other, faint, other], -1) + 0.5
    # Follows the first at half amplitude, opposes the second, opposes the faint one (the driver
    # hardly moves it: left out), holds the fourth still (no r; ratio 0).
    output = torch.stack([0.5 * moving, -other, -faint, torch.zeros_like(t)], -1) + 0.5
    agreement = metrics.active_blendshape_agreement(output, driver)
    assert agreement.r == pytest.approx((1.0 - 1.0) / 2)
    assert agreement.ratio == pytest.approx(np.median([0.5, 1.0, 0.0]))
    output[10] = float("nan")
    assert metrics.active_blendshape_agreement(output, driver).frames == 49
    assert math.isnan(metrics.active_blendshape_agreement(output, torch.full_like(driver, 0.5)).r)


def test_strip_frames() -> None:
    eyes = np.array([0.1, 0.14, np.nan, 0.9, 0.11, 0.12, 0.13])
    brows = np.array([0.05, 0.02, 0.5, 0.01, -0.6, 0.0, -0.03])  # frame 2's raise has no eyes reading: not shown
    assert strip_frames(eyes, brows) == {"rest": 5, "blink": 3, "brows": 4}
    assert strip_frames(np.full(4, np.nan), np.zeros(4)) == {}


def _pair(r: dict[str, float | None], ratio: dict[str, float | None], driven: bool = True) -> dict[str, Any]:
    """A cross-identity pair record whose every signal has the method's given r and ratio."""

    def regions(method: str) -> dict[str, Any]:
        return {instrument: {name: {"r": r[method], "ratio": ratio[method], "frames": 50} for name in names} for instrument, names in REGION_SIGNALS.items()}

    return {"status": "ok", "expression_window": {"pipeline_reads_mediapipe": driven}, "methods": {m: {"expression_regions": regions(m)} for m in r}}


def test_expression_summary_over_pairs() -> None:
    methods = parse_methods("source,warp", "cpu")
    pairs = [
        _pair({"source": None, "warp": 0.9}, {"source": 0.0, "warp": 0.5}),
        _pair({"source": None, "warp": 0.5}, {"source": 0.0, "warp": 4.0}),
        _pair({"source": None, "warp": 0.1}, {"source": 0.0, "warp": 0.8}),
    ]
    summary = _expression_summary(pairs, methods, EvaluationSettings(bootstrap=100), np.random.default_rng(0))
    assert summary is not None and summary["pairs"] == 3
    assert summary["driven_by"] == "mediapipe" and summary["independent_check"] == "dlib"
    warp = summary["methods"]["warp"]["dlib"]["eye_opening"]
    assert warp["r"]["mean"] == pytest.approx(0.5) and warp["r"]["n"] == 3 and len(warp["r"]["ci95"]) == 2
    assert warp["ratio"] == {"median": 0.8, "n": 3}, "the median: one pair's outlying ratio does not pull it"
    source = summary["methods"]["source"]["mediapipe"]["eyes"]
    assert source["r"]["mean"] is None and source["r"]["n"] == 0 and source["ratio"]["median"] == 0
    assert set(summary["methods"]["warp"]["mediapipe"]) == set(REGION_SIGNALS["mediapipe"])
    assert _expression_summary([], methods, EvaluationSettings(), np.random.default_rng(0)) is None

    page = _expression_html(summary, ["source", "warp"], [])
    assert "dlib&#x27;s 68 landmarks (independent check)" in page and "MediaPipe&#x27;s blendshapes (independent check)" not in page
    independent = _expression_summary([_pair({"source": None, "warp": 0.2}, {"source": 0.0, "warp": 1.0}, driven=False)], methods,
                                      EvaluationSettings(bootstrap=0), np.random.default_rng(0))  # fmt: skip
    assert independent is not None and independent["independent_check"] == "both"
    assert _expression_html(independent, ["source", "warp"], []).count("(independent check)") == 2


def test_both_instruments_follow_a_real_blink_and_brows(data_dir: Path, assets) -> None:  # type: ignore[no-untyped-def]
    """dpe_s's first 50 frames hold blinks and raised and lowered brows: MediaPipe's and dlib's
    signals of the same frames move together (the blink closes what dlib sees open)."""
    from facereenact.evaluate.references import DlibLandmarks, MediaPipeFace
    from facereenact.io.video import iter_frames

    try:
        mediapipe, dlib = MediaPipeFace(assets), DlibLandmarks()
    except AssetError as error:
        pytest.skip(f"MediaPipe or dlib unavailable: {error}")
    scores, points = [], []
    with mediapipe:
        for frame in iter_frames(data_dir / "clips" / "dpe_s.mp4", 50):
            face = mediapipe.analyse(frame)
            assert face is not None
            low, high = face.landmarks.min(0), face.landmarks.max(0)
            found = dlib.landmarks(frame, (float(low[0]), float(low[1]), float(high[0]), float(high[1])))
            assert found is not None
            scores.append(face.blendshapes)
            points.append(found)
    blendshapes = metrics.blendshape_region_signals(torch.from_numpy(np.stack(scores)), face.blendshape_names)
    landmarks = metrics.landmark_region_signals(torch.from_numpy(np.stack(points)))
    assert metrics.signal_agreement(blendshapes["eyes"], landmarks["eye_opening"]).r < -0.7
    assert metrics.signal_agreement(blendshapes["brows"], landmarks["brow_height"]).r > 0.7
    assert metrics.signal_agreement(blendshapes["mouth_open"], landmarks["mouth_opening"]).r > 0.7
