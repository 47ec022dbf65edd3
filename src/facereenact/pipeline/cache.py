"""What a worker process loads once and reuses for every task it runs: the face fitter and each
checkpoint's network (loading either costs seconds; a clip can take less)."""

from __future__ import annotations

from pathlib import Path

from facereenact.execute import worker_cache
from facereenact.face3d.fitter import FaceFitter
from facereenact.io.assets import Assets
from facereenact.model.checkpoint import check_checkpoint
from facereenact.model.inference import NeuralStage, load_stage


def worker_fitter(assets: str | Path, device: str = "cpu") -> FaceFitter:
    """The fitter of this worker process, built on its first task."""
    return worker_cache(("fitter", str(assets), device), lambda: FaceFitter(Assets.resolve(assets), device=device))


def worker_network(checkpoint: Path, device: str = "cpu") -> NeuralStage:
    """The network of ``checkpoint`` for this worker process, checked and loaded on first use."""

    def load() -> NeuralStage:
        check_checkpoint(checkpoint)
        return load_stage(checkpoint, device)

    return worker_cache(("network", str(checkpoint), device), load)
