"""FaceBoxes face detector: image → face boxes with scores.

A small CNN with three detection heads (strides 32, 64, 128); the densified anchors on the
finest head let it find faces from ~20 px up. Weights: ``3ddfa/FaceBoxesProd.pth``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facereenact.errors import AssetError
from facereenact.face3d.fusion import fuse_batch_norms
from facereenact.io.assets import Assets

_STEPS = (32, 64, 128)
_MIN_SIZES = ((32, 64, 128), (256,), (512,))
_VARIANCES = (0.1, 0.2)
_BGR_MEAN = (104.0, 117.0, 123.0)


class _ConvBN(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, crelu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5)
        self.crelu = crelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        if self.crelu:
            x = torch.cat([x, -x], dim=1)
        return F.relu(x)


class _Inception(nn.Module):
    """Four 32-channel branches over 128 channels: 1×1, pool+1×1, 1×1+3×3, 1×1+3×3+3×3."""

    def __init__(self) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(128, 32, 1)
        self.branch1x1_2 = _ConvBN(128, 32, 1)
        self.branch3x3_reduce = _ConvBN(128, 24, 1)
        self.branch3x3 = _ConvBN(24, 32, 3, padding=1)
        self.branch3x3_reduce_2 = _ConvBN(128, 24, 1)
        self.branch3x3_2 = _ConvBN(24, 32, 3, padding=1)
        self.branch3x3_3 = _ConvBN(32, 32, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(x, 3, stride=1, padding=1)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch1x1_2(pooled),
                self.branch3x3(self.branch3x3_reduce(x)),
                self.branch3x3_3(self.branch3x3_2(self.branch3x3_reduce_2(x))),
            ],
            dim=1,
        )


class FaceBoxesNet(nn.Module):
    """The network; returns per-anchor box offsets (B, A, 4) and face probabilities (B, A)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = _ConvBN(3, 24, 7, stride=4, padding=3, crelu=True)
        self.conv2 = _ConvBN(48, 64, 5, stride=2, padding=2, crelu=True)
        self.inception1 = _Inception()
        self.inception2 = _Inception()
        self.inception3 = _Inception()
        self.conv3_1 = _ConvBN(128, 128, 1)
        self.conv3_2 = _ConvBN(128, 256, 3, stride=2, padding=1)
        self.conv4_1 = _ConvBN(256, 128, 1)
        self.conv4_2 = _ConvBN(128, 256, 3, stride=2, padding=1)
        anchors = [21, 1, 1]
        channels = [128, 256, 256]
        self.loc = nn.ModuleList(nn.Conv2d(c, a * 4, 3, padding=1) for c, a in zip(channels, anchors))
        self.conf = nn.ModuleList(nn.Conv2d(c, a * 2, 3, padding=1) for c, a in zip(channels, anchors))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.conv1(x), 3, stride=2, padding=1)
        x = F.max_pool2d(self.conv2(x), 3, stride=2, padding=1)
        s1 = self.inception3(self.inception2(self.inception1(x)))
        s2 = self.conv3_2(self.conv3_1(s1))
        s3 = self.conv4_2(self.conv4_1(s2))
        batch = x.shape[0]
        locs, confs = [], []
        for source, loc, conf in zip((s1, s2, s3), self.loc, self.conf):
            locs.append(loc(source).permute(0, 2, 3, 1).reshape(batch, -1, 4))
            confs.append(conf(source).permute(0, 2, 3, 1).reshape(batch, -1, 2))
        return torch.cat(locs, 1), torch.cat(confs, 1).softmax(-1)[..., 1]


def make_anchors(height: int, width: int) -> torch.Tensor:
    """Anchors (A, 4) as normalised (cx, cy, w, h), in the order the heads emit them."""
    per_source = []
    for step, min_sizes in zip(_STEPS, _MIN_SIZES):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        ii, jj = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
        cell = torch.stack([jj.reshape(-1), ii.reshape(-1)], -1).float()  # (cells, 2) as (j, i)
        per_cell = []
        for size in min_sizes:
            density = {32: 4, 64: 2}.get(size, 1)
            offsets = torch.arange(density, dtype=torch.float32) / density
            if density == 1:
                offsets = offsets + 0.5
            oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
            centres = cell[:, None, :] + torch.stack([ox.reshape(-1), oy.reshape(-1)], -1)[None]
            centres = centres * step / torch.tensor([width, height], dtype=torch.float32)
            wh = torch.tensor([size / width, size / height]).expand_as(centres)
            per_cell.append(torch.cat([centres, wh], -1))  # (cells, density², 4)
        per_source.append(torch.cat(per_cell, 1).reshape(-1, 4))
    return torch.cat(per_source, 0)


