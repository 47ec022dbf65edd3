"""Per-frame metrics on batches of tensors.

Image fidelity takes (B, 3, H, W) images in [0, 1]: SSIM and MS-SSIM come from pytorch-msssim (a
maintained implementation); PSNR is its one-line definition, with identical images reported as
+inf rather than a division error. The geometry metrics (pose, blendshapes, landmarks) take what
the face analysers measured, with NaN rows where no face was found; they return NaN for those
frames so callers can leave them out instead of scoring them as zero. The expression-by-region
signals are per-frame scalars over a run of consecutive frames, compared between the driver and
the output as a correlation over time and an amplitude ratio.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from pytorch_msssim import ms_ssim, ssim


# ---- the instruments' ceiling ---------------------------------------------------------------------
def carried_copy(picture: np.ndarray) -> np.ndarray:
    """``picture`` (H, W, 3) uint8 as a perfect output would carry it: shifted 2 px, scaled 0.95
    (bicubic) and JPEG-compressed (quality 90). What an instrument reads on it against the
    picture itself is the best any method can score: its ceiling."""
    height, width = picture.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0, 0.95)
    matrix[:, 2] += 2
    moved = cv2.warpAffine(picture, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    compressed = cv2.imdecode(cv2.imencode(".jpg", moved, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_UNCHANGED)
    assert compressed is not None  # OpenCV decodes what it just encoded
    return compressed


# ---- image fidelity ------------------------------------------------------------------------------
def l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image (B,)."""
    return (output - target).abs().flatten(1).mean(1)


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image (B,) in dB; +inf where the images are identical."""
    mse = ((output - target) ** 2).flatten(1).mean(1)
    return torch.where(mse > 0, 10 * torch.log10(1.0 / mse.clamp(min=1e-20)), torch.full_like(mse, float("inf")))


def structural_similarity(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM per image (B,), 11×11 Gaussian window."""
    return ssim(output, target, data_range=1.0, size_average=False)


