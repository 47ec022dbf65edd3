"""Per-frame metrics on batches of tensors.

Image fidelity takes (B, 3, H, W) images in [0, 1]: SSIM and MS-SSIM come from pytorch-msssim (a
maintained implementation); PSNR is its one-line definition, with identical images reported as
+inf rather than a division error. The geometry metrics (pose, blendshapes, landmarks) take what
the face analysers measured, with NaN rows where no face was found; they return NaN for those
frames so callers can leave them out instead of scoring them as zero.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_msssim import ms_ssim, ssim


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