def decode_boxes(loc: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Offsets (..., A, 4) → normalised corner boxes (..., A, 4)."""
    centre = anchors[:, :2] + loc[..., :2] * _VARIANCES[0] * anchors[:, 2:]
    size = anchors[:, 2:] * torch.exp(loc[..., 2:] * _VARIANCES[1])
    return torch.cat([centre - size / 2, centre + size / 2], -1)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; returns kept indices by decreasing score.

    Computes the full IoU matrix once (candidates are capped upstream), then walks it greedily.
    """
    order = scores.argsort(descending=True)
    boxes = boxes[order]
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp(min=1e-9)
    suppressed = (iou > iou_threshold).triu(diagonal=1).numpy()
    keep = np.ones(len(order), dtype=bool)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1 :] &= ~suppressed[i, i + 1 :]
    return order[torch.from_numpy(keep)]


@dataclass(frozen=True)
class Detection:
    """A face box in image pixels (left, top, right, bottom) and its confidence in [0, 1]."""

    box: tuple[float, float, float, float]
    score: float

    @property
    def area(self) -> float:
        left, top, right, bottom = self.box
        return max(right - left, 0.0) * max(bottom - top, 0.0)


class FaceDetector:
    """Finds faces in an RGB uint8 image; large images are downscaled first (≤720×1080)."""

    def __init__(
        self,
        assets: Assets,
        score_threshold: float = 0.5,
        max_height: int = 720,
        max_width: int = 1080,
        device: str | torch.device = "cpu",
    ) -> None:
        self.net = FaceBoxesNet()
        state = assets.load_torch("3ddfa/FaceBoxesProd.pth")
        state = {key.removeprefix("module."): value for key, value in state.items()}
        try:
            self.net.load_state_dict(state)
        except RuntimeError as error:
            raise AssetError(f"3ddfa/FaceBoxesProd.pth does not fit the FaceBoxes network: {str(error).splitlines()[0]}") from None
        self.device = torch.device(device)
        self.net = fuse_batch_norms(self.net.eval()).to(self.device)
        self.score_threshold = score_threshold
        self.max_height, self.max_width = max_height, max_width
        self._anchor_cache: dict[tuple[int, int], torch.Tensor] = {}

    def _anchors(self, height: int, width: int) -> torch.Tensor:
        key = (height, width)
        if key not in self._anchor_cache:
            self._anchor_cache[key] = make_anchors(height, width).to(self.device)
        return self._anchor_cache[key]

    @torch.inference_mode()
    def detect(self, image_rgb: np.ndarray, score_threshold: float | None = None) -> list[Detection]:
        """All faces above the score threshold (the detector's own unless given), best first."""
        threshold = self.score_threshold if score_threshold is None else score_threshold
        height, width = image_rgb.shape[:2]
        scale = min(1.0, self.max_height / height, self.max_width / width)
        if scale < 1.0:
            small = cv2.resize(image_rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        else:
            small = image_rgb
        h, w = small.shape[:2]
        bgr = torch.from_numpy(np.ascontiguousarray(small[..., ::-1])).to(self.device).float()
        x = (bgr - torch.tensor(_BGR_MEAN, device=self.device)).permute(2, 0, 1)[None]
        loc, score = self.net(x)
        boxes = decode_boxes(loc[0], self._anchors(h, w)) * torch.tensor([w, h, w, h], device=self.device)
        score = score[0]
        candidates = score > 0.05
        boxes, score = boxes[candidates].cpu(), score[candidates].cpu()
        top = score.argsort(descending=True)[:5000]
        boxes, score = boxes[top], score[top]
        keep = nms(boxes, score, 0.3)[:750]
        boxes, score = boxes[keep] / scale, score[keep]
        return [
            Detection(tuple(float(v) for v in box), float(s))  # type: ignore[arg-type]
            for box, s in zip(boxes.tolist(), score.tolist())
            if s > threshold
        ]
