"""Sources bound for generation: what the pipeline prepares once per source face before any
driving frame is generated, for one still face or for a batch of a source video's frames.

For each source face: its crop box, the crop the stage sees, the fitted vertices and parameters
in crop pixels, the head proxy, the generation stage bound to the crops, and the paster that
puts results back into the source's picture. None of it runs the detector or the fit: the caller
hands over a fit (a photo's, or a tracked video's frames), so binding a video's frames batch by
batch costs a crop, a rasterization and a few small tensors per frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from facereenact.face3d.blendshapes import Region
from facereenact.face3d.eyelids import follow_eyelids, keep_eyelids_apart
from facereenact.face3d.irises import EYE_OUTLINES, IrisModel
from facereenact.face3d.lipline import LipLineOffsets
from facereenact.face3d.morphable import MorphableModel
from facereenact.face3d.params import FaceParams
from facereenact.face3d.pncc import params_to_crop, vertices_to_crop
from facereenact.face3d.transfer import MotionMode, MotionOptions, follow_lips, keep_lips_apart, target_params
from facereenact.pipeline.composite import Paster, crop, reenactment_box
from facereenact.stage import GenerationStage, IrisShifts, StageMethod, WarpResult, WarpTargets
from facereenact.warp.geometric import WarpMethod
from facereenact.warp.head import HeadEllipsoid, head_field
from facereenact.warp.mouth import cut_driving_mouths


def held_apart(model: MorphableModel, faces: FaceParams) -> FaceParams:
    """``faces`` with lips and eyelids that never pass through each other (see
    :func:`~facereenact.face3d.transfer.keep_lips_apart`)."""
    return keep_eyelids_apart(model, keep_lips_apart(model, faces))


class BoundSources:
    """B source faces (B ≥ 1), each in its own picture, ready for generation: the i-th is
    reenacted into the i-th driving frame (or, with one source, into every driving frame).

    ``pictures`` are the source pictures (H, W, 3) uint8, ``params`` (B,) and ``landmarks``
    (B, 68, ≥2) their faces' fits in picture pixels, ``params`` on the model's device;
    ``points`` MediaPipe's landmarks of each face (478, ≥2 picture pixels, None where unread),
    which put the mesh's lip line where the picture has it (:mod:`facereenact.face3d.lipline`)."""

    @torch.inference_mode()
    def __init__(
        self,
        model: MorphableModel,
        pictures: Sequence[np.ndarray],
        params: FaceParams,
        landmarks: np.ndarray,
        crop_size: int,
        crop_scale: float,
        method: StageMethod | None = None,
        points: Sequence[np.ndarray | None] | None = None,
    ):
        self.model, self.pictures, self.crop_size = model, list(pictures), crop_size
        device = params.scale.device  # the model's
        # A fit's lips or eyelids may cross, a picture's never do. Targets are held apart (see
        # generate), and so is each source: a target equal to it must not open what it keeps shut.
        params = held_apart(model, params)
        self.params = params
        self.boxes = np.stack([reenactment_box(points, crop_scale) for points in landmarks])
        self._boxes_t = torch.as_tensor(self.boxes, dtype=torch.float32, device=device)
        self.crops_rgb = np.stack([crop(picture, box, crop_size) for picture, box in zip(self.pictures, self.boxes, strict=True)])
        self.crops = torch.from_numpy(self.crops_rgb).to(device).permute(0, 3, 1, 2).float() / 255
        self.lip_line = LipLineOffsets(model)
        self.offsets = self.lip_line.offsets(model, params, points) if points is not None else None
        vertices = self.to_crop(model.vertices(self.params, self.offsets))
        self.in_crop = params_to_crop(self.params, self._boxes_t, crop_size)
        self.head = HeadEllipsoid.of(model, self.params.shape)
        self.irises = IrisModel(model) if model.has_blendshape_components else None
        self.stage: GenerationStage = (method or WarpMethod()).bound_to(model, vertices, self.crops)
        self._pasters: list[Paster | None] = [None] * len(self.pictures)

    def __len__(self) -> int:
        return len(self.pictures)

    def to_crop(self, points: torch.Tensor) -> torch.Tensor:
        """Picture-pixel points (B or 1 faces, N, 3) → pixels of each source's crop."""
        return vertices_to_crop(points, self._boxes_t.expand(len(points), 4) if len(self) == 1 else self._boxes_t, self.crop_size)

    def paster(self, index: int) -> Paster:
        """The paster of source ``index`` into its own picture (made when first asked for)."""
        paster = self._pasters[index]
        if paster is None:
            paster = self._pasters[index] = Paster(self.pictures[index], self.boxes[index], self.crop_size)
        return paster

    @torch.inference_mode()
    def generate(
        self,
        motion: MotionOptions,
        driving: FaceParams,
        reference: FaceParams,
        bases: FaceParams | None = None,
        driving_frames: np.ndarray | None = None,
        found: np.ndarray | None = None,
        driving_points: Sequence[np.ndarray | None] | None = None,
        reference_points: np.ndarray | None = None,
    ) -> tuple[np.ndarray, WarpResult, FaceParams]:
        """Crops (B, S, S, 3) uint8 for driving parameters (B,) measured from ``reference``
        (batch 1), the stage's result, and the target parameters. ``bases`` (B or 1) are the
        faces the driver's motion is added to (default: the sources' own fits; a source video
        passes its frames with its resting expression, so its own expression does not add to
        the driver's). ``driving_frames`` (B, H, W, 3) give their mouths; ``found`` (B,) marks
        the frames with a tracked driving face; ``driving_points`` are MediaPipe's landmarks of
        each driving face, which place the driver's lip line for the mouth's cut-out and, with
        ``reference_points`` (the reference face's), carry its motion in relative motion
        (:meth:`~facereenact.face3d.lipline.LipLineOffsets.followed`)."""
        device = self.params.scale.device
        driving, reference = driving.to(device), reference.to(device)
        base = self.params if bases is None else bases.to(device)
        targets = target_params(base, driving, reference, motion)
        relative_expression = motion.mode is MotionMode.relative and motion.transfer_expression
        if relative_expression and Region.eyes in motion.regions:
            targets = follow_eyelids(self.model, base, driving, reference, targets, motion.expression_scale)
        if relative_expression and Region.mouth in motion.regions:
            targets = follow_lips(self.model, base, driving, reference, targets, motion.expression_scale)
        targets = held_apart(self.model, targets)
        boxes = self._boxes_t.expand(len(targets), 4) if len(self) == 1 else self._boxes_t
        head = head_field(self.head, self.in_crop, params_to_crop(targets, boxes, self.crop_size), self.crop_size)
        landmarks = self.to_crop(self.model.landmarks(targets))
        lips_follow = relative_expression and Region.mouth in motion.regions and reference_points is not None and self.offsets is not None
        needs_own = driving_frames is not None or lips_follow  # the mouth's cut-out, the lips' motion
        own = self.lip_line.measured_offsets(self.model, driving, driving_points) if driving_points is not None and needs_own else None
        mouths = None
        if driving_frames is not None:
            face_size = (landmarks[..., :2].amax(1) - landmarks[..., :2].amin(1)).amax(-1)
            mouths = cut_driving_mouths(driving_frames, self.model.vertices(driving, own[0] if own is not None else None), self.model.landmarks(driving), face_size, found)
        offsets = self.offsets
        if lips_follow and own is not None and offsets is not None:
            offsets = self.lip_line.followed(self.model, targets, offsets, own, reference, reference_points, motion.expression_scale)
        surface = self.model.vertices(targets, offsets)
        vertices = self.to_crop(surface)
        irises = self._iris_shifts(targets, surface, vertices) if self.irises is not None else None
        result = self.stage(self.crops, WarpTargets(vertices, landmarks, head, mouths, irises))
        crops = result.images.clamp(0, 1).mul_(255).add_(0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return crops, result, targets

    def _iris_shifts(self, targets: FaceParams, surface: torch.Tensor, vertices: torch.Tensor) -> IrisShifts:
        """The targets (posed vertices: ``surface`` in picture pixels, ``vertices`` in crop
        pixels) looking as far sideways as the sources' own pictures do, and how far each iris
        slides from there (see :class:`IrisShifts`), in crop pixels."""
        assert self.irises is not None
        held = self.to_crop(surface - self.irises.sideways_motion(targets, self.params))
        moved, still = self.irises.points(vertices)[..., :2], self.irises.points(held)[..., :2]
        centres = moved[:, :, 0]
        radii = (moved[:, :, 1:] - centres[:, :, None]).norm(dim=-1).mean(-1)
        lids = self.to_crop(self.model.landmarks(self.irises.looking_ahead(targets, self.params)))
        outlines = lids[:, torch.tensor(EYE_OUTLINES).flatten(), :2].view(-1, 2, len(EYE_OUTLINES[0]), 2)
        return IrisShifts(held, centres - still[:, :, 0], centres, radii, outlines)

    def pasted(self, crops: np.ndarray, stage: WarpResult, onto: Sequence[np.ndarray] | None = None) -> Iterator[np.ndarray]:
        """Each crop pasted into its source's picture (H, W, 3) uint8, one at a time: the picture
        resampled at its own resolution where the stage sampled the source, the crop where it did
        not. With one source, every crop goes into the one picture. ``onto`` (one frame per crop)
        are that picture with other faces already pasted in: each changes only where this face
        moved (see :meth:`Paster.paste`)."""
        fields = stage.field.float().cpu().numpy() if stage.sampled is not None else None
        sampled = stage.sampled[:, 0].float().cpu().numpy() if stage.sampled is not None else None
        for i, crop_rgb in enumerate(crops):
            paster = self.paster(0 if len(self) == 1 else i)
            under = onto[i] if onto is not None else None
            if fields is None or sampled is None:
                yield paster.paste(crop_rgb, onto=under)
            else:
                yield paster.paste(crop_rgb, fields[i], sampled[i], onto=under)
