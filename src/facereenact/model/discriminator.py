"""A multi-scale patch discriminator conditioned on the driving PNCC.

Each scale judges (image, PNCC) pairs on overlapping patches, so it punishes both unrealistic
texture and an image that does not follow the target geometry; coarser scales see larger
context. It returns every layer's features for the feature-matching loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facereenact.model.config import ModelConfig
from facereenact.model.layers import SLOPE


class PatchDiscriminator(nn.Module):
    """One scale: strided 4×4 convolutions down to a map of patch logits."""

    def __init__(self, cin: int, channels: int, layers: int):
        super().__init__()
        blocks: list[nn.Module] = [nn.Sequential(nn.Conv2d(cin, channels, 4, 2, 1), nn.LeakyReLU(SLOPE))]
        width = channels
        for index in range(1, layers + 1):
            wider = min(width * 2, 8 * channels)
            stride = 2 if index < layers else 1
            blocks.append(nn.Sequential(nn.Conv2d(width, wider, 4, stride, 1), nn.InstanceNorm2d(wider, affine=True), nn.LeakyReLU(SLOPE)))
            width = wider
        blocks.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class MultiScaleDiscriminator(nn.Module):
    """(image (B, 3, H, W), PNCC (B, 3, H, W)) in [0, 1] → per scale, the list of layer
    features whose last entry is the patch logits."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.scales = nn.ModuleList([PatchDiscriminator(6, config.disc_channels, config.disc_layers) for _ in range(config.disc_scales)])

    def forward(self, image: torch.Tensor, pncc: torch.Tensor) -> list[list[torch.Tensor]]:
        x = torch.cat([image, pncc], 1) * 2 - 1
        outputs = []
        for index, scale in enumerate(self.scales):
            if index:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(scale(x))
        return outputs
