"""The Reenactor: a source portrait + driving face parameters → reenacted frames.

Stages: the source is fitted once and cropped; for each batch of driving frames the target
geometry is built (source identity, driving motion by the chosen mode), a generation stage turns
the source crop into target crops (any :class:`~facereenact.stage.StageMethod`: the
training-free warp by default, or the trained network), and the crops are pasted back into the
source photo.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from facereenact.face3d.blendshapes import Region
from facereenact.face3d.eyelids import follow_eyelids, keep_eyelids_apart
from facereenact.face3d.fitter import FaceFit, FaceFitter
from facereenact.face3d.params import FaceParams
from facereenact.face3d.pncc import params_to_crop, vertices_to_crop
from facereenact.face3d.transfer import MotionMode, MotionOptions, keep_lips_apart, target_params
from facereenact.pipeline.composite import Paster, crop, reenactment_box
from facereenact.stage import GenerationStage, StageMethod, WarpResult, WarpTargets
from facereenact.warp.geometric import WarpMethod
from facereenact.warp.head import HeadEllipsoid, head_field
from facereenact.warp.mouth import cut_driving_mouths

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
        size = self.options.crop_size
        self.box = reenactment_box(self.source.landmarks, self.options.crop_scale)
        self._box_t = torch.as_tensor(self.box, dtype=torch.float32, device=self.device)[None]
        self._source_crop_rgb = crop(source_image, self.box, size)
        self.source_crop = torch.from_numpy(self._source_crop_rgb).to(self.device).permute(2, 0, 1)[None].float() / 255
        params = self.source.params.to(self.device)
        with torch.inference_mode():
            vertices = self._to_crop(self.model.vertices(params))
            self._source_in_crop = self._in_crop(params)
            self._head = HeadEllipsoid.of(self.model, params.shape)
        self.stage: GenerationStage = (method or WarpMethod()).bound_to(self.model, vertices, self.source_crop)
        self.paster = Paster(source_image, self.box, size)

    def source_crop_uint8(self) -> np.ndarray:
        """The source crop (S, S, 3) uint8, as the generation stage sees it."""
        return self._source_crop_rgb

    def _in_crop(self, params: FaceParams) -> FaceParams:
        return params_to_crop(params, self._box_t.expand(len(params), 4), self.options.crop_size)

    def _to_crop(self, points: torch.Tensor) -> torch.Tensor:
        return vertices_to_crop(points, self._box_t.expand(len(points), 4), self.options.crop_size)

    def landmarks_in_crop(self, params: FaceParams) -> torch.Tensor:
        """The 68 landmarks (B, 68, 3) of faces ``params`` (B,) in the generated crop's pixels."""
        return self._to_crop(self.model.landmarks(params))

    @torch.inference_mode()
    def reenact(
        self,
        driving: FaceParams,
        reference: FaceParams,
        paste: bool = True,
        frames: np.ndarray | None = None,
        found: np.ndarray | None = None,
    ) -> ReenactedBatch:
        """Frames for driving parameters (B,); ``reference`` (batch 1) is the driving frame the
        relative motion is measured from (usually the first). ``frames`` (B, H, W, 3) uint8 are
        the driving frames those parameters were fitted to, for their mouths (see
        :attr:`ReenactOptions.uses_driving_frames`); ``found`` (B,) marks which of them had a tracked face."""
        driving = driving.to(self.device)
        source, reference, motion = self.source.params.to(self.device), reference.to(self.device), self.options.motion
        targets = target_params(source, driving, reference, motion)
        if motion.mode is MotionMode.relative and motion.transfer_expression and Region.eyes in motion.regions:
            targets = follow_eyelids(self.model, source, driving, reference, targets, motion.expression_scale)
        targets = keep_eyelids_apart(self.model, keep_lips_apart(self.model, targets))
        head = head_field(self._head, self._source_in_crop, self._in_crop(targets), self.options.crop_size)
        landmarks = self._to_crop(self.model.landmarks(targets))
        mouths = None
        if frames is not None and self.options.uses_driving_frames:
            face_size = (landmarks[..., :2].amax(1) - landmarks[..., :2].amin(1)).amax(-1)
            mouths = cut_driving_mouths(frames, self.model.vertices(driving), self.model.landmarks(driving), face_size, found)
        inputs = WarpTargets(self._to_crop(self.model.vertices(targets)), landmarks, head, mouths)
        result = self.stage(self.source_crop, inputs)
        crops = (result.images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
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
        if batch.stage.sampled is None:
            yield from (self.paster.paste(c) for c in batch.crops)
            return
        fields = batch.stage.field.float().cpu().numpy()
        sampled = batch.stage.sampled[:, 0].float().cpu().numpy()
        for crop_rgb, field_of, sampled_of in zip(batch.crops, fields, sampled):
            yield self.paster.paste(crop_rgb, field_of, sampled_of)
