"""The model that ships with the project: writing a release file and finding it, verified.

A release is a training checkpoint cut down to what inference needs: the EMA generator in
float16 (half the size, no measurable change in output at 8-bit colour) plus the architecture
and provenance as metadata. The file ships in the package's ``checkpoints/`` folder and its
SHA-256 is recorded here, so a truncated download, a Git LFS pointer or a swapped file is
refused with one clear line instead of producing garbage.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import save_file

from facereenact.errors import CheckpointError
from facereenact.io.assets import sha256_of
from facereenact.io.atomic import atomic_output
from facereenact.model.checkpoint import FORMAT, VERSION, architecture_of, generator_prefix, read_checkpoint

ENV_VAR = "FACEREENACT_CHECKPOINTS"
#: The package's ``checkpoints/`` folder (package data: there in a checkout and in an installed wheel alike).
PACKAGE_CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


@dataclass(frozen=True)
class ShippedModel:
    file: str
    sha256: str


#: The default model of ``animate --method neural``. Update both fields with ``facereenact release``.
SHIPPED = ShippedModel(file="refine-holes-128.safetensors", sha256="318bc1e4f02d52587947379cfb323dbd559636159b81a45c534c38bd8f259016")


def write_release(checkpoint: Path, output: Path, provenance: dict[str, str] | None = None) -> str:
    """Write ``checkpoint``'s EMA generator as float16 to ``output`` (atomically); returns the
    file's SHA-256. ``provenance`` (data, split, hardware...) is stored as metadata."""
    if output.suffix != ".safetensors":
        raise CheckpointError(f"{output}: a release must end in .safetensors")
    metadata, tensors = read_checkpoint(checkpoint)
    architecture = architecture_of(metadata, checkpoint)
    prefix = generator_prefix(tensors)
    weights = {key: (value.half() if value.is_floating_point() else value).contiguous() for key, value in tensors.items() if key.startswith(prefix + ".")}
    if not weights:
        raise CheckpointError(f"{checkpoint} holds no generator weights")
    release = {
        "format": FORMAT,
        "version": VERSION,
        "kind": "release",
        "step": metadata.get("step", "unknown"),
        "architecture": json.dumps(architecture.as_dict()),
        "provenance": json.dumps(provenance or {}, sort_keys=True),
    }
    with atomic_output(output) as tmp:
        save_file({key.replace(prefix + ".", "ema.", 1): value for key, value in weights.items()}, str(tmp), metadata=release)
    return sha256_of(output)


def checkpoints_dir() -> Path:
    """``$FACEREENACT_CHECKPOINTS``, else the package's ``checkpoints/``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else PACKAGE_CHECKPOINTS


def shipped_checkpoint(model: ShippedModel = SHIPPED) -> Path:
    """The shipped model's file, after checking it is there and is the file that was released."""
    path = checkpoints_dir() / model.file
    if not path.is_file():
        raise CheckpointError(
            f"the shipped model {path} is missing (set {ENV_VAR} to the folder holding {model.file}, "
            "name another checkpoint, or use the warp method)"
        )
    if not model.sha256:
        raise CheckpointError("no model has been released yet: name a trained checkpoint, or use the warp method")
    actual = sha256_of(path)
    if actual != model.sha256:
        raise CheckpointError(f"{path} is not the released model (SHA-256 {actual[:12]}…, expected {model.sha256[:12]}…): reinstall the package (or restore the file with git), or use the warp method")
    return path

