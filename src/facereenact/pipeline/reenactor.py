"""The Reenactor: a source portrait + driving face parameters → reenacted frames.

Stages: the source is fitted once and cropped; for each batch of driving frames the target
geometry is built (source identity, driving motion by the chosen mode), a generation stage turns
the source crop into target crops (any :class:`~facereenact.stage.StageMethod`: the
training-free warp by default, or the trained network), and the crops are pasted back into the
source photo.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from facereenact.face3d.fitter import FaceFit, FaceFitter
from facereenact.face3d.params import FaceParams
from facereenact.face3d.transfer import MotionOptions
from facereenact.pipeline.sources import BoundSources
from facereenact.stage import GenerationStage, StageMethod, WarpResult

#: Driving frames generated together (the rasterizer and the warp are batched).
ANIMATE_BATCH = 8


@dataclass(frozen=True)
class ReenactOptions:
    crop_size: int = 256
    #: Crop side over the extent of the source's 68 landmarks (room for hair and neck).
    crop_scale: float = 2.0
    motion: MotionOptions = field(default_factory=MotionOptions)
    face_index: int = 0
    #: Fill a mouth opening the source cannot show from the driving frame's own mouth interior
    #: (teeth, tongue), when the driving frames are passed; otherwise the source's own opening
    #: stretched, or where it would stretch too far, a dark cavity.
    driving_mouth: bool = True

    @property
    def uses_driving_frames(self) -> bool:
        """Whether reenacting uses the driving frames themselves (for their mouths)."""
        return self.driving_mouth and self.motion.transfer_expression


@dataclass
class ReenactedBatch:
    """Generated crops (B, S, S, 3) uint8, full frames (B, H, W, 3) uint8 (None when only crops
    were asked for), the stage's masks, and the target parameters used."""

    crops: np.ndarray
    frames: np.ndarray | None
    stage: WarpResult
    targets: FaceParams


class Reenactor:
    """Animates one source image; call :meth:`reenact` with batches of driving parameters."""

    def __init__(
        self,
        source_image: np.ndarray,
        fitter: FaceFitter,
        options: ReenactOptions | None = None,
        method: StageMethod | None = None,
    ):
        self.options = options or ReenactOptions()
        self.fitter = fitter
        self.model = fitter.model
        self.device = fitter.device
        self.source_image = source_image
        faces = fitter.fit_image(source_image)
        self.faces_found = len(faces)
        self.source: FaceFit = fitter.pick(faces, self.options.face_index, what="source image")
        self.bound = BoundSources(
            self.model, [source_image], self.source.params.to(self.device), self.source.landmarks[None], self.options.crop_size, self.options.crop_scale, method,
            [self.source.points],
        )  # fmt: skip
        self.box = self.bound.boxes[0]
        self.source_crop = self.bound.crops
        self.stage: GenerationStage = self.bound.stage
        self.paster = self.bound.paster(0)

    def source_crop_uint8(self) -> np.ndarray:
        """The source crop (S, S, 3) uint8, as the generation stage sees it."""
        return self.bound.crops_rgb[0]

    def landmarks_in_crop(self, params: FaceParams) -> torch.Tensor:
        """The 68 landmarks (B, 68, 3) of faces ``params`` (B,) in the generated crop's pixels."""
        return self.bound.to_crop(self.model.landmarks(params))

    @torch.inference_mode()
    def reenact(
        self,
        driving: FaceParams,
        reference: FaceParams,
        paste: bool = True,
        frames: np.ndarray | None = None,
        found: np.ndarray | None = None,
        points: Sequence[np.ndarray | None] | None = None,
        reference_points: np.ndarray | None = None,
    ) -> ReenactedBatch:
        """Frames for driving parameters (B,); ``reference`` (batch 1) is the driving frame the
        relative motion is measured from (usually the first). ``frames`` (B, H, W, 3) uint8 are
        the driving frames those parameters were fitted to, for their mouths (see
        :attr:`ReenactOptions.uses_driving_frames`); ``found`` (B,) marks which of them had a tracked face;
        ``points`` are MediaPipe's landmarks of those faces (None where unread), for their lips,
        and ``reference_points`` the reference face's, from which their lips' motion is measured."""
        mouths_from = frames if self.options.uses_driving_frames else None
        crops, result, targets = self.bound.generate(self.options.motion, driving, reference, driving_frames=mouths_from, found=found, driving_points=points, reference_points=reference_points)
        batch = ReenactedBatch(crops, None, result, targets)
        if paste:
            batch.frames = self.paste(batch)
        return batch

    def paste(self, batch: ReenactedBatch) -> np.ndarray:
        """Full source frames (B, H, W, 3) uint8 for a batch (see :meth:`pasted`)."""
        return np.stack(list(self.pasted(batch)))

    def pasted(self, batch: ReenactedBatch) -> Iterator[np.ndarray]:
        """The batch's full source frames (H, W, 3) uint8, one at a time (a huge photo's frames
        need not all be in memory): the photo resampled at its own resolution where the stage
        sampled the source, the generated crop where it did not."""
        return self.bound.pasted(batch.crops, batch.stage)
