"""The generator: encoders → correspondence → warped source features → SPADE decoder.

The decoder starts at 1/4 resolution from the attention-warped source features and the driving
features, and climbs to full resolution. At every scale it is conditioned on the reconstructed
driving PNCC (SPADE), and a geometry-aware gated skip connection adds the source features
warped to that scale: the gate sees the decoder state, the warped features, the target geometry
and the correspondence confidence, so it can take source texture where the source shows the
surface and fall back to synthesis where it does not (an opening mouth, a turned-away cheek).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facereenact.model.attention import Correspondence, CorrespondenceLayer, warp_by_flow
from facereenact.model.config import ModelConfig
from facereenact.model.encoders import DrivingEncoder, SharedHead, SourceEncoder
from facereenact.model.layers import SLOPE, resize_to
from facereenact.model.spade import SPADEResBlock


@dataclass
class GeneratorOutput:
    """``image`` (B, 3, H, W) in [0, 1]; ``warped`` the source image warped along the
    correspondence's flow (full resolution); ``warped_small`` the source image at 1/4
    resolution warped by the attention itself (what the correspondence loss compares);
    ``flow`` (B, 2, h, w) and ``confidence`` (B, 1, h, w) at 1/4 resolution. A generator that
    refines the training-free warp (``warp_inputs``) also returns ``synthesis``, what it draws
    itself, and ``blend`` (B, 1, H, W), how much of it replaces the warp in ``image``; both
    ``None`` otherwise."""

    image: torch.Tensor
    warped: torch.Tensor
    warped_small: torch.Tensor
    flow: torch.Tensor
    confidence: torch.Tensor
    synthesis: torch.Tensor | None = None
    blend: torch.Tensor | None = None


@dataclass
class SourceFeatures:
    """What the generator computes from the source alone: its encoder pyramid (full, 1/2 and
    1/4 resolution), the correspondence keys and the values the attention warps. The same for
    every driving frame, so inference computes it once per source."""

    full: torch.Tensor
    half: torch.Tensor
    quarter: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor

    def expand(self, batch: int) -> SourceFeatures:
        return SourceFeatures(*(t.expand(batch, *t.shape[1:]) for t in (self.full, self.half, self.quarter, self.keys, self.values)))


class GatedSkip(nn.Module):
    """``x + σ(gate([x, skip, condition, confidence])) · project(skip)``, the gate a per-pixel
    (1×1) function: where to trust the warped source is a local decision, and at full
    resolution a 3×3 gate would cost as much as the rest of the decoder block."""

    def __init__(self, channels: int, skip_channels: int, condition_channels: int):
        super().__init__()
        self.gate = nn.Conv2d(channels + skip_channels + condition_channels + 1, channels, 1)
        self.project = nn.Conv2d(skip_channels, channels, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, condition: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        condition, confidence = resize_to(condition, x), resize_to(confidence, x)
        # The warp a refining generator adds to the condition comes last, after the PNCC and
        # the confidence: a network trained without it then warm-starts with its gate intact.
        pncc, extras = condition[:, :3], condition[:, 3:]
        gate = torch.sigmoid(self.gate(torch.cat([x, skip, pncc, confidence, extras], 1)))
        return x + gate * self.project(skip)


#: Initial logit of the refining generator's blend (sigmoid(-3) ≈ 5 % synthesis over the warp).
BLEND_START = -3.0


def hole_region(holes: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) in [0, 1]: the hole mask grown by about 1/64 of the image and feathered as
    much again, so a synthesised fill meets the warp around it without a seam."""
    radius = max(1, round(int(holes.shape[-1]) / 64))
    size = 2 * radius + 1
    grown = F.max_pool2d(holes, size, stride=1, padding=radius)
    return F.avg_pool2d(grown, size, stride=1, padding=radius, count_include_pad=False)


