"""Losses, including the two that need user-supplied networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from facereenact.errors import ConfigError
from facereenact.train.losses import (
    IdentityLoss,
    VGGPerceptual,
    correspondence_loss,
    feature_matching,
    hinge_discriminator,
    hinge_generator,
    optional_networks,
    reconstruction_loss,
    ssim_window,
)


def _images(seed: int, size: int = 64) -> torch.Tensor:
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_reconstruction_and_correspondence_losses() -> None:
    a, b = _images(0), _images(1)
    l1, ms = reconstruction_loss(a, a, 1.0)
    assert float(l1) == 0 and abs(float(ms)) < 1e-5
    l1, ms = reconstruction_loss(a, b, 1.0)
    assert float(l1) > 0.2 and float(ms) > 0.5
    assert float(correspondence_loss(torch.nn.functional.avg_pool2d(a, 4), a)) < 1e-6
    assert [ssim_window(s) for s in (64, 128, 256)] == [3, 7, 11]


def test_hinge_and_feature_matching() -> None:
    confident = [[torch.zeros(1, 4, 2, 2), torch.full((1, 1, 2, 2), 2.0)]]
    fooled = [[torch.ones(1, 4, 2, 2), torch.full((1, 1, 2, 2), -2.0)]]
    assert float(hinge_discriminator(confident, fooled)) == 0.0
    assert float(hinge_discriminator(fooled, confident)) == pytest.approx(6.0)
    assert float(hinge_generator(confident)) == pytest.approx(-2.0)
    assert float(feature_matching(confident, fooled)) == pytest.approx(1.0)


def test_vgg_perceptual_loads_torchvision_layout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    reference = VGGPerceptual.__new__(VGGPerceptual)
    nn.Module.__init__(reference)
    layers, channels = [], 3
    for item in (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"):
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, 1, 1), nn.ReLU()]
            channels = int(item)
    state = {f"features.{k}": v for k, v in nn.Sequential(*layers).state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # other keys of a full VGG file are ignored
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    loss = VGGPerceptual(path)
    a, b = _images(0, 32), _images(1, 32)
    assert float(loss(a, a)) == 0.0 and float(loss(a, b)) > 0
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ConfigError):
        VGGPerceptual(tmp_path / "bad.pth")


def test_identity_loss_uses_a_torchscript_embedding(tmp_path) -> None:  # type: ignore[no-untyped-def]
    class Embed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    path = tmp_path / "embed.pt"
    torch.jit.script(Embed()).save(str(path))
    loss = IdentityLoss(path)
    a = _images(0)
    assert float(loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(a, 1 - a)) > 0.5


def test_missing_networks_disable_their_losses_with_a_note() -> None:
    vgg, identity, notes = optional_networks(None, None, 1.0, 0.1)
    assert vgg is None and identity is None and len(notes) == 2
    assert optional_networks(None, None, 0.0, 0.0)[2] == []
