"""Spatially adaptive normalisation (SPADE): the decoder is told the target geometry at every
scale by modulating its normalised activations with maps computed from the driving PNCC."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facereenact.model.layers import SLOPE, resize_to


class SPADE(nn.Module):
    """Parameter-free instance norm, then ``x · (1 + γ(cond)) + β(cond)`` per pixel. The hidden
    width is capped at the modulated channel count (wider buys nothing at the fine scales,
    where the 3×3 γ and β convolutions are the decoder's largest cost)."""

    def __init__(self, channels: int, condition_channels: int, hidden: int):
        super().__init__()
        hidden = min(hidden, channels)
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(condition_channels, hidden, 3, 1, 1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, 1, 1)
        self.beta = nn.Conv2d(hidden, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        features = self.shared(resize_to(condition, x))
        return self.norm(x) * (1 + self.gamma(features)) + self.beta(features)


class SPADEResBlock(nn.Module):
    """Residual block whose two convolutions each follow a SPADE normalisation."""

    def __init__(self, cin: int, cout: int, condition_channels: int, hidden: int):
        super().__init__()
        middle = min(cin, cout)
        self.norm1 = SPADE(cin, condition_channels, hidden)
        self.conv1 = nn.Conv2d(cin, middle, 3, 1, 1)
        self.norm2 = SPADE(middle, condition_channels, hidden)
        self.conv2 = nn.Conv2d(middle, cout, 3, 1, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.leaky_relu(self.norm1(x, condition), SLOPE))
        h = self.conv2(F.leaky_relu(self.norm2(h, condition), SLOPE))
        return (x if self.shortcut is None else self.shortcut(x)) + h
