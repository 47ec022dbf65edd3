"""Checkpoints with hostile metadata or damaged bytes: an architecture of any shape is either
one that can be built or refused, naming its key, before a single weight is allocated; a file cut
short or garbled anywhere is one error line, from the library and from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from facereenact.errors import FaceReenactError
from facereenact.model.checkpoint import FORMAT, check_checkpoint, read_checkpoint
from facereenact.model.config import PRESETS, ModelConfig
from facereenact.model.discriminator import MultiScaleDiscriminator
from facereenact.model.generator import Generator
from tests.cli_inputs import error_line, run_cli

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
#: More weights than this is no network any machine runs.
MOST_PARAMETERS = 4_000_000_000

ARCHITECTURE_KEYS = list(PRESETS["tiny"].as_dict())
VALUES = st.one_of(
    st.integers(-(2**62), 2**62),
    st.sampled_from([0, 1, 3, 4, 16, 64, 1024, 1025, 65536, 10**5, 10**9]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(max_size=6),
    st.sampled_from(["holes", "everywhere", "mouth"]),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def architectures(draw: st.DrawFn) -> str:
    """The ``architecture`` metadata of a checkpoint: a preset's with keys changed, added or
    removed, or something that is not a mapping of sizes at all."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "json", "text"]))
    if kind == "text":
        return draw(st.text(max_size=40))
    if kind == "json":
        return json.dumps(draw(st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.none(), st.text(max_size=5))))
    values: dict[str, Any] = dict(PRESETS[draw(st.sampled_from(sorted(PRESETS)))].as_dict())
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["set", "set", "set", "drop", "add"]))
        if action == "set":
            values[draw(st.sampled_from(ARCHITECTURE_KEYS))] = draw(VALUES)
        elif action == "drop":
            values.pop(draw(st.sampled_from(ARCHITECTURE_KEYS)), None)
        else:
            values[draw(st.text(min_size=1, max_size=6))] = draw(VALUES)
    return json.dumps(values, allow_nan=False)


def _checkpoint(path: Path, architecture: str) -> Path:
    save_file({"ema.weight": torch.zeros(2)}, str(path), metadata={"format": FORMAT, "version": "1", "architecture": architecture})
    return path


def _buildable(config: ModelConfig) -> None:
    with torch.device("meta"):
        count = sum(p.numel() for p in Generator(config).parameters()) + sum(p.numel() for p in MultiScaleDiscriminator(config).parameters())
    assert count <= MOST_PARAMETERS, f"{count / 1e9:.1f} billion weights accepted"


@FUZZ
@given(architecture=architectures())
@example(architecture=json.dumps({**PRESETS["tiny"].as_dict(), "base": 100000}))
@example(architecture=json.dumps({**PRESETS["tiny"].as_dict(), "spade_hidden": 2**40, "bottleneck_blocks": 10**6}))
@example(architecture=json.dumps({**PRESETS["tiny"].as_dict(), "warp_inputs": "yes"}))
@example(architecture=json.dumps({**PRESETS["tiny"].as_dict(), "resolution": 64.5}))
@example(architecture="[" * 100000)
def test_an_architecture_is_buildable_or_refused_before_anything_is_built(tmp_path_factory: pytest.TempPathFactory, architecture: str) -> None:
    path = _checkpoint(tmp_path_factory.mktemp("ckpt") / "net.safetensors", architecture)
    try:
        check_checkpoint(path)
    except FaceReenactError as error:
        message = str(error)
        assert "\n" not in message and str(path) in message
        with pytest.raises(FaceReenactError) as again:  # the loader refuses it the same way
            read_checkpoint(path)
        assert str(again.value) == message
        return
    metadata, _ = read_checkpoint(path)
    _buildable(ModelConfig(**json.loads(metadata["architecture"])))


@pytest.mark.parametrize(
    ("change", "key"),
    [({"base": 100000}, "model.base"), ({"attention_chunk": 10**9}, "model.attention_chunk"), ({"encoder_blocks": -1}, "model.encoder_blocks"),
     ({"resolution": 4096}, "model.resolution"), ({"corr_channels": True}, "model.corr_channels"), ({"typo": 1}, "model.typo")],
)  # fmt: skip
def test_the_command_line_names_the_impossible_key_before_loading_anything(tmp_path: Path, change: dict[str, Any], key: str) -> None:
    path = _checkpoint(tmp_path / "net.safetensors", json.dumps({**PRESETS["tiny"].as_dict(), **change}))
    for arguments in (["animate", "--model", path], ["export", path, "-o", tmp_path / "n.onnx"], ["release", path, "-o", tmp_path / "r.safetensors"]):
        line = error_line(run_cli(*arguments))
        assert key in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.safetensors"]


@FUZZ
@given(fraction=st.floats(0.0, 0.999))
@example(fraction=0.3)
def test_a_checkpoint_cut_short_is_one_line(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, fraction: float) -> None:
    folder = tmp_path_factory.mktemp("cut")
    cut = folder / "cut.safetensors"
    data = tiny_checkpoint.read_bytes()
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(FaceReenactError) as refused:
        check_checkpoint(cut)
    assert "\n" not in str(refused.value)
    line = error_line(run_cli("export", cut, "-o", folder / "n.onnx"))
    assert str(cut) in line


@FUZZ
@given(at=st.integers(0, 400), junk=st.binary(min_size=1, max_size=16))
def test_a_checkpoint_garbled_in_its_header_is_refused_or_still_whole(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, at: int, junk: bytes) -> None:
    garbled = tmp_path_factory.mktemp("garbled") / "g.safetensors"
    data = bytearray(tiny_checkpoint.read_bytes())
    data[at : at + len(junk)] = junk
    garbled.write_bytes(bytes(data))
    try:
        check_checkpoint(garbled)
        metadata, _ = read_checkpoint(garbled)
    except FaceReenactError as error:
        assert "\n" not in str(error)
        return
    _buildable(ModelConfig(**json.loads(metadata["architecture"])))
