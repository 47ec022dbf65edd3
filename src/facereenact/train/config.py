"""Training configuration: a preset plus the keys a YAML or TOML file overrides.

A file names a ``preset`` (``tiny``, ``cpu-small``, ``paper-256``) and overrides any key of the
sections ``model``, ``data``, ``optim``, ``losses`` and ``run``. A key the configuration does not
have is an error naming it (a typo must not silently train the wrong thing). Relative paths are
taken relative to the configuration file, never to the working directory.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from facereenact.errors import ConfigError, shown
from facereenact.model.config import PRESETS, ModelConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class DataConfig:
    root: Path | None = None
    #: Validation identities by name; when empty, ``val_count`` are picked deterministically.
    val_identities: tuple[str, ...] = ()
    val_count: int = 4
    val_batch: int = 8
    jitter: float = 0.2
    flip: float = 0.5
    workers: int = 0


@dataclass(frozen=True)
class OptimConfig:
    steps: int = 20000
    #: Per process: the global batch is this times the number of processes.
    batch_size: int = 8
    lr_generator: float = 2e-4
    lr_discriminator: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    #: Mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling).
    amp: bool = True
    #: Bound attention memory in training by recomputing each chunk in the backward pass.
    recompute_attention: bool = False


@dataclass(frozen=True)
class LossConfig:
    l1: float = 1.0
    ms_ssim: float = 1.0
    correspondence: float = 1.0
    gan: float = 0.05
    feature_matching: float = 1.0
    #: The adversarial terms start at this step (the reconstruction losses shape the start).
    gan_start: int = 0
    vgg: float = 1.0
    vgg_weights: Path | None = None
    identity: float = 0.1
    identity_model: Path | None = None


@dataclass(frozen=True)
class RunConfig:
    out: Path = Path("runs/default")
    seed: int = 0
    log_every: int = 10
    image_every: int = 500
    val_every: int = 250
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    #: ``auto``: CUDA when available, else CPU.
    device: str = "auto"
    #: CPU threads per process (0: leave PyTorch's default).
    threads: int = 0
    assets: Path | None = None
    #: Warm start: a checkpoint (of this or a smaller architecture) whose weights a new run
    #: starts from (see :func:`facereenact.model.checkpoint.transplant`); ignored on resume.
    init_from: Path | None = None
    #: Stop after this many minutes of training (0: no limit), validating and saving first: a
    #: run on a machine lent for a fixed time ends with its checkpoint written.
    time_limit_minutes: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "cpu-small"
    model: ModelConfig = field(default_factory=lambda: PRESETS["cpu-small"])
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, sort_keys=True)


#: Per-preset defaults of the sections other than ``model``.
_PRESET_SECTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "data": {"val_batch": 4, "val_count": 3},
        "optim": {"steps": 20, "batch_size": 2},
        "run": {"log_every": 1, "image_every": 10, "val_every": 10, "checkpoint_every": 10},
    },
    "cpu-small": {
        "optim": {"steps": 20000, "batch_size": 8},
        # One thread: on a 2-core machine shared with other work, a second OpenMP thread that
        # has to wait for a busy core made each step 2-3× slower in measurements here.
        "run": {"threads": 1},
    },
    "paper-256": {
        "optim": {"steps": 200000, "batch_size": 16, "recompute_attention": True},
        "run": {"log_every": 50, "image_every": 2000, "val_every": 1000, "checkpoint_every": 5000},
    },
}

_SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "losses": LossConfig, "run": RunConfig}


def _number(value: Any, where: str) -> float:
    """A float; also from a string, since YAML 1.1 reads ``1e-4`` (no dot) as text."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(f"{where} must be a number, got {value!r}")


