"""Training data: (source, driving) frame pairs from prepared clips, split by identity.

A sample is two frames of one clip: the source (appearance) and the driving frame (the target
to reproduce). The network never sees the driving frame's own 3D face: the PNCCs are rendered
in the training step (batched, on the training device) from the source's fit and from the
driving pose and expression rebuilt with the SOURCE identity, exactly as at cross-identity
inference. A model that refines the training-free warp also gets that warp, made here in the
loader workers on CPU (where the compiled z-buffer is fastest), in parallel with the training
step instead of in front of it. Augmentation is applied to both frames alike: one colour jitter, and a horizontal
flip that mirrors the 3D fits too (:class:`facereenact.face3d.mirror.ParamMirror`).

Every random choice of a sample is drawn from a generator seeded by (seed, sample index), and
indices carry the epoch, so a run is reproducible and resumable whatever the worker count.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from facereenact.errors import DataError
from facereenact.face3d.mirror import ParamMirror
from facereenact.face3d.morphable import MorphableModel, identity_matched
from facereenact.face3d.params import FaceParams
from facereenact.face3d.pncc import render_pncc
from facereenact.stage import WarpTargets
from facereenact.train.clipstore import PreparedClip, load_clip
from facereenact.train.prepare import MANIFEST
from facereenact.warp.geometric import GeometricWarp
from facereenact.warp.head import HeadEllipsoid, head_field

_PARAM_FIELDS = ("rotation", "scale", "translation", "shape", "expression", "blendshapes")


def read_manifest(root: Path) -> list[dict[str, Any]]:
    """The usable clips of a prepared dataset (at least two frames with a face)."""
    path = root / MANIFEST
    if not path.is_file():
        raise DataError(f"{root} is not a prepared dataset (no {MANIFEST}; run 'facereenact prepare VIDEOS {root}')")
    try:
        clips = json.loads(path.read_text())["clips"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path} is unreadable ({type(error).__name__})") from None
    usable = [c for c in clips if c.get("frames", 0) - sum(b - a + 1 for a, b in c.get("lost_frames", [])) >= 2 and (root / c["file"]).is_file()]
    if not usable:
        raise DataError(f"{root} has no usable clips (none with at least two frames where a face was found)")
    return usable


def split_identities(clips: list[dict[str, Any]], validation: list[str], count: int) -> tuple[list[str], list[str]]:
    """(training, validation) identities. ``validation`` names them; otherwise ``count`` are
    picked deterministically (by a hash of the name, so adding clips of other people does not
    move anyone across the split)."""
    identities = sorted({c["identity"] for c in clips})
    if validation:
        unknown = sorted(set(validation) - set(identities))
        if unknown:
            raise DataError(f"validation identities not in the dataset: {', '.join(unknown)}")
        chosen = sorted(validation)
    else:
        chosen = sorted(sorted(identities, key=lambda name: hashlib.sha1(name.encode()).hexdigest())[:count])
    training = [name for name in identities if name not in chosen]
    if not training:
        raise DataError(f"no training identities left: the dataset has {len(identities)} and {len(chosen)} are kept for validation")
    return training, chosen


@dataclass(frozen=True)
class Augment:
    """Colour jitter amplitude (brightness, contrast and saturation each in 1 ± jitter) and the
    probability of a horizontal flip."""

    jitter: float = 0.2
    flip: float = 0.5


def _resize(picture: np.ndarray, size: int) -> np.ndarray:
    if picture.shape[0] == size:
        return picture
    interpolation = cv2.INTER_AREA if picture.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(picture, (size, size), interpolation=interpolation)


def _jitter(images: np.ndarray, generator: np.random.Generator, amount: float) -> np.ndarray:
    """The same brightness, contrast and saturation change on every image of (N, H, W, 3) float."""
    brightness, contrast, saturation = 1 + generator.uniform(-amount, amount, 3)
    images = images * brightness
    mean = images.mean(axis=(1, 2, 3), keepdims=True)
    images = (images - mean) * contrast + mean
    grey = images @ np.array([0.299, 0.587, 0.114])
    images = (images - grey[..., None]) * saturation + grey[..., None]
    return np.clip(images, 0.0, 1.0)


class PairDataset(Dataset):
    """(source, driving) pairs from prepared clips. Index ``i`` means frame ``i mod N`` as the
    driving frame (N usable frames in all) in "round" ``i div N`` (see :class:`EpochSampler`)."""

    def __init__(self, root: Path, clips: list[dict[str, Any]], resolution: int, augment: Augment | None, seed: int, mirror: ParamMirror | None,
                 warp_model: MorphableModel | None = None):  # fmt: skip
        """``warp_model`` (on CPU): add each sample's geometric warp and hole mask (``warp``, ``holes``)."""
        if augment is not None and augment.flip > 0 and mirror is None:
            raise ValueError("flip augmentation needs a ParamMirror")
        if warp_model is not None and warp_model.mean.device.type != "cpu":
            raise ValueError("the warp inputs are made in loader workers: pass a CPU MorphableModel")
        self.clips: list[PreparedClip] = [load_clip(root / c["file"]) for c in clips]
        self.frames = [np.flatnonzero(c.found) for c in self.clips]
        self.index = np.array([(k, f) for k, frames in enumerate(self.frames) for f in frames], np.int64).reshape(-1, 2)
        self.resolution = resolution
        self.augment = augment
        self.seed = seed
        self.mirror = mirror
        self.warp_model = warp_model

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        generator = np.random.default_rng([self.seed, item])
        clip_index, driving = self.index[item % len(self.index)]
        frames = self.frames[clip_index]
        others = frames[frames != driving]
        source = int(generator.choice(others))
        return self.pair(int(clip_index), source, int(driving), generator if self.augment else None)

    def pair(self, clip_index: int, source: int, driving: int, generator: np.random.Generator | None) -> dict[str, torch.Tensor]:
        """One sample: images (3, R, R) in [0, 1] and fits (crop pixels at R) of both frames."""
        clip = self.clips[clip_index]
        size, stored = self.resolution, clip.meta["size"]
        images = np.stack([_resize(clip.crop(source), size), _resize(clip.crop(driving), size)]).astype(np.float32) / 255
        params = clip.face_params([source, driving])
        k = size / stored  # pixel centres: x' = (x + 0.5)·k − 0.5
        params = params.replace(scale=params.scale * k, translation=(params.translation + 0.5) * k - 0.5)
        if generator is not None and self.augment is not None:
            if self.augment.jitter > 0:
                images = _jitter(images, generator, self.augment.jitter)
            if generator.random() < self.augment.flip:
                images = images[:, :, ::-1]
                assert self.mirror is not None
                params = self.mirror(params, size)
        pictures = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
        sample = {"source": pictures[0], "target": pictures[1]}
        for name in _PARAM_FIELDS:
            values = getattr(params, name)
            sample[f"source_{name}"], sample[f"driving_{name}"] = values[0], values[1]
        if self.warp_model is not None:
            warp, holes = geometric_warp_inputs(self.warp_model, pictures[:1], params[0], params[1])
            sample["warp"], sample["holes"] = warp[0], holes[0]
        return sample


