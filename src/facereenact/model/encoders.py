"""Encoders: the source (image + its PNCC) and the reconstructed driving PNCC into one feature
space at 1/4 resolution, where the correspondence is computed.

The two encoders have their own first layers (their inputs differ: the source has appearance,
the driving side only geometry) and share the last ones (``SharedHead``), which is what puts both
in one space: equal features mean the same surface point. Both see pixel coordinates besides the
PNCC, so the background (PNCC 0 everywhere) still matches by position. The source encoder also
returns its features at full and 1/2 resolution, which the correspondence warps for the decoder.
"""

from __future__ import annotations

import torch
from torch import nn

from facereenact.model.config import ModelConfig
from facereenact.model.layers import ConvBlock, ResBlock, coordinate_grid


class _Pyramid(nn.Module):
    """Full → 1/2 → 1/4 resolution with ``base``, 2·base, 4·base channels."""

    def __init__(self, cin: int, config: ModelConfig):
        super().__init__()
        c1, c2, c4 = config.base, 2 * config.base, 4 * config.base
        self.full = nn.Sequential(ConvBlock(cin + 2, c1, kernel=5), ConvBlock(c1, c1))
        self.down2 = ConvBlock(c1, c2, stride=2)
        self.down4 = nn.Sequential(ConvBlock(c2, c4, stride=2), *[ResBlock(c4) for _ in range(config.encoder_blocks)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.cat([x * 2 - 1, coordinate_grid(x.shape[0], x.shape[2], x.shape[3], x)], 1)
        f1 = self.full(x)
        f2 = self.down2(f1)
        return f1, f2, self.down4(f2)


class SharedHead(nn.Module):
    """The layers both encoders share: 1/4-resolution features → correspondence features."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c4 = 4 * config.base
        self.body = nn.Sequential(ResBlock(c4), nn.Conv2d(c4, config.corr_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SourceEncoder(nn.Module):
    """Source image (B, 3, H, W) + source PNCC (B, 3, H, W), both in [0, 1] → multi-scale
    features (full, 1/2, 1/4) and the pre-head 1/4 features for the shared head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.pyramid = _Pyramid(6, config)

    def forward(self, image: torch.Tensor, pncc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.pyramid(torch.cat([image, pncc], 1))


class DrivingEncoder(nn.Module):
    """Reconstructed driving PNCC (B, 3, H, W) → 1/4-resolution features (and the decoder's
    starting point at 1/4)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.pyramid = _Pyramid(3, config)

    def forward(self, pncc: torch.Tensor) -> torch.Tensor:
        return self.pyramid(pncc)[2]
