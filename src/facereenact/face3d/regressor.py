"""The 3DDFA_V2 MobileNet regressor: face crops → 3DMM parameters, and the crop boxes it needs.

Weights: ``3ddfa/mb05_120x120.pth`` (MobileNet-V1 at width 0.5, 120×120 BGR input) and the
de-normalisation ``3ddfa/param_mean_std_62d_120x120.pkl``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facereenact.errors import AssetError
from facereenact.face3d.fusion import fuse_batch_norms
from facereenact.face3d.params import N_EXPRESSION, N_SHAPE, FaceParams, orthonormalize_rows
from facereenact.io.assets import Assets

INPUT_SIZE = 120
_BLOCKS = (  # (name, out channels at width 1.0, stride)
    ("dw2_1", 64, 1), ("dw2_2", 128, 2), ("dw3_1", 128, 1), ("dw3_2", 256, 2),
    ("dw4_1", 256, 1), ("dw4_2", 512, 2), ("dw5_1", 512, 1), ("dw5_2", 512, 1),
    ("dw5_3", 512, 1), ("dw5_4", 512, 1), ("dw5_5", 512, 1), ("dw5_6", 1024, 2), ("dw6", 1024, 1),
)  # fmt: skip


class _DepthwiseSeparable(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn_dw = nn.BatchNorm2d(cin)
        self.conv_sep = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn_sep = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn_sep(self.conv_sep(F.relu(self.bn_dw(self.conv_dw(x))))))


class MobileNetRegressor(nn.Module):
    """(B, 3, 120, 120) normalised BGR → (B, 62) normalised parameters."""

    def __init__(self, width: float = 0.5) -> None:
        super().__init__()
        first = int(32 * width)
        self.conv1 = nn.Conv2d(3, first, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(first)
        channels = first
        for name, out, stride in _BLOCKS:
            setattr(self, name, _DepthwiseSeparable(channels, int(out * width), stride))
            channels = int(out * width)
        self.fc_param = nn.Linear(channels, 62)
        self.fc_lm = nn.Linear(channels, 136)  # present in the checkpoint; unused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        for name, _, _ in _BLOCKS:
            x = getattr(self, name)(x)
        return self.fc_param(x.mean(dim=(2, 3)))


# ---- crop boxes (image pixels, (left, top, right, bottom), square) ---------------------------
def box_from_detection(box: np.ndarray) -> np.ndarray:
    """The regressor's crop (…, 4) around detector boxes (…, 4): enlarged 1.58×, shifted down."""
    box = np.asarray(box, np.float64)
    left, top, right, bottom = np.moveaxis(box, -1, 0)
    old = (right - left + bottom - top) / 2
    cx, cy = (left + right) / 2, (top + bottom) / 2 + 0.14 * old
    half = np.floor(old * 1.58) / 2
    return np.stack([cx - half, cy - half, cx + half, cy + half], -1)


def box_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """The crop (…, 4) for landmarks (…, K, 2+): the square of side √2·max(w, h) on their centre.

    This is how video is tracked: the previous frame's landmarks place the next frame's crop.
    """
    pts = np.asarray(landmarks, np.float64)[..., :2]
    low, high = pts.min(-2), pts.max(-2)
    centre = (low + high) / 2
    half = np.sqrt(2) * (high - low).max(-1) / 2
    return np.concatenate([centre - half[..., None], centre + half[..., None]], -1)


def crop_faces(image_rgb: np.ndarray, boxes: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Crops (B, size, size, 3) RGB uint8 of ``boxes`` (B, 4), zero outside the image.

    One bilinear warp per box, with the pixel-centre convention of a crop followed by
    ``cv2.resize`` (what the regressor saw in training).
    """
    crops = np.empty((len(boxes), size, size, 3), np.uint8)
    for i, (left, top, right, bottom) in enumerate(np.asarray(boxes, np.float64)):
        sx, sy = (right - left) / size, (bottom - top) / size
        matrix = np.array([[sx, 0, left + 0.5 * sx - 0.5], [0, sy, top + 0.5 * sy - 0.5]])
        crops[i] = cv2.warpAffine(
            image_rgb, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
        )  # fmt: skip
    return crops


class FaceRegressor:
    """Crops + boxes → :class:`FaceParams` in image pixels, batched over faces and frames."""

    def __init__(self, assets: Assets, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.net = MobileNetRegressor()
        checkpoint = assets.load_torch("3ddfa/mb05_120x120.pth")
        state = checkpoint.get("state_dict", checkpoint)
        state = {key.removeprefix("module."): value for key, value in state.items()}
        try:
            self.net.load_state_dict(state)
        except RuntimeError as error:
            raise AssetError(f"3ddfa/mb05_120x120.pth does not fit the MobileNet regressor: {str(error).splitlines()[0]}") from None
        self.net = fuse_batch_norms(self.net.eval()).to(self.device)
        stats = assets.load_pickle("3ddfa/param_mean_std_62d_120x120.pkl")
        try:
            self.param_mean = torch.as_tensor(np.asarray(stats["mean"], np.float32), device=self.device)
            self.param_std = torch.as_tensor(np.asarray(stats["std"], np.float32), device=self.device)
        except (KeyError, TypeError) as error:
            raise AssetError(f"3ddfa/param_mean_std_62d_120x120.pkl lacks mean/std ({error})") from None

    @torch.inference_mode()
    def raw_parameters(self, crops_rgb: np.ndarray) -> torch.Tensor:
        """(B, 120, 120, 3) RGB uint8 → (B, 62) de-normalised 3DDFA parameters (crop space)."""
        x = torch.from_numpy(np.ascontiguousarray(crops_rgb[..., ::-1])).to(self.device)
        x = (x.permute(0, 3, 1, 2).float() - 127.5) / 128.0
        return self.net(x) * self.param_std + self.param_mean

    def regress(self, image_rgb: np.ndarray, boxes: np.ndarray) -> FaceParams:
        """Fit one face per crop box (B, 4) of one image."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        raw = self.raw_parameters(crop_faces(image_rgb, boxes))
        return params_from_raw(raw, torch.as_tensor(boxes, dtype=torch.float32, device=raw.device))


def params_from_raw(raw: torch.Tensor, boxes: torch.Tensor) -> FaceParams:
    """3DDFA's crop-space (B, 62) parameters + crop boxes (B, 4) → image-space :class:`FaceParams`.

    Crop x maps to ``(x - 1)·w/120 + left`` and crop y to ``(120 - y)·h/120 + top`` (y flips).
    """
    camera = raw[:, :12].reshape(-1, 3, 4)
    scale_x = (boxes[:, 2] - boxes[:, 0]) / INPUT_SIZE
    scale_y = (boxes[:, 3] - boxes[:, 1]) / INPUT_SIZE
    row_x = camera[:, 0, :3] * scale_x[:, None]
    row_y = camera[:, 1, :3] * scale_y[:, None]
    scale = (row_x.norm(dim=-1) + row_y.norm(dim=-1)) / 2
    rotation = orthonormalize_rows(row_x, row_y)
    tx = (camera[:, 0, 3] - 1) * scale_x + boxes[:, 0]
    ty = (INPUT_SIZE - camera[:, 1, 3]) * scale_y + boxes[:, 1]
    return FaceParams(
        rotation=rotation,
        scale=scale,
        translation=torch.stack([tx, ty], -1),
        shape=raw[:, 12 : 12 + N_SHAPE].clone(),
        expression=raw[:, 12 + N_SHAPE : 12 + N_SHAPE + N_EXPRESSION].clone(),
    )
