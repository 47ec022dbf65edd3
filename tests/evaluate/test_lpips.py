"""LPIPS from user-supplied weights: the network loads files with the published key names and
behaves as a distance; wrong files are refused with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facereenact.errors import InputError
from facereenact.evaluate.lpips import LearnedPerceptualDistance

ALEXNET_SHAPES = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
LINEAR_CHANNELS = (64, 192, 384, 256, 256)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Random weights saved under torchvision's and the LPIPS package's key names."""
    generator = torch.Generator().manual_seed(0)
    folder = tmp_path_factory.mktemp("lpips")
    backbone = {}
    for index, shape in ALEXNET_SHAPES.items():
        fan_in = shape[1] * shape[2] * shape[3]
        backbone[f"features.{index}.weight"] = torch.randn(shape, generator=generator) * (2 / fan_in) ** 0.5
        backbone[f"features.{index}.bias"] = torch.zeros(shape[0])
    backbone["classifier.1.weight"] = torch.zeros(4, 4)  # the classifier is ignored
    linear = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=generator) for i, c in enumerate(LINEAR_CHANNELS)}
    torch.save(backbone, folder / "alexnet.pth")
    torch.save(linear, folder / "alex.pth")
    return folder / "alexnet.pth", folder / "alex.pth"


def test_lpips_is_a_distance(weight_files: tuple[Path, Path]) -> None:
    lpips = LearnedPerceptualDistance.from_files(*weight_files)
    generator = torch.Generator().manual_seed(1)
    image = torch.nn.functional.interpolate(torch.rand(2, 3, 32, 32, generator=generator), size=128, mode="bilinear")
    noisy = (image + 0.05 * torch.randn(image.shape, generator=generator)).clamp(0, 1)
    noisier = (image + 0.2 * torch.randn(image.shape, generator=generator)).clamp(0, 1)
    same = lpips(image, image)
    assert same.shape == (2,) and same.abs().max().item() < 1e-6
    assert (lpips(noisy, image) > 0).all()
    assert (lpips(noisier, image) > lpips(noisy, image)).all()
    assert torch.allclose(lpips(noisy, image), lpips(image, noisy))


def test_wrong_weight_files(weight_files: tuple[Path, Path], tmp_path: Path) -> None:
    alexnet, linear = weight_files
    with pytest.raises(InputError, match="not torchvision's AlexNet"):
        LearnedPerceptualDistance.from_files(linear, linear)
    with pytest.raises(InputError, match="not LPIPS's linear weights"):
        LearnedPerceptualDistance.from_files(alexnet, alexnet)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(InputError, match="is not a PyTorch weights file"):
        LearnedPerceptualDistance.from_files(text, linear)
    with pytest.raises(InputError, match="does not exist"):
        LearnedPerceptualDistance.from_files(tmp_path / "absent.pth", linear)
    wrong = {f"lin{i}.model.1.weight": torch.rand(1, c + 1, 1, 1) for i, c in enumerate(LINEAR_CHANNELS)}
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(InputError, match="do not fit LPIPS-AlexNet"):
        LearnedPerceptualDistance.from_files(alexnet, tmp_path / "wrong.pth")
