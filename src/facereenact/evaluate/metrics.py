"""Image fidelity metrics on batches of tensors (B, 3, H, W) in [0, 1].

SSIM comes from pytorch-msssim (a maintained implementation); PSNR is its one-line definition,
with identical images reported as +inf rather than a division error.
"""

from __future__ import annotations

import torch
from pytorch_msssim import ms_ssim, ssim


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


def to_tensor(images_uint8) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """(B, H, W, 3) uint8 numpy → (B, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float() / 255
