"""LPIPS (Zhang et al. 2018, v0.1, AlexNet backbone) from weights the user supplies.

Neither ImageNet AlexNet weights nor LPIPS's calibrated linear layers can be downloaded here, and
torchvision has no CPU build here, so the network is defined in plain torch and both weight files
come from the user: torchvision's ``alexnet-owt-7be5be79.pth`` (keys ``features.N.*``) and the
LPIPS package's ``weights/v0.1/alex.pth`` (keys ``linN.model.1.weight``). Without them the
evaluation leaves LPIPS out and its report says so.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from facereenact.errors import InputError

#: AlexNet's convolutions (torchvision's ``features`` indices) and LPIPS's five taps after them.
_CONVOLUTIONS = {0: (3, 64, 11, 4, 2), 3: (64, 192, 5, 1, 2), 6: (192, 384, 3, 1, 1), 8: (384, 256, 3, 1, 1), 10: (256, 256, 3, 1, 1)}
_CHANNELS = (64, 192, 384, 256, 256)
#: LPIPS's input normalisation, for images in [-1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LearnedPerceptualDistance(nn.Module):
    """LPIPS distance per image pair (B,) for images (B, 3, H, W) in [0, 1]; lower is closer."""

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.ModuleDict({str(i): nn.Conv2d(c_in, c_out, k, stride=s, padding=p) for i, (c_in, c_out, k, s, p) in _CONVOLUTIONS.items()})
        self.linear = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, alexnet: Path, linear: Path) -> LearnedPerceptualDistance:
        """Load the backbone and the linear layers; a clear :class:`InputError` when either file
        is missing, unreadable or holds other tensors."""
        model = cls()
        backbone = _load(alexnet, "AlexNet weights")
        layers = _load(linear, "LPIPS linear weights")
        state = {}
        for index in _CONVOLUTIONS:
            for part in ("weight", "bias"):
                key = f"features.{index}.{part}"
                if key not in backbone:
                    raise InputError(f"{alexnet} is not torchvision's AlexNet weights (no {key})")
                state[f"features.{index}.{part}"] = backbone[key]
        for index in range(len(_CHANNELS)):
            keys = [k for k in layers if k.startswith(f"lin{index}.") and k.endswith("weight")]
            if len(keys) != 1:
                raise InputError(f"{linear} is not LPIPS's linear weights (no single lin{index}.*weight)")
            state[f"linear.{index}.weight"] = layers[keys[0]]
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as error:
            raise InputError(f"{alexnet} / {linear} do not fit LPIPS-AlexNet ({str(error).splitlines()[-1].strip()})") from None
        return model

    def _taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = ((images * 2 - 1) - self.shift) / self.scale
        taps = []
        for index, conv in self.features.items():
            if index in ("3", "6"):
                x = nn.functional.max_pool2d(x, 3, 2)
            x = torch.relu(conv(x))
            taps.append(x)
        return taps

    @torch.inference_mode()
    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        distance = torch.zeros(len(output), device=output.device)
        for a, b, linear in zip(self._taps(output), self._taps(target), self.linear):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            distance = distance + linear((a - b) ** 2).mean((1, 2, 3))
        return distance


def _load(path: Path, what: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError(f"{what}: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (torch raises many kinds for a file that is not a checkpoint)
        raise InputError(f"{what}: {path} is not a PyTorch weights file ({str(error).splitlines()[0]})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise InputError(f"{what}: {path} does not hold a state dict")
    return state
