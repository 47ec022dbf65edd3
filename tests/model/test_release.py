"""Release files: EMA weights in float16, provenance, and the hash check of the shipped model."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from facereenact.errors import CheckpointError
from facereenact.model import release
from facereenact.model.checkpoint import save_checkpoint
from facereenact.model.config import PRESETS
from facereenact.model.discriminator import MultiScaleDiscriminator
from facereenact.model.generator import Generator
from facereenact.model.inference import load_generator
from tests.cli_inputs import run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Generator]:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    config = PRESETS["tiny"]
    generator, discriminator = Generator(config), MultiScaleDiscriminator(config)
    ema = copy.deepcopy(generator)
    with torch.no_grad():
        for parameter in ema.parameters():
            parameter.add_(0.01)  # the EMA differs from the raw weights: the release must take it
    path = tmp_path_factory.mktemp("ckpt") / "run.safetensors"
    save_checkpoint(path, 7, config, "{}", generator, discriminator, ema,
                    torch.optim.Adam(generator.parameters()), torch.optim.Adam(discriminator.parameters()), None)  # fmt: skip
    return path, ema


def test_a_release_holds_the_ema_generator_in_half_precision(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path, ema = trained
    output = tmp_path / "model.safetensors"
    result = run_cli(*["release", str(path), "-o", str(output), "--note", "data=clips", "--note", "hardware=cpu"])
    assert result.exit_code == 0, result.output
    digest = release.sha256_of(output)
    assert digest in result.output.replace("\n", "")
    with safe_open(str(output), framework="pt") as handle:
        keys = list(handle.keys())
        metadata = handle.metadata()
        assert all(key.startswith("ema.") for key in keys)
        assert all(handle.get_tensor(key).dtype in (torch.float16, torch.int64) for key in keys)
    assert metadata["kind"] == "release" and metadata["step"] == "7" and '"hardware": "cpu"' in metadata["provenance"]
    assert output.stat().st_size < path.stat().st_size / 3
    loaded = load_generator(output)
    for (name, a), b in zip(loaded.state_dict().items(), ema.state_dict().values()):
        assert a.dtype == b.dtype and torch.allclose(a, b, atol=2e-3, rtol=1e-3), name


def test_the_shipped_model_is_refused_when_missing_or_altered(trained, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path, _ = trained
    monkeypatch.setenv(release.ENV_VAR, str(tmp_path))
    model = release.ShippedModel(file="m.safetensors", sha256="")
    with pytest.raises(CheckpointError, match="missing"):
        release.shipped_checkpoint(model)
    digest = release.write_release(path, tmp_path / "m.safetensors")
    model = release.ShippedModel(file="m.safetensors", sha256=digest)
    assert release.shipped_checkpoint(model) == tmp_path / "m.safetensors"
    with open(tmp_path / "m.safetensors", "r+b") as handle:  # one flipped byte
        handle.seek(-10, 2)
        byte = handle.read(1)
        handle.seek(-10, 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CheckpointError, match="not the released model"):
        release.shipped_checkpoint(model)


def test_the_repository_ships_a_model_that_verifies() -> None:
    if not release.SHIPPED.sha256:
        pytest.fail("facereenact.model.release.SHIPPED records no SHA-256")
    path = release.shipped_checkpoint()
    assert path.stat().st_size <= 60e6
    generator = load_generator(path)
    assert generator.config.warp_inputs, "the shipped model refines the warp"
