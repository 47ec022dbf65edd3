"""The trained generator as a generation stage of the :class:`facereenact.pipeline.Reenactor`.

``load_stage(checkpoint)`` reads a training checkpoint (or an EMA-only export of one), rebuilds
the network from the architecture recorded in it and returns a stage with the pipeline's
interface: source crop + target geometry → generated crops. The Reenactor binds it to the
source once (``bind``): the source PNCC is rendered from the source's own fit, and each target's
PNCC from the target vertices (source identity, driving motion), at the network's resolution.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from facereenact.correspond.warp import GeometricWarp, WarpResult, WarpTargets
from facereenact.errors import CheckpointError
from facereenact.face3d.morphable import MorphableModel
from facereenact.face3d.pncc import render_pncc
from facereenact.model.checkpoint import architecture_of, generator_prefix, load_module, read_checkpoint
from facereenact.model.generator import Generator, SourceFeatures
from facereenact.model.layers import resize_to


def _to_resolution(vertices: torch.Tensor, size: int, resolution: int) -> torch.Tensor:
    """Vertices in pixels of a ``size``² crop → pixels of the same crop at ``resolution``²."""
    k = resolution / size
    return torch.cat([(vertices[..., :2] + 0.5) * k - 0.5, vertices[..., 2:] * k], -1)


class NeuralStage:
    """The generator behind the pipeline's :class:`~facereenact.pipeline.GenerationStage` interface."""

    def __init__(self, generator: Generator, device: torch.device):
        self.generator = generator.to(device).eval()
        self.device = device
        self.resolution = generator.config.resolution
        self._model: MorphableModel | None = None
        self._source_pncc: torch.Tensor | None = None
        self._warp: GeometricWarp | None = None
        self._encoded: tuple[torch.Tensor, SourceFeatures] | None = None

    def bind(self, model: MorphableModel, source_vertices: torch.Tensor, size: int) -> None:
        """Render the source PNCC once (``source_vertices`` (1, N, 3) in ``size``² crop pixels)."""
        self._model = model
        vertices = _to_resolution(source_vertices.to(self.device), size, self.resolution)
        self._source_pncc, _, _ = render_pncc(model, vertices, self.resolution, self.resolution)
        self._warp = GeometricWarp(model, source_vertices, size) if self.generator.config.warp_inputs else None
        self._encoded = None

    def _source_features(self, source_crop: torch.Tensor, source: torch.Tensor) -> SourceFeatures:
        """The generator's source features, computed on the first call for this source crop and
        then reused: the source is the same for every driving frame."""
        if self._encoded is None or self._encoded[0] is not source_crop:
            assert self._source_pncc is not None
            self._encoded = (source_crop, self.generator.encode_source(source, self._source_pncc))
        return self._encoded[1]

    @torch.inference_mode()
    def __call__(self, source_crop: torch.Tensor, targets: WarpTargets) -> WarpResult:
        if self._model is None or self._source_pncc is None:
            raise RuntimeError("NeuralStage.bind() must be called with the source geometry first (the Reenactor does this)")
        size, resolution = source_crop.shape[-1], self.resolution
        source = F.interpolate(source_crop.to(self.device), size=(resolution, resolution), mode="area") if size != resolution else source_crop.to(self.device)
        vertices = _to_resolution(targets.vertices.to(self.device), size, resolution)
        driving_pncc, face, _ = render_pncc(self._model, vertices, resolution, resolution)
        face = F.interpolate(face, size=(size, size), mode="nearest") if size != resolution else face
        if self._warp is not None:
            warped = self._warp(source_crop, targets)
            warp_small, holes_small = (resize_to(x.to(self.device), driving_pncc) for x in (warped.images, warped.holes))
            synthesis, blend = self._refinement(source, self._source_features(source_crop, source), driving_pncc, warp_small, holes_small)
            # Refining the warp: blend at the crop's own size, so the warp keeps its full detail
            # wherever the network leaves it alone; the warp's field and masks stand.
            synthesis, blend = _upsample(synthesis, size), _upsample(blend, size)
            warp_images = warped.images.to(self.device)
            images = warp_images + blend * (synthesis - warp_images)
            return WarpResult(images.clamp(0, 1), warped.holes, warped.mouth, face, warped.field)
        out = self.generator(source, self._source_pncc, driving_pncc, source=self._source_features(source_crop, source))
        flow = F.interpolate(out.flow, size=(size, size), mode="bilinear", align_corners=False)
        field = ((flow + 1) * size / 2 - 0.5).permute(0, 2, 3, 1)  # grid coordinates → source-crop pixels
        nothing = torch.zeros_like(face)  # the network fills every pixel: no holes, no flat mouth fill
        return WarpResult(_upsample(out.image, size).clamp(0, 1), nothing, nothing, face, field)

    def _refinement(self, source: torch.Tensor, features: SourceFeatures, driving_pncc: torch.Tensor, warp: torch.Tensor, holes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(synthesis, blend) of a warp-refining generator at its resolution. One that refines
        only the holes leaves a frame without holes exactly as the warp (its blend is zero
        there), so the network runs on the frames with holes alone."""
        if self.generator.config.refine_region == "holes":
            needed = holes.flatten(1).amax(1) > 0
        else:
            needed = torch.ones(len(holes), dtype=torch.bool, device=holes.device)
        synthesis, blend = torch.zeros_like(warp), torch.zeros_like(holes)
        count = int(needed.sum())
        if count:
            assert self._source_pncc is not None
            out = self.generator(source, self._source_pncc, driving_pncc[needed], warp[needed], holes[needed], source=features)
            assert out.synthesis is not None and out.blend is not None
            synthesis[needed], blend[needed] = out.synthesis, out.blend
        return synthesis, blend


def _upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    return images if images.shape[-1] == size else F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def load_generator(checkpoint: Path) -> Generator:
    """The EMA generator (else the raw one) of a checkpoint, on the CPU, in eval mode."""
    metadata, tensors = read_checkpoint(checkpoint)
    try:
        generator = Generator(architecture_of(metadata, checkpoint))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{checkpoint} holds a different architecture ({error})") from None
    prefix = generator_prefix(tensors)
    load_module(generator, tensors, prefix, checkpoint)
    return generator.eval()


def load_stage(checkpoint: Path, device: str = "cpu") -> NeuralStage:
    """The trained network as a generation stage (see the module docstring). Raises
    :class:`CheckpointError` with one clear line for a missing, corrupt or foreign checkpoint."""
    return NeuralStage(load_generator(Path(checkpoint)), torch.device(device))
