"""Checkpoints as safetensors: weights, optimizer state and the configuration, written atomically.

Tensors are stored under prefixes (``generator.``, ``discriminator.``, ``ema.``, and the two
optimizers' per-parameter state as ``optim_g.<index>.<name>``); everything else (the step, the
architecture, the optimizers' hyper-parameters, the loss scaler) is JSON in the file's metadata.
No pickle anywhere, so loading a checkpoint can never run code.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from facereenact.errors import CheckpointError, ConfigError, FaceReenactError, InputError, shown
from facereenact.io.atomic import atomic_output
from facereenact.model.config import ModelConfig

FORMAT = "facereenact-checkpoint"
VERSION = "1"


def _optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            tensors[f"{prefix}.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return tensors, json.dumps(state["param_groups"])


def _module_tensors(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(
    path: Path,
    step: int,
    architecture: ModelConfig,
    config_json: str,
    generator: nn.Module,
    discriminator: nn.Module,
    ema: nn.Module,
    optim_g: torch.optim.Optimizer,
    optim_d: torch.optim.Optimizer,
    scaler: dict[str, Any] | None,
) -> None:
    tensors = _module_tensors("generator", generator) | _module_tensors("discriminator", discriminator) | _module_tensors("ema", ema)
    g_state, g_groups = _optimizer_tensors("optim_g", optim_g)
    d_state, d_groups = _optimizer_tensors("optim_d", optim_d)
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "step": str(step),
        "architecture": json.dumps(architecture.as_dict()),
        "config": config_json,
        "optim_g_groups": g_groups,
        "optim_d_groups": d_groups,
        "scaler": json.dumps(scaler),
    }
    with atomic_output(path) as tmp:
        save_file(tensors | g_state | d_state, str(tmp), metadata=metadata)


def read_checkpoint(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a checkpoint; a clear error for a missing or foreign file, and for
    one whose recorded architecture is unreadable or impossible (before any tensor is read)."""
    _check_is_file(path, CheckpointError)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # noqa: BLE001 (safetensors raises several types for a damaged file)
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({type(error).__name__})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a facereenact checkpoint")
    architecture_of(metadata, path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open has no iterator)
    except Exception as error:  # noqa: BLE001 (safetensors raises several types for a damaged file)
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({type(error).__name__})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a facereenact checkpoint")
    return metadata, tensors


def architecture_of(metadata: dict[str, str], path: Path) -> ModelConfig:
    """The architecture a checkpoint records, checked like a configuration's model section
    (types, bounds) so that an impossible one is refused, naming its key, before it is built."""
    text = metadata.get("architecture")
    if text is None:
        raise CheckpointError(f"{path} records no architecture")
    try:
        values = json.loads(text)
    except (ValueError, RecursionError):
        raise CheckpointError(f"{path} has an unreadable architecture (not JSON)") from None
    if not isinstance(values, dict):
        raise CheckpointError(f"{path} has an unreadable architecture (not a mapping of sizes)")
    known = {item.name for item in fields(ModelConfig)}
    unknown = sorted(key for key in values if key not in known)
    if unknown:
        raise CheckpointError(f"{path} records an architecture key this version does not know: model.{shown(unknown[0])}")
    try:
        return ModelConfig(**values)
    except ConfigError as error:
        raise CheckpointError(f"{path} records an impossible architecture: {error}") from None


def generator_prefix(tensors: dict[str, torch.Tensor]) -> str:
    """The prefix of the generator weights to use: the EMA ones when the file has them (they
    are what inference and releases want), else the raw generator's."""
    return "ema" if any(key.startswith("ema.") for key in tensors) else "generator"


def load_module(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path: Path) -> None:
    """Load ``prefix.*`` tensors into ``module``, or say clearly that they do not fit it."""
    state = {key[len(prefix) + 1 :]: value for key, value in tensors.items() if key.startswith(prefix + ".")}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected
                  else f"{wrong[0]} is {tuple(state[wrong[0]].shape)}, expected {tuple(expected[wrong[0]].shape)}")  # fmt: skip
        raise CheckpointError(f"{path} holds a different architecture ({prefix}: {detail})")
    module.load_state_dict(state)


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str, groups_json: str) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            index, name = key[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(groups_json)})


def transplant(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str) -> list[str]:
    """Start ``module`` from another architecture's ``prefix.*`` weights (a warm start): tensors
    of the same name and shape are copied; where a layer gained input or output channels (a new
    input, an extra output), the overlapping block is copied, weights from new inputs start at
    zero (so the warm-started layer computes what it did) and new outputs keep their initial
    values. Returns the names that could not be used at all."""
    state = module.state_dict()
    skipped = []
    with torch.no_grad():
        for name, target in state.items():
            source = tensors.get(f"{prefix}.{name}")
            if source is None or source.dim() != target.dim():
                skipped.append(name)
                continue
            overlap = tuple(slice(0, min(a, b)) for a, b in zip(source.shape, target.shape))
            if target.dim() >= 2 and target.shape[1] > source.shape[1]:
                target[:, source.shape[1] :] = 0
            target[overlap] = source[overlap].to(target.dtype)
    module.load_state_dict(state)
    return skipped


def check_checkpoint(path: Path) -> None:
    """Refuse, before any model code runs, a missing file, a folder, a file that is not
    safetensors, one that is not a facereenact checkpoint, and one whose architecture is
    unreadable or impossible (only the file's header is read)."""
    _check_is_file(path, InputError)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # noqa: BLE001 (safetensors raises its own errors and OS errors: any means unusable)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"checkpoint {path} is not a safetensors file ({reason})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a facereenact checkpoint")
    architecture_of(metadata, path)


def _check_is_file(path: Path, error: type[FaceReenactError]) -> None:
    if "\x00" in str(path):
        raise error(f"checkpoint {str(path)!r} holds a NUL character, which no file name can")
    if not path.exists():
        raise error(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise error(f"checkpoint {path} is not a file but a folder")
    if not path.is_file():
        raise error(f"checkpoint {path} is not a file")
