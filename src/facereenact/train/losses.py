"""Training losses: reconstruction (L1 + MS-SSIM), correspondence, hinge GAN with feature
matching, and the two that need pretrained networks the project cannot ship: a VGG-19
perceptual loss (ImageNet weights from the user) and an identity loss (a face-embedding network
from the user). Without those files the two are disabled with a warning, never faked.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim
from safetensors.torch import load_file
from torch import nn

from facereenact.errors import ConfigError


def ssim_window(size: int) -> int:
    """The largest odd Gaussian window (at most 11) that MS-SSIM's five scales allow at ``size``."""
    window = 11
    while window > 3 and (window - 1) * 16 >= size:
        window -= 2
    return window


def reconstruction_loss(output: torch.Tensor, target: torch.Tensor, ms_ssim_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1, 1 − MS-SSIM) of images in [0, 1]; MS-SSIM in float32 (it is unstable in half)."""
    l1 = (output - target).abs().mean()
    if ms_ssim_weight <= 0:
        return l1, torch.zeros_like(l1)
    similarity = ms_ssim(output.float(), target.float(), data_range=1.0, win_size=ssim_window(min(output.shape[-2:])))
    return l1, 1 - similarity


def correspondence_loss(warped_small: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the attention-warped small source and the target shrunk to its size: it trains
    the correspondence directly, before the decoder can hide its mistakes."""
    # cast: torch's stub wants a 2-tuple; a Size's slice is one at runtime but typed tuple[int, ...].
    size = cast(tuple[int, int], warped_small.shape[-2:])
    return (warped_small - F.adaptive_avg_pool2d(target, size)).abs().mean()


def hinge_discriminator(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean over scales of ``relu(1 − D(real)) + relu(1 + D(fake))``."""
    terms = [F.relu(1 - r[-1]).mean() + F.relu(1 + f[-1]).mean() for r, f in zip(real, fake)]
    return torch.stack(terms).mean()


def hinge_generator(fake: list[list[torch.Tensor]]) -> torch.Tensor:
    return torch.stack([-f[-1].mean() for f in fake]).mean()


def feature_matching(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """L1 between the discriminator's intermediate features of real and generated images."""
    terms = [(f - r.detach()).abs().mean() for rs, fs in zip(real, fake) for r, f in zip(rs[:-1], fs[:-1])]
    return torch.stack(terms).mean()


# ---- losses that need user-supplied networks ----------------------------------------------
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)
#: ReLU outputs compared (relu1_1 … relu5_1, as indices into ``features``) and their weights.
_VGG_TAPS = {1: 1 / 32, 6: 1 / 16, 11: 1 / 8, 20: 1 / 4, 29: 1.0}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _load_state(path: Path, what: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ConfigError(f"{what} weights {path} do not exist")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (torch and safetensors raise many unrelated types for a damaged file)
        raise ConfigError(f"{what} weights {path} are unreadable ({type(error).__name__})") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{what} weights {path} are not a state dictionary")
    return state.get("state_dict", state)


class VGGPerceptual(nn.Module):
    """Weighted L1 between VGG-19 activations, with weights in torchvision's layout
    (``features.N.weight``), from a ``.pth`` or ``.safetensors`` file."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, weights: Path):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG19:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, 1, 1), nn.ReLU()]
                channels = int(item)
        self.features = nn.Sequential(*layers[: max(_VGG_TAPS) + 1])
        state = {k: v for k, v in _load_state(weights, "VGG-19").items() if k.startswith("features.")}
        try:
            self.load_state_dict(state, strict=False)
        except RuntimeError as error:
            raise ConfigError(f"{weights} does not hold VGG-19 weights: {str(error).splitlines()[0]}") from None
        missing = [k for k in self.state_dict() if k not in state]
        if missing:
            raise ConfigError(f"{weights} does not hold VGG-19 weights (missing {missing[0]})")
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = (torch.cat([output, target]) - self.mean) / self.std
        total = x.new_zeros(())
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _VGG_TAPS:
                made, real = x.chunk(2)
                total = total + _VGG_TAPS[index] * (made - real.detach()).abs().mean()
        return total


class IdentityLoss(nn.Module):
    """``1 − cos`` between face embeddings of output and target. The embedding network is a
    TorchScript file taking (B, 3, 112, 112) RGB in [-1, 1] and returning (B, D) (ArcFace's
    convention); it is frozen."""

    def __init__(self, model: Path):
        super().__init__()
        if not model.is_file():
            raise ConfigError(f"identity embedding network {model} does not exist")
        try:
            self.net = torch.jit.load(str(model), map_location="cpu")
        except Exception as error:  # noqa: BLE001 (TorchScript raises many types for a bad file)
            raise ConfigError(f"identity embedding network {model} is not a TorchScript file ({type(error).__name__})") from None
        self.net.eval()
        for parameter in self.net.parameters():  # ScriptModules have no requires_grad_()
            parameter.requires_grad_(False)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(torch.cat([output, target]), size=(112, 112), mode="bilinear", align_corners=False) * 2 - 1
        made, real = self.net(x).float().chunk(2)
        return (1 - F.cosine_similarity(made, real.detach(), dim=-1)).mean()


def optional_networks(vgg_weights: Path | None, identity_model: Path | None, vgg_weight: float, identity_weight: float) -> tuple[VGGPerceptual | None, IdentityLoss | None, list[str]]:
    """The perceptual and identity networks that can be built, and a note for each that cannot."""
    notes = []
    vgg = identity = None
    if vgg_weight > 0:
        if vgg_weights is None:
            notes.append("the VGG-19 perceptual loss is disabled: set losses.vgg_weights to a file of ImageNet VGG-19 weights to enable it")
        else:
            vgg = VGGPerceptual(vgg_weights)
    if identity_weight > 0:
        if identity_model is None:
            notes.append("the identity loss is disabled: no face-embedding network (set losses.identity_model to a TorchScript file)")
        else:
            identity = IdentityLoss(identity_model)
    return vgg, identity, notes