class Generator(nn.Module):
    """(source image, source PNCC, reconstructed driving PNCC[, warp image, hole mask]) →
    the source person in the driving pose and expression. All inputs (B, C, H, W) in [0, 1].

    With ``warp_inputs`` the generator refines the training-free warp: it sees the warp and its
    holes, and its output is the warp with its own synthesis blended in where it learns the warp
    fails (an opening mouth, teeth, holes, seams); with ``refine_region: holes`` only in and
    around the warp's holes, the warp kept exactly everywhere else."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c1, c2, c4 = config.base, 2 * config.base, 4 * config.base
        cond, hidden = config.condition_channels, config.spade_hidden
        self.source_encoder = SourceEncoder(config)
        self.driving_encoder = DrivingEncoder(config)
        self.head = SharedHead(config)
        self.correspondence = CorrespondenceLayer(config.attention_chunk)
        self.start = nn.Conv2d(c4 + c4 + 3 + 1, c4, 3, 1, 1)
        self.bottleneck = nn.ModuleList([SPADEResBlock(c4, c4, cond, hidden) for _ in range(config.bottleneck_blocks)])
        self.skip2 = GatedSkip(c4, c2, cond)
        self.block2 = SPADEResBlock(c4, c2, cond, hidden)
        self.skip1 = GatedSkip(c2, c1, cond)
        self.block1 = SPADEResBlock(c2, c1, cond, hidden)
        # Refining the warp, a fourth output channel says where the synthesis replaces it; its
        # bias starts the blend nearly closed, so training starts from the warp, not from noise.
        self.to_rgb = nn.Conv2d(c1, 4 if config.warp_inputs else 3, 3, 1, 1)
        if config.warp_inputs:
            assert self.to_rgb.bias is not None  # nn.Conv2d's default bias=True
            with torch.no_grad():
                self.to_rgb.bias[3] = BLEND_START

    def encode_source(self, source_image: torch.Tensor, source_pncc: torch.Tensor) -> SourceFeatures:
        s1, s2, s4 = self.source_encoder(source_image, source_pncc)
        return SourceFeatures(s1, s2, s4, self.head(s4), torch.cat([s4, resize_to(source_image, s4)], 1))

    def forward(
        self,
        source_image: torch.Tensor,
        source_pncc: torch.Tensor,
        driving_pncc: torch.Tensor,
        warp_image: torch.Tensor | None = None,
        warp_holes: torch.Tensor | None = None,
        source: SourceFeatures | None = None,
    ) -> GeneratorOutput:
        """``source``: :meth:`encode_source` of (``source_image``, ``source_pncc``) computed
        beforehand, batch 1 or the driving batch (the images are then only used for ``warped``)."""
        condition = self.condition(driving_pncc, warp_image, warp_holes)
        batch = driving_pncc.shape[0]
        raw, match = self._decoded(source if source is not None else self.encode_source(source_image, source_pncc), driving_pncc, condition)
        warped_small = match.warped[:, 4 * self.config.base :]  # the source image part of the values
        warped = warp_by_flow(source_image if source_image.shape[0] == batch else source_image.expand(batch, -1, -1, -1), match.flow)
        if not self.config.warp_inputs or warp_image is None or warp_holes is None:  # (the latter two are checked above)
            return GeneratorOutput(torch.sigmoid(raw), warped, warped_small, match.flow, match.confidence)
        synthesis, blend = self.refinement(raw, warp_holes)
        image = warp_image + blend * (synthesis - warp_image)
        return GeneratorOutput(image, warped, warped_small, match.flow, match.confidence, synthesis, blend)

    def condition(self, driving_pncc: torch.Tensor, warp_image: torch.Tensor | None = None, warp_holes: torch.Tensor | None = None) -> torch.Tensor:
        """What the decoder is conditioned on at every scale: the driving PNCC, and for a
        warp-refining generator the warp and its holes."""
        if not self.config.warp_inputs:
            return driving_pncc
        if warp_image is None or warp_holes is None:
            raise ValueError("this generator was built with warp_inputs: pass warp_image and warp_holes")
        return torch.cat([driving_pncc, warp_image, warp_holes], 1)

    def correspond(self, driving_pncc: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, Correspondence]:
        """The driving features at 1/4 resolution and their correspondence with the source's
        ``keys`` and ``values`` (:class:`SourceFeatures`, the driving batch)."""
        d4 = self.driving_encoder(driving_pncc)
        return d4, self.correspondence(self.head(d4), keys, values)

    def decode(self, d4: torch.Tensor, warped: torch.Tensor, confidence: torch.Tensor, skip2: torch.Tensor, skip1: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """The decoder's raw output (B, 3 or 4, H, W) before the sigmoid, from the correspondence's
        ``warped`` values and ``confidence``; ``skip2``, ``skip1`` the source's 1/2- and
        full-resolution features warped along its flow."""
        warped4, warped_small = warped[:, : 4 * self.config.base], warped[:, 4 * self.config.base :]  # see encode_source's values
        x = self.start(torch.cat([warped4, d4, warped_small * 2 - 1, confidence], 1))
        for block in self.bottleneck:
            x = block(x, condition)
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = self.block2(self.skip2(x, skip2, condition, confidence), condition)
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = self.block1(self.skip1(x, skip1, condition, confidence), condition)
        return self.to_rgb(F.leaky_relu(x, SLOPE))

    def refine(self, source: SourceFeatures, driving_pncc: torch.Tensor, warp_image: torch.Tensor, warp_holes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(synthesis, blend) of a warp-refining generator: what :meth:`forward` computes for
        the pipeline, without the outputs only training reads. ``source`` batch 1 or the
        driving batch."""
        raw, _ = self._decoded(source, driving_pncc, self.condition(driving_pncc, warp_image, warp_holes))
        return self.refinement(raw, warp_holes)

    def _decoded(self, source: SourceFeatures, driving_pncc: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, Correspondence]:
        """The decoder's raw output and the correspondence it was decoded from; ``source`` batch
        1 or the driving batch."""
        if source.full.shape[0] != driving_pncc.shape[0]:
            source = source.expand(driving_pncc.shape[0])
        d4, match = self.correspond(driving_pncc, source.keys, source.values)
        skip2, skip1 = warp_by_flow(source.half, match.flow), warp_by_flow(source.full, match.flow)
        return self.decode(d4, match.warped, match.confidence, skip2, skip1, condition), match

    def refinement(self, raw: torch.Tensor, warp_holes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A warp-refining decoder's raw output → (synthesis, blend), the blend confined to the
        holes' surroundings with ``refine_region: holes``."""
        synthesis, blend = torch.sigmoid(raw[:, :3]), torch.sigmoid(raw[:, 3:])
        if self.config.refine_region == "holes":
            blend = blend * hole_region(warp_holes)
        return synthesis, blend
