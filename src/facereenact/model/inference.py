"""The trained generator as a generation stage of the :class:`facereenact.pipeline.Reenactor`.

``load_stage(checkpoint)`` reads a training checkpoint (or an EMA-only export of one) and rebuilds
the network from the architecture recorded in it. Each Reenactor binds it to its source
(``bound_to``), which gives a stage with the pipeline's interface: source crop + target geometry
→ generated crops. The source PNCC is rendered from the source's own fit, and each target's
PNCC from the target vertices (source identity, driving motion), at the network's resolution.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from facereenact.errors import CheckpointError, ConfigError, NotAvailableError
from facereenact.face3d.morphable import MorphableModel
from facereenact.face3d.pncc import render_pncc
from facereenact.model.checkpoint import architecture_of, generator_prefix, load_module, read_checkpoint
from facereenact.model.generator import Generator, SourceFeatures
from facereenact.model.layers import resize_to
from facereenact.model.onnx_refiner import OnnxRefiner
from facereenact.stage import WarpResult, WarpTargets
from facereenact.warp.geometric import GeometricWarp

#: Frames per network call on a CPU. Measured on the 2-core CPU with the shipped model: under
#: PyTorch (hdtf_aoc driving lp_s1, 96 frames, alternating runs) 4 gives 15–16 frames/s of
#: generation against 12.6–12.9 for 8 and 12–15 for 1. Under ONNX Runtime the network alone
#: costs 37–42 ms a frame in calls of 4, 42–45 for 1, 42–47 for 2 and 34–41 for 8 (PyTorch:
#: 51–56 ms in calls of 4).
CPU_NETWORK_BATCH = 4
#: A warp-refining network's synthesis keeps only its detail: below this scale (a Gaussian's
#: sigma, as a share of the network's resolution: 3.2 px at 128²) its shading and colour are the
#: warp's, whose holes are already inpainted from their surroundings. The shipped network tints
#: what it fills with its training faces' colours (a pink band on a black-and-white photo, a
#: violet one on a painting); the warp around a hole has the picture's own.
TONE_SIGMA = 1 / 40
#: Which engine runs a warp-refining network: ``auto`` is ONNX Runtime on a CPU where it is
#: installed (about 1.4× faster there), PyTorch otherwise.
RUNTIMES = ("auto", "torch", "onnxruntime")

logger = logging.getLogger(__name__)

Refine = Callable[[SourceFeatures, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _to_resolution(vertices: torch.Tensor, size: int, resolution: int) -> torch.Tensor:
    """Vertices in pixels of a ``size``² crop → pixels of the same crop at ``resolution``²."""
    k = resolution / size
    return torch.cat([(vertices[..., :2] + 0.5) * k - 0.5, vertices[..., 2:] * k], -1)


class NeuralStage:
    """The trained generator, not yet tied to a source. :meth:`bound_to` gives the pipeline's
    :class:`~facereenact.pipeline.GenerationStage` for one source; one NeuralStage serves any
    number of sources at once (the weights are shared, nothing of a source is kept here)."""

    def __init__(self, generator: Generator, device: torch.device, runtime: str = "auto"):
        self.generator = generator.to(device).eval()
        self.device = device
        self.resolution = generator.config.resolution
        self.runtime = _runtime_for(generator, device, runtime)
        self.refine: Refine = self.generator.refine
        if self.runtime == "onnxruntime":
            try:
                self.refine = OnnxRefiner(generator, torch.get_num_threads())
            except Exception as error:  # noqa: BLE001 (not installed, or an exporter or runtime of another version: PyTorch runs it)
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                if runtime == "onnxruntime":
                    raise NotAvailableError(f"ONNX Runtime could not take the network ({reason}); use runtime 'torch'") from None
                logger.warning("the network runs in PyTorch: ONNX Runtime could not take it (%s)", reason)
                self.runtime = "torch"

    def bound_to(self, model: MorphableModel, source_vertices: torch.Tensor, source_crop: torch.Tensor) -> BoundNeuralStage:
        """The stage for one source: ``source_vertices`` (1, N, 3) in pixels of ``source_crop``
        (1, 3, S, S) in [0, 1]; or for B sources, one per target (B, …)."""
        return BoundNeuralStage(self, model, source_vertices, source_crop)


class BoundNeuralStage:
    """The generator tied to one source: the source's PNCC, its encoder features and (for a
    generator that refines the warp) its geometric warp are computed once, not per frame."""

    @torch.inference_mode()
    def __init__(self, stage: NeuralStage, model: MorphableModel, source_vertices: torch.Tensor, source_crop: torch.Tensor):
        self.generator, self.device, self.resolution, self.refine = stage.generator, stage.device, stage.resolution, stage.refine
        self.model = model
        size, resolution = source_crop.shape[-1], self.resolution
        vertices = _to_resolution(source_vertices.to(self.device), size, resolution)
        self.source_pncc, _, _ = render_pncc(model, vertices, resolution, resolution)
        source = source_crop.to(self.device)
        self.source = F.interpolate(source, size=(resolution, resolution), mode="area") if size != resolution else source
        # Bound to many sources (a source video's frames), a refining network encodes only the
        # sources of frames with holes, each when its frame needs it (see _refinement).
        many = len(source_crop) > 1 and self.generator.config.warp_inputs
        self.features: SourceFeatures | None = None if many else self.generator.encode_source(self.source, self.source_pncc)
        self.warp = GeometricWarp(model, source_vertices, size) if self.generator.config.warp_inputs else None

    @torch.inference_mode()
    def __call__(self, source_crop: torch.Tensor, targets: WarpTargets) -> WarpResult:
        """``source_crop``: the crop this stage was bound to."""
        size, resolution = source_crop.shape[-1], self.resolution
        vertices = _to_resolution(targets.vertices.to(self.device), size, resolution)
        driving_pncc, face, _ = render_pncc(self.model, vertices, resolution, resolution)
        face = F.interpolate(face, size=(size, size), mode="nearest") if size != resolution else face
        if self.warp is not None:
            warped = self.warp(source_crop, targets)
            warp_small, holes_small = (resize_to(x.to(self.device), driving_pncc) for x in (warped.images, warped.holes))
            synthesis, blend = self._refinement(driving_pncc, warp_small, holes_small)
            refined = blend.flatten(1).amax(1) > 0  # the frames the network ran on
            synthesis[refined] = toned_to(synthesis[refined], warp_small[refined])
            # Refining the warp: blend at the crop's own size, so the warp keeps its full detail
            # wherever the network leaves it alone; the warp's field and masks stand.
            synthesis, blend = _upsample(synthesis, size), _upsample(blend, size)
            warp_images = warped.images.to(self.device)
            images = warp_images + blend * (synthesis - warp_images)
            sampled = warped.sampled * (1 - blend.to(warped.sampled.device)) if warped.sampled is not None else None
            return WarpResult(images.clamp(0, 1), warped.holes, warped.mouth, face, warped.field, sampled)
        assert self.features is not None  # encoded up front for a generator that does not refine the warp
        out = self.generator(self.source, self.source_pncc, driving_pncc, source=self.features)
        flow = F.interpolate(out.flow, size=(size, size), mode="bilinear", align_corners=False)
        field = ((flow + 1) * size / 2 - 0.5).permute(0, 2, 3, 1)  # grid coordinates → source-crop pixels
        nothing = torch.zeros_like(face)  # the network fills every pixel: no holes, no flat mouth fill
        return WarpResult(_upsample(out.image, size).clamp(0, 1), nothing, nothing, face, field)

    def _refinement(self, driving_pncc: torch.Tensor, warp: torch.Tensor, holes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(synthesis, blend) of a warp-refining generator at its resolution. One that refines
        only the holes leaves a frame without holes exactly as the warp (its blend is zero
        there), so the network runs on the frames with holes alone."""
        if self.generator.config.refine_region == "holes":
            needed = holes.flatten(1).amax(1) > 0
        else:
            needed = torch.ones(len(holes), dtype=torch.bool, device=holes.device)
        synthesis, blend = torch.zeros_like(warp), torch.zeros_like(holes)
        chosen = torch.nonzero(needed).flatten()
        step = CPU_NETWORK_BATCH if self.device.type == "cpu" else len(chosen)
        if self.features is None:  # one source per frame: each frame with its own source's features
            for i in chosen.tolist():
                features = self.generator.encode_source(self.source[i : i + 1], self.source_pncc[i : i + 1])
                synthesis[i : i + 1], blend[i : i + 1] = self.refine(features, driving_pncc[i : i + 1], warp[i : i + 1], holes[i : i + 1])
            return synthesis, blend
        for part in chosen.split(step) if len(chosen) else ():
            synthesis[part], blend[part] = self.refine(self.features, driving_pncc[part], warp[part], holes[part])
        return synthesis, blend


