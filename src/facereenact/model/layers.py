"""Small building blocks shared by the encoders, the decoder and the discriminator.

Instance normalisation everywhere (never BatchNorm): statistics stay per image, so training
behaves the same with any batch size and under DDP without synchronised statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SLOPE = 0.2


class ConvBlock(nn.Sequential):
    """3×3 (or ``kernel``) convolution, instance norm, leaky ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, kernel: int = 3):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2),
            nn.InstanceNorm2d(cout, affine=True),
            nn.LeakyReLU(SLOPE),
        )


class ResBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (pre-activation)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.InstanceNorm2d(channels, affine=True),
            nn.LeakyReLU(SLOPE),
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.InstanceNorm2d(channels, affine=True),
            nn.LeakyReLU(SLOPE),
            nn.Conv2d(channels, channels, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def coordinate_grid(batch: int, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) pixel-centre coordinates (x, y) in [-1, 1], as ``grid_sample`` reads them
    with ``align_corners=False``."""
    xs = (torch.arange(width, dtype=like.dtype, device=like.device) * 2 + 1) / width - 1
    ys = (torch.arange(height, dtype=like.dtype, device=like.device) * 2 + 1) / height - 1
    grid = torch.stack([xs.view(1, -1).expand(height, width), ys.view(-1, 1).expand(height, width)], 0)
    return grid.unsqueeze(0).expand(batch, -1, -1, -1)


def resize_to(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``x`` resampled to ``reference``'s size: averaged over whole blocks when shrinking (the
    network's scales are powers of two apart; a fixed kernel also exports to ONNX with a
    dynamic batch), over the pixels each output pixel covers when the sizes are not whole
    multiples (a 96² crop for a 64² network), bilinear when growing."""
    height, reference_height = int(x.shape[-2]), int(reference.shape[-2])
    if height == reference_height:
        return x
    if height % reference_height == 0:
        return F.avg_pool2d(x, height // reference_height)
    if height > reference_height:
        return F.interpolate(x, size=reference.shape[-2:], mode="area")
    return F.interpolate(x, size=reference.shape[-2:], mode="bilinear", align_corners=False)
