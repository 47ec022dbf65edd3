"""Training: resume reproduces the uninterrupted run; two DDP processes stay identical;
configurations and datasets that cannot work fail with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from facereenact.train.config import load_config
from facereenact.train.loop import train
from tests.cli_inputs import run_cli

REPO = Path(__file__).resolve().parents[2]


def _config(folder: Path, dataset: Path, assets_root: Path, name: str, **sections: dict) -> Path:  # type: ignore[type-arg]
    values = {
        "preset": "tiny",
        "data": {"root": str(dataset)},
        "run": {"out": str(folder / name), "threads": 1, "assets": str(assets_root), "image_every": 2, "val_every": 2, "checkpoint_every": 2},
    }
    for section, changes in sections.items():
        values.setdefault(section, {}).update(changes)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _train_losses(run: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [entry["step"] for entry in lines if entry["kind"] == "train"]
    assert len(steps) == len(set(steps)), f"steps logged twice: {steps}"
    return {entry["step"]: entry["total_g"] for entry in lines if entry["kind"] == "train"}


def _error_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_resumed_run_gives_the_same_losses_as_an_uninterrupted_one(prepared_dataset, assets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    whole = load_config(_config(tmp_path, prepared_dataset, assets.root, "whole", optim={"steps": 4}))
    summary = train(whole, log=lambda _: None)
    assert [v["step"] for v in summary.validation] == [0, 2, 4]
    uninterrupted = _train_losses(whole.run.out)

    first = load_config(_config(tmp_path, prepared_dataset, assets.root, "parts", optim={"steps": 2}))
    train(first, log=lambda _: None)
    with open(first.run.out / "metrics.jsonl", "a") as handle:  # logged after the checkpoint, then killed
        handle.write(json.dumps({"kind": "train", "step": 3, "total_g": 123.0}) + "\n")
    second = load_config(_config(tmp_path, prepared_dataset, assets.root, "parts", optim={"steps": 4}))
    resumed = train(second, resume=True, log=lambda _: None)
    assert resumed.start_step == 2
    parts = _train_losses(second.run.out)
    assert sorted(parts) == [1, 2, 3, 4]
    for step in (1, 2, 3, 4):
        assert parts[step] == pytest.approx(uninterrupted[step], rel=1e-5, abs=1e-6), f"step {step}"
    assert len({round(v, 6) for v in uninterrupted.values()}) > 1, "the loss must change between steps"
    assert (whole.run.out / "tensorboard").is_dir()
    assert sorted(p.name for p in (whole.run.out / "checkpoints").iterdir()) == ["step_0000002.safetensors", "step_0000004.safetensors"]


def test_a_time_limit_stops_the_run_validated_and_saved(prepared_dataset, assets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A run on a machine lent for a fixed time ends at its limit with a checkpoint of the last
    step, its validation, and a note saying why it stopped."""
    config = load_config(_config(tmp_path, prepared_dataset, assets.root, "timed", optim={"steps": 1000},
                                 run={"time_limit_minutes": 1e-6, "log_every": 2, "val_every": 100, "checkpoint_every": 100}))  # fmt: skip
    summary = train(config, log=lambda _: None)
    assert [v["step"] for v in summary.validation] == [0, 2]
    assert any("stopped at step 2" in note and "time limit" in note for note in summary.notes), summary.notes
    assert [p.name for p in (config.run.out / "checkpoints").iterdir()] == ["step_0000002.safetensors"]


def test_a_warm_start_says_what_it_could_not_use(prepared_dataset, assets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """From a training checkpoint both networks start from its weights; from a release (the
    generator alone) the note says the discriminator starts fresh."""
    from facereenact.model.release import write_release

    first = load_config(_config(tmp_path, prepared_dataset, assets.root, "first", optim={"steps": 1}))
    train(first, log=lambda _: None)
    checkpoint = first.run.out / "checkpoints" / "step_0000001.safetensors"
    write_release(checkpoint, tmp_path / "release.safetensors")
    notes = {}
    for name, source in (("from_checkpoint", checkpoint), ("from_release", tmp_path / "release.safetensors")):
        config = load_config(_config(tmp_path, prepared_dataset, assets.root, name, optim={"steps": 1}, run={"init_from": str(source)}))
        notes[name] = [note for note in train(config, log=lambda _: None).notes if note.startswith("warm start")]
    assert notes["from_checkpoint"] == [f"warm start from {checkpoint}"]
    assert notes["from_release"] == [f"warm start from {tmp_path / 'release.safetensors'}; the discriminator starts fresh (the file has none, as a release)"]


def test_two_processes_under_torchrun_end_with_identical_weights(prepared_dataset, assets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, prepared_dataset, assets.root, "ddp", optim={"steps": 3})
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "facereenact", "train", "--config", str(config)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    replicas = json.loads((tmp_path / "ddp" / "replicas.json").read_text())
    assert replicas["step"] == 3 and len(replicas["generator_sha256"]) == 2
    assert replicas["generator_sha256"][0] == replicas["generator_sha256"][1]
    losses = _train_losses(tmp_path / "ddp")
    assert sorted(losses) == [1, 2, 3]


def test_unknown_config_key_is_one_clear_line(prepared_dataset, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.toml"
    path.write_text(f'preset = "tiny"\n[data]\nroot = "{prepared_dataset}"\n[optim]\nbatchsize = 4\n')
    line = _error_line(run_cli(*["train", "--config", str(path)]))
    assert "optim.batchsize" in line


def test_dataset_without_usable_clips_is_one_clear_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text(json.dumps({"clips": [], "failed": []}))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"preset": "tiny", "data": {"root": "data"}}))
    line = _error_line(run_cli(*["train", "--config", str(path)]))
    assert "no usable clips" in line


def test_resuming_with_another_architecture_is_one_clear_line(prepared_dataset, assets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train(load_config(_config(tmp_path, prepared_dataset, assets.root, "arch", optim={"steps": 1})), log=lambda _: None)
    other = _config(tmp_path, prepared_dataset, assets.root, "arch", optim={"steps": 2}, model={"base": 4})
    line = _error_line(run_cli(*["train", "--config", str(other), "--resume"]))
    assert "another architecture" in line


def test_warp_inputs_and_identity_loss_train_and_animate(prepared_dataset, assets, fitter, portraits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from facereenact.model.inference import load_stage
    from facereenact.pipeline.reenactor import Reenactor

    class Embed(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    torch.jit.script(Embed()).save(str(tmp_path / "embed.pt"))
    config = load_config(_config(tmp_path, prepared_dataset, assets.root, "extras", optim={"steps": 1},
                                 model={"warp_inputs": True, "refine_region": "holes"}, losses={"identity_model": "embed.pt"}, data={"workers": 1}))  # fmt: skip
    summary = train(config, log=lambda _: None)
    assert len(summary.notes) == 1 and "VGG-19" in summary.notes[0], summary.notes
    logged = [json.loads(line) for line in (config.run.out / "metrics.jsonl").read_text().splitlines()]
    assert "identity" in [entry for entry in logged if entry["kind"] == "train"][-1]
    stage = load_stage(config.run.out / "checkpoints" / "step_0000001.safetensors")
    reenactor = Reenactor(portraits["lp_s12"], fitter, method=stage)
    batch = reenactor.reenact(reenactor.source.params, reenactor.source.params, paste=False)
    assert batch.crops.shape == (1, 256, 256, 3)