def toned_to(synthesis: torch.Tensor, warp: torch.Tensor) -> torch.Tensor:
    """``synthesis`` (B, 3, H, W) with ``warp``'s low frequencies in place of its own (below
    TONE_SIGMA): the network adds what it draws, the picture keeps its colours."""
    return (synthesis + _low_pass(warp - synthesis, TONE_SIGMA * synthesis.shape[-1])).clamp(0, 1)


def _low_pass(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur, edges reflected (so the border keeps its own level)."""
    radius = min(math.ceil(3 * sigma), int(min(images.shape[-2:])) - 1)
    taps = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    across = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(across, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def _runtime_for(generator: Generator, device: torch.device, runtime: str) -> str:
    """The engine asked to run ``generator``'s refinement: ``torch`` or ``onnxruntime`` (which
    :class:`NeuralStage` still drops for PyTorch under ``auto`` if it cannot take the network)."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    fits = generator.config.warp_inputs and device.type == "cpu"
    if runtime == "onnxruntime" and not fits:
        raise ConfigError("ONNX Runtime runs only a warp-refining network on the CPU; use runtime 'torch'")
    return "onnxruntime" if runtime != "torch" and fits else "torch"


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


def load_stage(checkpoint: Path, device: str = "cpu", runtime: str = "auto") -> NeuralStage:
    """The trained network as a generation stage (see the module docstring), run by ``runtime``
    (one of :data:`RUNTIMES`). Raises :class:`CheckpointError` with one clear line for a
    missing, corrupt or foreign checkpoint."""
    return NeuralStage(load_generator(Path(checkpoint)), torch.device(device), runtime)