def multiscale_structural_similarity(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MS-SSIM per image (B,); needs images of at least 161 px on the short side."""
    return ms_ssim(output, target, data_range=1.0, size_average=False)


def to_tensor(images_uint8: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 numpy → (B, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float() / 255


# ---- identity ------------------------------------------------------------------------------------
def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity (B,) of embeddings (B, D) (``b`` may be (1, D)); NaN rows stay NaN."""
    return torch.nn.functional.cosine_similarity(a, b.expand_as(a), dim=-1, eps=1e-12)


def frechet_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings (N, D) and (M, D):
    ``|μx − μy|² + tr(Σx + Σy − 2 (Σx Σy)^½)``.

    The trace of the matrix square root is computed as the sum of square roots of the
    eigenvalues of ``Σx^½ Σy Σx^½`` (symmetric, positive semi-definite, with the same
    eigenvalues as ``Σx Σy``), which stays real where a general ``sqrtm`` drifts complex.
    """
    x, y = x.double(), y.double()
    if len(x) < 2 or len(y) < 2:
        raise ValueError("the Fréchet distance needs at least two embeddings in each set")
    mean_term = float(((x.mean(0) - y.mean(0)) ** 2).sum())
    cov_x, cov_y = torch.cov(x.T), torch.cov(y.T)
    values, vectors = torch.linalg.eigh(cov_x)
    root_x = (vectors * values.clamp(min=0).sqrt()) @ vectors.T
    product = torch.linalg.eigvalsh(root_x @ cov_y @ root_x)
    trace_root = float(product.clamp(min=0).sqrt().sum())
    return mean_term + float(torch.trace(cov_x) + torch.trace(cov_y)) - 2 * trace_root


# ---- pose ----------------------------------------------------------------------------------------
def pose_errors(angles: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Absolute (yaw, pitch, roll) differences (B, 3) in degrees, wrapped to [0, 180]."""
    difference = torch.remainder(angles - reference + 180.0, 360.0) - 180.0
    return difference.abs()


def root_mean_square(errors: torch.Tensor) -> float:
    """RMSE over every finite entry (NaN = not measured); NaN when there is none."""
    finite = errors[torch.isfinite(errors)]
    return float(finite.pow(2).mean().sqrt()) if finite.numel() else float("nan")


# ---- expression (MediaPipe blendshapes) ----------------------------------------------------------
def blendshape_difference(scores: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference per frame (B,) of blendshape scores (B, K)."""
    return (scores - reference).abs().mean(-1)


def blendshape_activation_counts(scores: torch.Tensor, reference: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """AUCON-style on/off agreement, as counts per frame (B,): blendshapes on (score >
    ``threshold``) in both, and blendshapes on in either. Their ratio, pooled over frames, is the
    share of active blendshapes that agree; blendshapes off in both do not count (they would
    make any two faces agree)."""
    on, on_reference = scores > threshold, reference > threshold
    valid = torch.isfinite(scores).all(-1) & torch.isfinite(reference).all(-1)
    both = (on & on_reference).sum(-1).double()
    either = (on | on_reference).sum(-1).double()
    nan = torch.full_like(both, float("nan"))
    return torch.where(valid, both, nan), torch.where(valid, either, nan)


# ---- landmarks -----------------------------------------------------------------------------------
def landmark_distance(points: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance per frame (B,) between landmark sets (B, K, 2), in their units."""
    return (points - reference).norm(dim=-1).mean(-1)


def landmark_jitter(track: torch.Tensor) -> float:
    """Mean landmark acceleration |x(t+1) − 2x(t) + x(t−1)| over a run of consecutive frames
    (T, K, 2): the frame-to-frame shake that smooth motion does not have. Triples with a frame
    where no face was found (NaN) are left out; NaN when none remains."""
    if len(track) < 3:
        return float("nan")
    acceleration = (track[2:] - 2 * track[1:-1] + track[:-2]).norm(dim=-1).mean(-1)
    finite = acceleration[torch.isfinite(acceleration)]
    return float(finite.mean()) if finite.numel() else float("nan")


# ---- expression by region, over time -------------------------------------------------------------
#: Below this standard deviation a signal is constant: it has no correlation with anything.
CONSTANT_STD = 1e-6
#: A blendshape counts among the "active" ones when the driver's score varies this much (std)
#: over the window; MediaPipe's scores on a still face wander by less.
ACTIVE_STD = 0.02
#: Fewest frames (with a face in both series) for a correlation: with two, r is always ±1.
MIN_SIGNAL_FRAMES = 3


def blendshape_region_signals(scores: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Per-frame signals (T,) of the face regions from MediaPipe's blendshape scores (T, K), whose
    columns are named ``names``: left and right averaged, so that a region is one number a frame.
    The gaze's sign is the subject's left (both eyes turned that way) and up; it only has to be
    the same for the driver and the output."""
    column = dict(zip(names, scores.unbind(-1)))

    def mean(*keys: str) -> torch.Tensor:
        return torch.stack([column[k] for k in keys]).mean(0)

    return {
        "eyes": mean("eyeBlinkLeft", "eyeBlinkRight"),
        "gaze_horizontal": (column["eyeLookOutLeft"] + column["eyeLookInRight"] - column["eyeLookInLeft"] - column["eyeLookOutRight"]) / 2,
        "gaze_vertical": mean("eyeLookUpLeft", "eyeLookUpRight") - mean("eyeLookDownLeft", "eyeLookDownRight"),
        "brows": column["browInnerUp"] + mean("browOuterUpLeft", "browOuterUpRight") - mean("browDownLeft", "browDownRight"),
        "mouth_open": column["jawOpen"],
        "smile": mean("mouthSmileLeft", "mouthSmileRight"),
    }


def landmark_region_signals(points: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frame signals (T,) of the face regions from dlib's 68 landmarks (T, 68, 2) (iBUG
    order), in inter-ocular distances (between the eye centres) so that the face's size and
    distance do not count."""
    right_eye, left_eye = points[:, 36:42].mean(1), points[:, 42:48].mean(1)
    inter_ocular = (left_eye - right_eye).norm(dim=-1)

    def gap(a: int, b: int) -> torch.Tensor:
        return (points[:, a] - points[:, b]).norm(dim=-1)

    eye_opening = ((gap(37, 41) + gap(38, 40)) / 2 + (gap(43, 47) + gap(44, 46)) / 2) / 2
    brow_height = ((points[:, 17:22] - right_eye[:, None]).norm(dim=-1).mean(1) + (points[:, 22:27] - left_eye[:, None]).norm(dim=-1).mean(1)) / 2
    return {
        "eye_opening": eye_opening / inter_ocular,
        "brow_height": brow_height / inter_ocular,
        "mouth_opening": gap(62, 66) / inter_ocular,
        "mouth_width": gap(48, 54) / inter_ocular,
    }


@dataclass(frozen=True)
class SignalAgreement:
    """How an output's signal follows the driver's over time: Pearson ``r`` (NaN where either is
    constant: no correlation is defined, and 0 would read as "measured, unrelated"), the
    amplitude ``ratio`` std(output) / std(driver) (NaN where the driver is constant; 0 where the
    output does not move), and the ``frames`` both series had a face in."""

    r: float
    ratio: float
    frames: int


def signal_agreement(output: torch.Tensor, driver: torch.Tensor) -> SignalAgreement:
    """Agreement of two signals (T,) over the frames where both are finite (NaN = no face)."""
    both = torch.isfinite(output) & torch.isfinite(driver)
    frames = int(both.sum())
    if frames < MIN_SIGNAL_FRAMES:
        return SignalAgreement(math.nan, math.nan, frames)
    x, y = output[both].double(), driver[both].double()
    x, y = x - x.mean(), y - y.mean()
    spread_x, spread_y = float(x.pow(2).mean().sqrt()), float(y.pow(2).mean().sqrt())
    ratio = spread_x / spread_y if spread_y >= CONSTANT_STD else math.nan
    if spread_x < CONSTANT_STD or spread_y < CONSTANT_STD:
        return SignalAgreement(math.nan, ratio, frames)
    r = float((x * y).mean()) / (spread_x * spread_y)
    return SignalAgreement(min(max(r, -1.0), 1.0), ratio, frames)


def active_blendshape_agreement(output: torch.Tensor, driver: torch.Tensor) -> SignalAgreement:
    """Every expression at once: the mean r and the median amplitude ratio over the blendshapes
    (T, K) whose driver score varies by more than :data:`ACTIVE_STD` over the frames where both
    have a face (a blendshape the driver does not move has nothing to follow). Blendshapes the
    output holds constant have no r and are left out of its mean; their ratio, 0, counts."""
    both = torch.isfinite(output).all(-1) & torch.isfinite(driver).all(-1)
    output, driver = output[both].double(), driver[both].double()
    frames = len(driver)
    if frames < MIN_SIGNAL_FRAMES:
        return SignalAgreement(math.nan, math.nan, frames)
    active = (driver.std(0, unbiased=False) > ACTIVE_STD).nonzero().flatten().tolist()
    each = [signal_agreement(output[:, k], driver[:, k]) for k in active]
    correlations = [a.r for a in each if not math.isnan(a.r)]
    return SignalAgreement(
        float(np.mean(correlations)) if correlations else math.nan,
        float(np.median([a.ratio for a in each])) if each else math.nan,
        frames,
    )