def _convert(section: str, cls: type, values: dict[str, Any], base: Any, folder: Path) -> Any:
    """``base`` with ``values`` applied, each checked against the field's type."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted((key for key in values if key not in known), key=str)
    if unknown:
        raise ConfigError(f"unknown key {section}.{shown(str(unknown[0]))} (known keys of [{section}]: {', '.join(known)})")
    changes: dict[str, Any] = {}
    for name, value in values.items():
        default = getattr(base, name)
        annotation = str(known[name].type)
        where = f"{section}.{name}"
        if "Path" in annotation:
            if value is None and "None" in annotation:  # an optional path, left unset
                changes[name] = None
                continue
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where} must be a path string, got {value!r}")
            if "\x00" in value:
                raise ConfigError(f"{where} holds a NUL character: {value!r}")
            path = Path(value).expanduser()
            changes[name] = path if path.is_absolute() else (folder / path).resolve()
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where} must be true or false, got {value!r}")
            changes[name] = value
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where} must be an integer, got {value!r}")
            changes[name] = value
        elif isinstance(default, float):
            changes[name] = _number(value, where)
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{where} must be a list of names, got {value!r}")
            changes[name] = tuple(value)
        else:
            if not isinstance(value, str):
                raise ConfigError(f"{where} must be a string, got {value!r}")
            changes[name] = value
    return replace(base, **changes)


class Bound(NamedTuple):
    """The values a numeric key may take: from ``low`` to ``high`` (None: no upper bound),
    both included unless ``below_high`` (the value must stay under ``high``)."""

    low: float
    high: float | None = None
    below_high: bool = False

    def refuses(self, value: float) -> str | None:
        """Why ``value`` is out of bounds (None: it is within)."""
        if self.high is None:
            return None if value >= self.low else f"at least {self.low}"
        if self.below_high:
            return None if self.low <= value < self.high else f"at least {self.low} and below {self.high}"
        return None if self.low <= value <= self.high else f"between {self.low} and {self.high}"


#: Numeric keys outside these bounds make no run: a negative step count would end at once having
#: trained nothing, a zero interval would never fire, a beta of 1 is refused by Adam, a seed must
#: fit the random generators' 32 bits, and a jitter above 1 would turn colours negative. (The
#: model section's sizes are bounded by :data:`facereenact.model.config.ARCHITECTURE_BOUNDS`.)
#: Every number must also be finite.
BOUNDS: dict[str, Bound] = {
    "optim.steps": Bound(1),
    "optim.batch_size": Bound(1),
    "optim.lr_generator": Bound(0),
    "optim.lr_discriminator": Bound(0),
    "optim.beta1": Bound(0, 1, below_high=True),
    "optim.beta2": Bound(0, 1, below_high=True),
    "optim.grad_clip": Bound(0),
    "optim.ema_decay": Bound(0, 1),
    "data.val_count": Bound(0),
    "data.val_batch": Bound(1, 1024),
    "data.jitter": Bound(0, 1),
    "data.flip": Bound(0, 1),
    "data.workers": Bound(0, 256),
    "losses.l1": Bound(0),
    "losses.ms_ssim": Bound(0),
    "losses.correspondence": Bound(0),
    "losses.gan": Bound(0),
    "losses.feature_matching": Bound(0),
    "losses.gan_start": Bound(0),
    "losses.vgg": Bound(0),
    "losses.identity": Bound(0),
    "run.seed": Bound(0, 2**32 - 1),
    "run.log_every": Bound(1),
    "run.image_every": Bound(1),
    "run.val_every": Bound(1),
    "run.checkpoint_every": Bound(1),
    "run.keep_checkpoints": Bound(1),
    "run.threads": Bound(0, 1024),
    "run.time_limit_minutes": Bound(0),
}

#: ``run.device``: ``auto`` or a device PyTorch names (``cpu``, ``cuda``, ``cuda:1``, ``mps`` …).
DEVICE = re.compile(r"auto|cpu|mps|(cuda|xpu)(:\d{1,3})?")


def build_config(values: dict[str, Any], folder: Path) -> TrainConfig:
    """A :class:`TrainConfig` from parsed file contents (``folder`` anchors relative paths)."""
    if not isinstance(values, dict):
        raise ConfigError("a training configuration must be a mapping of sections")
    unknown = sorted((key for key in values if key not in {"preset", *_SECTIONS}), key=str)
    if unknown:
        raise ConfigError(f"unknown key {shown(str(unknown[0]))} (known: preset, {', '.join(_SECTIONS)})")
    preset = values.get("preset", "cpu-small")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        base = PRESETS[preset] if name == "model" else cls()
        base = _convert(name, cls, _PRESET_SECTIONS[preset].get(name, {}), base, folder)
        given = values.get(name) or {}
        if not isinstance(given, dict):
            raise ConfigError(f"section {name} must be a mapping of keys")
        sections[name] = _convert(name, cls, given, base, folder)
    config = TrainConfig(preset=preset, **sections)
    if not config.run.out.is_absolute():
        config = replace(config, run=replace(config.run, out=(folder / config.run.out).resolve()))
    if config.data.root is None:
        raise ConfigError("data.root is required: the folder written by 'facereenact prepare'")
    for key, bound in BOUNDS.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if not math.isfinite(value):
            raise ConfigError(f"{key} is {value}: it must be a finite number")
        refusal = bound.refuses(value)
        if refusal is not None:
            raise ConfigError(f"{key} is {value}: it must be {refusal}")
    if config.data.val_count < 1 and not config.data.val_identities:
        raise ConfigError("data.val_count must be at least 1 (training needs held-out identities to validate on)")
    if not DEVICE.fullmatch(config.run.device):
        raise ConfigError(f"run.device must be auto, cpu, cuda, cuda:N or another PyTorch device name, got {config.run.device!r}")
    config.model.check_discriminator()
    return config


def load_config(path: Path) -> TrainConfig:
    """Read a ``.yaml``/``.yml`` or ``.toml`` configuration."""
    if not path.exists():
        raise ConfigError(f"configuration file {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"configuration file {path} is not a file")
    if path.suffix not in {".yaml", ".yml", ".toml"}:
        raise ConfigError(f"{path}: a configuration must be .yaml, .yml or .toml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    try:
        values = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text) or {}
    except (yaml.YAMLError, tomllib.TOMLDecodeError, ValueError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"{path} is not valid {path.suffix[1:].upper()}: {first}") from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be a configuration") from None
    return build_config(values, path.resolve().parent)
