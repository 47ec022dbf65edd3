"""Training configurations of every shape: each either sets up a run (the networks it describes
can be built and judge an image, its optimizers, seeds and device are accepted) or is one
ConfigError naming the key at fault, never a traceback from deeper down."""

from __future__ import annotations

import math
import random
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from facereenact.errors import ConfigError
from facereenact.model.config import ModelConfig
from facereenact.model.discriminator import MultiScaleDiscriminator
from facereenact.model.generator import Generator
from facereenact.train.config import BOUNDS, TrainConfig, build_config, load_config

#: More weights than this (generator and discriminator) is no run on any machine.
MOST_PARAMETERS = 4_000_000_000

SECTIONS = {name: [f.name for f in fields(getattr(TrainConfig(), name))] for name in ("model", "data", "optim", "losses", "run")}

ANY_VALUE = st.one_of(
    st.integers(-3, 3),
    st.integers(-(2**40), 2**40),
    st.sampled_from([0, 1, 2, 4, 16, 64, 128, 256, 1024, 2**31, 2**32, 10**6]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 1.0, 1.5, -0.0, float("nan"), float("inf")]),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.sampled_from(["auto", "cpu", "cuda:99", "gpu", "1e-4", "nan", "holes", "everywhere", "d", "\x00", ""]),
    st.lists(st.text(max_size=4), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def configs(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A configuration with a few keys set to anything, and the dotted names of those keys."""
    values: dict[str, Any] = {"preset": draw(st.sampled_from(["tiny", "tiny", "cpu-small", "paper-256"])), "data": {"root": "prepared"}}
    changed = []
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(sorted(SECTIONS)))
        key = draw(st.sampled_from(SECTIONS[section]))
        values.setdefault(section, {})[key] = draw(ANY_VALUE)
        changed.append(f"{section}.{key}")
    return values, changed


def run_setup(config: TrainConfig) -> None:
    """What a run builds before its first step, without data or memory: the networks on the
    meta device (and one discriminator pass over an image of the resolution), both optimizers,
    the seeds, the device."""
    with torch.device("meta"):
        generator, discriminator = Generator(config.model), MultiScaleDiscriminator(config.model).train()
        discriminator(torch.zeros(1, 3, config.model.resolution, config.model.resolution), torch.zeros(1, 3, config.model.resolution, config.model.resolution))
    count = sum(p.numel() for p in generator.parameters()) + sum(p.numel() for p in discriminator.parameters())
    assert count <= MOST_PARAMETERS, f"{count / 1e9:.1f} billion weights"
    weight = torch.nn.Parameter(torch.zeros(2))
    betas = (config.optim.beta1, config.optim.beta2)
    torch.optim.Adam([weight], lr=config.optim.lr_generator, betas=betas)
    torch.optim.Adam([weight], lr=config.optim.lr_discriminator, betas=betas)
    random.seed(config.run.seed)
    np.random.seed(config.run.seed)
    torch.manual_seed(config.run.seed)
    if config.run.device != "auto":
        torch.device(config.run.device)
    for key in BOUNDS:
        section, name = key.split(".")
        assert math.isfinite(getattr(getattr(config, section), name)), key


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=configs())
@example(drawn=({"preset": "tiny", "data": {"root": "d"}, "optim": {"batch_size": 0}}, ["optim.batch_size"]))
@example(drawn=({"preset": "tiny", "data": {"root": "d"}, "optim": {"lr_generator": "nan"}}, ["optim.lr_generator"]))
@example(drawn=({"preset": "tiny", "data": {"root": "d"}, "optim": {"beta1": 1}}, ["optim.beta1"]))
@example(drawn=({"preset": "tiny", "data": {"root": "d"}, "run": {"seed": -1}}, ["run.seed"]))
@example(drawn=({"preset": "tiny", "data": {"root": "d"}, "model": {"base": 100000}}, ["model.base"]))
@example(drawn=({"preset": "tiny", "data": {"root": "d"}, "model": {"disc_layers": 6}}, ["model.disc_layers"]))
@example(drawn=({"preset": "tiny", "data": {"root": "d"}, "run": {"device": "gpu"}}, ["run.device"]))
@example(drawn=({"preset": "tiny", "data": {"root": "d\x00"}}, ["data.root"]))
@example(drawn=({"preset": "tiny", "data": {"root": "d", 1: 2, None: 3}}, ["data.1"]))
def test_a_configuration_sets_up_a_run_or_names_its_fault(drawn: tuple[dict[str, Any], list[str]]) -> None:
    values, changed = drawn
    try:
        config = build_config(values, Path("/nonexistent/configs"))
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message
        named = [key for key in changed if key in message] + [w for w in ("preset", "data.root", "data.val_count") if w in message]
        if re.search(r"model\.\w+", message):  # a model key, or two that do not fit together
            named.append("model")
        assert named, f"{message!r} names none of {changed}"
        return
    run_setup(config)


@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ("preset: tiny\ndata: {root: d}\noptim: {batch_size: 0}\n", ".yaml", "optim.batch_size is 0"),
        ("preset = 'tiny'\n[data]\nroot = 'd'\n[optim]\nlr_generator = nan\n", ".toml", "optim.lr_generator is nan"),
        ("preset: tiny\ndata: {root: d}\noptim: {beta2: 1.0}\n", ".yaml", "optim.beta2 is 1.0"),
        ("preset: tiny\ndata: {root: d}\nmodel: {attention_chunk: 99999999}\n", ".yaml", "model.attention_chunk is 99999999"),
        ("preset: tiny\ndata: {root: d}\ndata: {root: d, workers: 100000}\n", ".yaml", "data.workers is 100000"),
        ("[" * 5000, ".yaml", "nested too deeply|not valid YAML"),
    ],
)
def test_files_with_impossible_values_name_the_key(tmp_path: Path, text: str, suffix: str, message: str) -> None:
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_configuration_that_is_not_text_or_not_a_file_is_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "c.yaml"
    binary.write_bytes(b"\xff\xfe\x00preset")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)
    folder = tmp_path / "d.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is not a file"):
        load_config(folder)


def test_the_presets_and_the_shipped_configs_set_up_runs() -> None:
    repo = Path(__file__).resolve().parents[2]
    for path in sorted((repo / "configs").glob("*.yaml")):
        run_setup(load_config(path))


@pytest.mark.parametrize("name", ["tiny", "cpu-small", "paper-256"])
def test_each_preset_is_within_the_bounds(name: str) -> None:
    config = build_config(yaml.safe_load(f"preset: {name}\ndata: {{root: d}}\n"), Path("/x"))
    assert isinstance(config.model, ModelConfig)
    run_setup(config)
