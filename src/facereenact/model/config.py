"""The network's architecture as one dataclass: what a checkpoint must match to be loaded.

Presets scale the same network from a CI toy to the paper's size: ``tiny`` (64², seconds per
step on one core), ``cpu-small`` (128², trains on a 2-core CPU), ``paper-256`` (256², GPU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from facereenact.errors import ConfigError

REFINE_REGIONS = ("everywhere", "holes")


@dataclass(frozen=True)
class ModelConfig:
    """Widths and sizes. ``base`` channels at full resolution double at 1/2 and again at 1/4,
    where the correspondence is computed on ``corr_channels``-wide features."""

    resolution: int = 128
    base: int = 16
    corr_channels: int = 64
    encoder_blocks: int = 1
    bottleneck_blocks: int = 2
    spade_hidden: int = 32
    #: Query positions per attention chunk: bounds the (chunk × keys) similarity block in memory.
    attention_chunk: int = 1024
    #: Refine the training-free geometric warp: the decoder sees it and its hole mask, and blends
    #: its own synthesis over it with a learned mask.
    warp_inputs: bool = False
    #: Where a refining generator may replace the warp: ``everywhere``, or only in and around the
    #: warp's holes (``holes``: what the source cannot show, such as an opening mouth). With few
    #: training identities, changes elsewhere were measured to hurt unseen faces.
    refine_region: str = "everywhere"
    disc_channels: int = 32
    disc_scales: int = 2
    disc_layers: int = 3

    def __post_init__(self) -> None:
        if self.refine_region not in REFINE_REGIONS:
            raise ConfigError(f"model.refine_region must be one of {', '.join(REFINE_REGIONS)}, got {self.refine_region!r}")
        if self.resolution % 4 or self.resolution < 16:
            raise ConfigError(f"model.resolution must be a multiple of 4 and at least 16, got {self.resolution}")
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, int) and not isinstance(value, bool) and value < (0 if item.name.endswith("blocks") else 1):
                raise ConfigError(f"model.{item.name} must be positive, got {value}")

    @property
    def condition_channels(self) -> int:
        """Channels of the decoder's condition: the driving PNCC (+ warped image and hole mask)."""
        return 3 + (4 if self.warp_inputs else 0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(resolution=64, base=8, corr_channels=16, encoder_blocks=1, bottleneck_blocks=1, spade_hidden=16,
                        disc_channels=8, disc_scales=2, disc_layers=2),
    "cpu-small": ModelConfig(resolution=128, base=16, corr_channels=64, encoder_blocks=1, bottleneck_blocks=2, spade_hidden=32,
                             disc_channels=32, disc_scales=2, disc_layers=3),
    "paper-256": ModelConfig(resolution=256, base=64, corr_channels=256, encoder_blocks=2, bottleneck_blocks=4, spade_hidden=128,
                             attention_chunk=1024, disc_channels=64, disc_scales=2, disc_layers=4),
}  # fmt: skip
