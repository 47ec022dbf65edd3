"""Correspondence: cosine-similarity attention from driving to source features at 1/4
resolution, with a learned temperature, and the warps it defines.

For every driving position ``i`` the attention ``A[i, j] = softmax_j(cos(d_i, s_j) / τ)`` over
all source positions ``j`` says where in the source its content comes from. It warps the source's
1/4-resolution features directly (``A @ values``); the finer scales are warped along the flow it
implies (the attention-weighted mean source position, sampled bilinearly), so one attention
serves every scale. Query positions are processed in chunks so that only a (chunk × keys) block
of similarities exists at once: at 256² (64² = 4,096 positions at 1/4) a full block would be
4,096² per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from facereenact.model.layers import coordinate_grid


@dataclass
class Correspondence:
    """What the attention gives, at 1/4 resolution: ``warped`` values (B, V, h, w), ``flow``
    (B, 2, h, w) the mean source position in [-1, 1] grid coordinates, and ``confidence``
    (B, 1, h, w) the best cosine similarity (low where the source shows nothing alike)."""

    warped: torch.Tensor
    flow: torch.Tensor
    confidence: torch.Tensor


def _attend(query: torch.Tensor, key: torch.Tensor, values: torch.Tensor, inverse_temperature: torch.Tensor) -> torch.Tensor:
    """One chunk: query (B, n, C), key (B, C, m), values (B, m, V) → (B, n, V + 1), the last
    channel the best cosine similarity. Softmax in float32 whatever the autocast dtype."""
    similarity = torch.bmm(query, key).float()
    attention = torch.softmax(similarity * inverse_temperature, dim=-1)
    warped = torch.bmm(attention, values.float())
    return torch.cat([warped, similarity.amax(-1, keepdim=True)], -1)


def attention_warp(
    driving: torch.Tensor,
    source: torch.Tensor,
    values: torch.Tensor,
    inverse_temperature: torch.Tensor,
    chunk: int | None = None,
    recompute: bool = False,
) -> Correspondence:
    """Driving features (B, C, h, w) attend to source features (B, C, h', w') and gather
    ``values`` (B, V, h', w'). ``chunk`` query positions at a time (None: all at once);
    ``recompute`` drops each chunk's attention after the forward pass and recomputes it in the
    backward pass, so training memory is bounded by one chunk too."""
    batch, _, height, width = driving.shape
    query = F.normalize(driving.flatten(2), dim=1).transpose(1, 2)  # (B, n, C)
    key = F.normalize(source.flatten(2), dim=1)  # (B, C, m)
    coordinates = coordinate_grid(batch, source.shape[2], source.shape[3], source).flatten(2)
    gathered = torch.cat([values.flatten(2), coordinates], 1).transpose(1, 2)  # (B, m, V + 2)
    step = query.shape[1] if chunk is None else chunk
    pieces = []
    for start in range(0, query.shape[1], step):
        part = query[:, start : start + step]
        if recompute and torch.is_grad_enabled():
            pieces.append(checkpoint(_attend, part, key, gathered, inverse_temperature, use_reentrant=False))
        else:
            pieces.append(_attend(part, key, gathered, inverse_temperature))
    out = torch.cat(pieces, 1).transpose(1, 2).reshape(batch, -1, height, width)
    n_values = values.shape[1]
    return Correspondence(out[:, :n_values], out[:, n_values : n_values + 2], out[:, n_values + 2 :])


class CorrespondenceLayer(nn.Module):
    """Attention with a learned temperature τ (kept in [1e-3, 1])."""

    def __init__(self, chunk: int, initial_temperature: float = 0.02):
        super().__init__()
        self.chunk = chunk
        self.log_temperature = nn.Parameter(torch.tensor(math.log(initial_temperature)))
        self.recompute = False

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.clamp(math.log(1e-3), 0.0).exp()

    def forward(self, driving: torch.Tensor, source: torch.Tensor, values: torch.Tensor) -> Correspondence:
        return attention_warp(driving, source, values, 1.0 / self.temperature, self.chunk, self.recompute)


def warp_by_flow(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``features`` (B, C, H, W) at ``flow`` (B, 2, h, w) in [-1, 1] grid coordinates,
    the flow first upsampled to (H, W)."""
    if flow.shape[-2:] != features.shape[-2:]:
        flow = F.interpolate(flow, size=features.shape[-2:], mode="bilinear", align_corners=False)
    return F.grid_sample(features, flow.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border", align_corners=False)