def params_from_batch(batch: dict[str, torch.Tensor], side: str) -> FaceParams:
    """The ``side`` ('source' or 'driving') fits of a collated batch."""
    return FaceParams(**{name: batch[f"{side}_{name}"] for name in _PARAM_FIELDS})


@torch.no_grad()
def render_conditions(model: MorphableModel, source: FaceParams, driving: FaceParams, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(source PNCC, reconstructed driving PNCC), each (B, 3, S, S): the driving frame's pose
    and expression rebuilt with the source's identity."""
    source_pncc, _, _ = render_pncc(model, model.vertices(source), size, size)
    driving_pncc, _, _ = render_pncc(model, model.vertices(identity_matched(source, driving)), size, size)
    return source_pncc, driving_pncc


@torch.no_grad()
def geometric_warp_inputs(model: MorphableModel, source_images: torch.Tensor, source: FaceParams, driving: FaceParams) -> tuple[torch.Tensor, torch.Tensor]:
    """The training-free warp of each source to its rebuilt driving face, and its hole mask:
    the generator's optional extra inputs, made the way inference makes them."""
    size = source_images.shape[-1]
    target = identity_matched(source, driving)
    target_vertices, target_landmarks = model.vertices(target), model.landmarks(target)
    source_vertices = model.vertices(source)
    head = head_field(HeadEllipsoid.of(model, source.shape), source, target, size)
    images, holes = [], []
    for i in range(len(source)):
        warp = GeometricWarp(model, source_vertices[i : i + 1], size)
        result = warp(source_images[i : i + 1], WarpTargets(target_vertices[i : i + 1], target_landmarks[i : i + 1], head[i : i + 1]))
        images.append(result.images)
        holes.append(result.holes)
    return torch.cat(images), torch.cat(holes)


class EpochSampler(Sampler[int]):
    """A :class:`DistributedSampler` whose indices carry the epoch (``epoch·N + i``), endless,
    and able to start mid-epoch when a run resumes."""

    def __init__(self, dataset: Dataset, rank: int, world: int, seed: int, batch_size: int, start_batch: int = 0):
        self.n = len(dataset)  # type: ignore[arg-type]
        self.inner: DistributedSampler[int] = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.batches_per_epoch = max(1, len(self.inner) // batch_size)
        if len(self.inner) < batch_size:
            raise DataError(f"the training split has {self.n} usable frames: too few for {world} process(es) × batch {batch_size}")
        self.batch_size = batch_size
        self.start_batch = start_batch

    def __iter__(self) -> Iterator[int]:
        epoch, skip = divmod(self.start_batch, self.batches_per_epoch)
        while True:
            self.inner.set_epoch(epoch)
            indices = list(self.inner)[: self.batches_per_epoch * self.batch_size]
            for i in indices[skip * self.batch_size :]:
                yield epoch * self.n + i
            epoch, skip = epoch + 1, 0


def validation_batch(dataset: PairDataset, count: int, seed: int) -> dict[str, torch.Tensor]:
    """A fixed batch of ``count`` pairs (no augmentation), spread over the validation clips:
    the same pictures at every evaluation, so the curve measures the model alone."""
    generator = np.random.default_rng([seed, 7919])
    samples = []
    for k in range(count):
        clip_index = k % len(dataset.clips)
        frames = dataset.frames[clip_index]
        source, driving = generator.choice(frames, 2, replace=False)
        samples.append(dataset.pair(clip_index, int(source), int(driving), None))
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}
