"""Shared fixtures: the example data and model assets, skipped with a reason where absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEREENACT_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
ASSETS = SHARED / "assets"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow acceptance runs go over all of the data and take as long as they take: no time limit."""
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.timeout(0))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "clips").is_dir():
        pytest.skip(f"example data not found at {DATA} (set FACEREENACT_SHARED to the folder holding data/)")
    return DATA


@pytest.fixture(scope="session")
def assets():  # type: ignore[no-untyped-def]
    from facereenact.io.assets import Assets

    if not (ASSETS / "3ddfa").is_dir():
        pytest.skip(f"model assets not found at {ASSETS} (set FACEREENACT_SHARED to the folder holding assets/)")
    return Assets.resolve(ASSETS)


@pytest.fixture(scope="session")
def fitter(assets):  # type: ignore[no-untyped-def]
    from facereenact.face3d.fitter import FaceFitter

    return FaceFitter(assets)


@pytest.fixture(scope="session")
def model(fitter):  # type: ignore[no-untyped-def]
    return fitter.model


@pytest.fixture(scope="session")
def portraits(data_dir: Path) -> dict[str, np.ndarray]:
    from facereenact.io.image import read_image

    return {p.stem: read_image(p) for p in sorted((data_dir / "portraits").glob("*.jpg"))}


def clip_paths(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "clips").iterdir() if p.suffix in {".mp4", ".mov"})


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained ``tiny`` network saved the way training saves it: what ``--model`` takes."""
    import copy

    import torch

    from facereenact.model.checkpoint import save_checkpoint
    from facereenact.model.config import PRESETS
    from facereenact.model.discriminator import MultiScaleDiscriminator
    from facereenact.model.generator import Generator

    torch.manual_seed(0)
    config = PRESETS["tiny"]
    generator, discriminator = Generator(config), MultiScaleDiscriminator(config)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(path, 0, config, "{}", generator, discriminator, copy.deepcopy(generator),
                    torch.optim.Adam(generator.parameters()), torch.optim.Adam(discriminator.parameters()), None)  # fmt: skip
    return path


@pytest.fixture
def two_threads():  # type: ignore[no-untyped-def]
    """PyTorch on two threads for the test, its count from before given back after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
