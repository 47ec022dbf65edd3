"""Training configurations: presets, overrides, relative paths, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from facereenact.errors import ConfigError
from facereenact.train.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("preset", ["tiny", "cpu-small", "paper-256"])
def test_shipped_configs_load(preset: str) -> None:
    config = load_config(REPO / "configs" / f"{preset}.yaml")
    assert config.preset == preset
    assert config.data.root == (REPO / "prepared").resolve() and config.run.out == (REPO / "runs" / preset).resolve()


def test_yaml_and_toml_give_the_same_config(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("preset: tiny\ndata:\n  root: data\n  val_identities: [x, y, z]\noptim:\n  lr_generator: 1e-4\n")
    (tmp_path / "a.toml").write_text('preset = "tiny"\n[data]\nroot = "data"\nval_identities = ["x", "y", "z"]\n[optim]\nlr_generator = 1e-4\n')
    yaml_config, toml_config = load_config(tmp_path / "a.yaml"), load_config(tmp_path / "a.toml")
    assert yaml_config == toml_config
    assert yaml_config.data.root == tmp_path / "data" and yaml_config.optim.lr_generator == 1e-4
    assert yaml_config.model.resolution == 64 and yaml_config.optim.batch_size == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("preset: huge\ndata: {root: d}\n", "unknown preset 'huge'"),
        ("preset: tiny\n", "data.root is required"),
        ("preset: tiny\ndata: {root: d}\nmodle: {}\n", "unknown key modle"),
        ("preset: tiny\ndata: {root: d}\noptim: {amp: 1}\n", "optim.amp must be true or false"),
        ("preset: tiny\ndata: {root: d}\nmodel: {resolution: 30}\n", "multiple of 4"),
        ("preset: tiny\ndata: [1, 2]\n", "section data must be a mapping"),
        ("preset: [tiny\n", "not valid YAML"),
        ("preset: tiny\ndata: {root: d}\noptim: {steps: -5}\n", "optim.steps is -5: it must be at least 1"),
        ("preset: tiny\ndata: {root: d}\nrun: {checkpoint_every: 0}\n", "run.checkpoint_every is 0: it must be at least 1"),
        ("preset: tiny\ndata: {root: d, flip: 1.5}\n", "data.flip is 1.5: it must be between 0 and 1"),
        ("preset: tiny\ndata: {root: d}\nlosses: {l1: -1}\n", "losses.l1 is -1"),
    ],
)
def test_bad_configs_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(tmp_path / "c.yaml")


def test_every_bound_names_a_numeric_key() -> None:
    from dataclasses import fields

    from facereenact.train.config import BOUNDS, TrainConfig

    config = TrainConfig()
    for key in BOUNDS:
        section, name = key.split(".")
        assert name in {f.name for f in fields(getattr(config, section))}, key
        assert isinstance(getattr(getattr(config, section), name), int | float), key
