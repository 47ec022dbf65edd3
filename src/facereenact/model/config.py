"""The network's architecture as one dataclass: what a checkpoint must match to be loaded.

Presets scale the same network from a CI toy to the paper's size: ``tiny`` (64², seconds per
step on one core), ``cpu-small`` (128², trains on a 2-core CPU), ``paper-256`` (256², GPU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from facereenact.errors import ConfigError

REFINE_REGIONS = ("everywhere", "holes")

#: The sane range of each size of the architecture (inclusive): four times the ``paper-256``
#: preset's widths and depths, up to 1024² images. Beyond, a network asks for more memory than
#: a machine has; a configuration or a checkpoint's metadata asking for it is refused, naming the
#: key, before anything is built.
ARCHITECTURE_BOUNDS: dict[str, tuple[int, int]] = {
    "resolution": (16, 1024),
    "base": (1, 256),
    "corr_channels": (1, 1024),
    "encoder_blocks": (0, 8),
    "bottleneck_blocks": (0, 16),
    "spade_hidden": (1, 512),
    #: Query positions per attention chunk: with the keys of a 1024² image, 16384 of them are a
    #: 4 GB block of similarities.
    "attention_chunk": (1, 16384),
    "disc_channels": (1, 256),
    "disc_scales": (1, 4),
    "disc_layers": (1, 6),
}


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
        # The values may come from a file (a checkpoint's metadata): check the types first.
        for item in fields(self):
            value, default = getattr(self, item.name), item.default
            if type(value) is not type(default):
                kind = {bool: "true or false", int: "an integer", str: "a string"}[type(default)]
                raise ConfigError(f"model.{item.name} must be {kind}, got {value!r}")
        if self.refine_region not in REFINE_REGIONS:
            raise ConfigError(f"model.refine_region must be one of {', '.join(REFINE_REGIONS)}, got {self.refine_region!r}")
        for name, (low, high) in ARCHITECTURE_BOUNDS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(f"model.{name} is {value}: it must be between {low} and {high}")
        if self.resolution % 4:
            raise ConfigError(f"model.resolution must be a multiple of 4, got {self.resolution}")

    def check_discriminator(self) -> None:
        """Refuse a discriminator that cannot judge images of this resolution (training builds
        one; inference never does)."""
        if not _patches_fit(self.resolution, self.disc_scales, self.disc_layers):
            raise ConfigError(
                f"model.disc_scales {self.disc_scales} and model.disc_layers {self.disc_layers} shrink a "
                f"{self.resolution}² image below one patch: use fewer, or a larger model.resolution"
            )

    @property
    def condition_channels(self) -> int:
        """Channels of the decoder's condition: the driving PNCC (+ warped image and hole mask)."""
        return 3 + (4 if self.warp_inputs else 0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _patches_fit(resolution: int, scales: int, layers: int) -> bool:
    """Whether each scale of the discriminator (see :mod:`facereenact.model.discriminator`) has
    more than one position at each normalised layer and at least one patch at the end."""
    size = resolution
    for scale in range(scales):
        if scale:
            size = (size - 1) // 2 + 1  # 3×3 average pooling, stride 2, padding 1
        inner = (size - 2) // 2 + 1  # 4×4 convolution, stride 2, padding 1
        for index in range(1, layers + 1):
            inner = (inner - 2) // 2 + 1 if index < layers else inner - 1
            if inner < 2:
                return False
        if inner - 1 < 1:
            return False
    return True


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(resolution=64, base=8, corr_channels=16, encoder_blocks=1, bottleneck_blocks=1, spade_hidden=16,
                        disc_channels=8, disc_scales=2, disc_layers=2),
    "cpu-small": ModelConfig(resolution=128, base=16, corr_channels=64, encoder_blocks=1, bottleneck_blocks=2, spade_hidden=32,
                             disc_channels=32, disc_scales=2, disc_layers=3),
    "paper-256": ModelConfig(resolution=256, base=64, corr_channels=256, encoder_blocks=2, bottleneck_blocks=4, spade_hidden=128,
                             attention_chunk=1024, disc_channels=64, disc_scales=2, disc_layers=4),
}  # fmt: skip
