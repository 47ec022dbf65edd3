"""The trained network inside the pipeline, ONNX export, and foreign checkpoints."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from facereenact.errors import CheckpointError
from facereenact.io.video import probe_video
from facereenact.model.checkpoint import save_checkpoint
from facereenact.model.config import PRESETS, ModelConfig
from facereenact.model.discriminator import MultiScaleDiscriminator
from facereenact.model.generator import Generator
from facereenact.model.inference import NeuralStage, load_stage, toned_to
from facereenact.pipeline.reenactor import Reenactor
from tests.cli_inputs import run_cli

needs_onnxruntime = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None, reason="onnxruntime is not installed (pip install onnx onnxruntime)")


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint


def _error_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_stage_runs_in_the_reenactor(checkpoint, fitter, portraits) -> None:  # type: ignore[no-untyped-def]
    stage = load_stage(checkpoint)
    reenactor = Reenactor(portraits["lp_s12"], fitter, method=stage)
    other = Reenactor(portraits["lp_s1"], fitter, method=stage)  # one loaded network, two sources at once
    assert reenactor.stage is not other.stage and reenactor.stage.generator is other.stage.generator  # type: ignore[attr-defined]
    assert not torch.equal(reenactor.stage.source_pncc, other.stage.source_pncc)  # type: ignore[attr-defined]
    assert not hasattr(stage, "source_pncc"), "binding leaves the shared stage untouched"
    source = reenactor.source.params
    driving = source.replace(rotation=source.rotation @ torch.tensor([[0.98, 0, 0.2], [0, 1, 0], [-0.2, 0, 0.98]]))
    batch = reenactor.reenact(driving, source)
    assert batch.crops.shape == (1, 256, 256, 3) and batch.frames is not None
    assert batch.frames.shape[1:3] == portraits["lp_s12"].shape[:2]
    assert batch.stage.field.shape == (1, 256, 256, 2) and batch.stage.face.sum() > 0


def test_animate_with_model(checkpoint, assets, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    output = tmp_path / "out.mp4"
    result = run_cli(*["animate", "--model", str(checkpoint), "--source", str(data_dir / "portraits" / "lp_s1.jpg"),
                                 "--driving", str(data_dir / "clips" / "hdtf_aoc.mp4"), "--max-frames", "3", "--crop-only",
                                 "-o", str(output), "--assets", str(assets.root)])  # fmt: skip
    assert result.exit_code == 0, result.output
    info = probe_video(output)
    assert info.frame_count == 3 and info.width == 256


def test_foreign_and_broken_checkpoints_are_one_clear_line(checkpoint, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CheckpointError, match="does not exist"):
        load_stage(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_stage(corrupt)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a facereenact checkpoint"):
        load_stage(foreign)
    # Same format, different network: the tiny weights under the cpu-small architecture.
    other = tmp_path / "other.safetensors"
    config = PRESETS["cpu-small"]
    generator = Generator(PRESETS["tiny"])
    save_checkpoint(other, 0, config, "{}", generator, MultiScaleDiscriminator(PRESETS["tiny"]), copy.deepcopy(generator),
                    torch.optim.Adam(generator.parameters()), torch.optim.Adam(generator.parameters()), None)  # fmt: skip
    line = _error_line(run_cli(*["export", str(other), "-o", str(tmp_path / "x.onnx")]))
    assert "different architecture" in line
    assert not (tmp_path / "x.onnx").exists()


@needs_onnxruntime
def test_onnx_export_matches_pytorch(checkpoint, tmp_path) -> None:  # type: ignore[no-untyped-def]
    output = tmp_path / "tiny.onnx"
    result = run_cli(*["export", str(checkpoint), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert "matches PyTorch within" in result.output and output.stat().st_size > 100_000


def test_a_holes_only_refiner_runs_the_network_on_frames_with_holes_alone(fitter, portraits) -> None:  # type: ignore[no-untyped-def]
    """Its blend is zero outside the holes, so skipping hole-free frames changes nothing: the
    result equals running the network on the whole batch, which it never sees."""
    torch.manual_seed(0)
    generator = Generator(ModelConfig(resolution=32, base=4, corr_channels=8, warp_inputs=True, refine_region="holes"))
    with torch.no_grad():
        generator.to_rgb.bias[3] = 4.0
    stage = Reenactor(portraits["lp_s12"], fitter, method=NeuralStage(generator, torch.device("cpu"), runtime="torch")).stage
    seen: list[int] = []
    generator.driving_encoder.register_forward_pre_hook(lambda _, inputs: seen.append(len(inputs[0])))  # one call per network run
    pncc, warp = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    holes = torch.zeros(3, 1, 32, 32)
    holes[1, :, 10:16, 12:20] = 1
    with torch.inference_mode():  # as the stage runs it
        synthesis, blend = stage._refinement(pncc, warp, holes)
        assert seen == [1], "only the frame with holes goes through the network"
        whole = generator(stage.source.expand(3, -1, -1, -1), stage.source_pncc.expand(3, -1, -1, -1), pncc, warp, holes)  # no cached features
    assert torch.allclose(blend, whole.blend, atol=1e-4) and float(blend[1].max()) > 0.9
    assert torch.equal(blend[0], torch.zeros_like(blend[0])) and torch.equal(blend[2], torch.zeros_like(blend[2]))
    assert torch.allclose(synthesis[1], whole.synthesis[1], atol=1e-4)
    seen.clear()
    with torch.inference_mode():
        stage._refinement(pncc, warp, torch.zeros_like(holes))
    assert seen == [], "no frame with holes: the network does not run at all"
    many = torch.ones(6, 1, 32, 32)
    with torch.inference_mode():
        chunked, _ = stage._refinement(torch.rand(6, 3, 32, 32), torch.rand(6, 3, 32, 32), many)
    assert seen == [4, 2], "on a CPU the network takes at most CPU_NETWORK_BATCH frames at a time"
    assert chunked.abs().amax((1, 2, 3)).min() > 0, "every chunk's result lands in its frames"


def test_the_fill_keeps_its_detail_and_takes_the_warps_colours() -> None:
    """A colour cast of the network's synthesis (a smooth offset) goes; its fine detail stays."""
    smooth = torch.nn.functional.interpolate(torch.rand(2, 1, 8, 8), size=(64, 64), mode="bicubic", align_corners=False).clamp(0, 1)
    warp = smooth.expand(-1, 3, -1, -1) * 0.6 + 0.2  # a grey picture
    checker = ((torch.arange(64)[:, None] + torch.arange(64)[None]) % 2).float() * 0.1 - 0.05
    cast = torch.tensor([0.12, -0.05, 0.08]).view(1, 3, 1, 1)
    toned = toned_to(warp + cast + checker, warp)
    inner = (..., slice(8, -8), slice(8, -8))
    assert (toned - (warp + checker))[inner].abs().max() < 0.01
    assert (toned[:, 0] - toned[:, 1])[:, 8:-8, 8:-8].abs().max() < 0.01, "a grey picture stays grey"


def test_a_black_and_white_photo_is_not_tinted_where_the_network_fills(fitter, portraits) -> None:  # type: ignore[no-untyped-def]
    """The network below draws everything pink and blends it wherever the warp has holes; the
    output of a grey photo, turned so that the cheek opens holes, stays grey."""
    torch.manual_seed(0)
    generator = Generator(ModelConfig(resolution=32, base=4, corr_channels=8, warp_inputs=True, refine_region="holes"))
    with torch.no_grad():
        generator.to_rgb.bias.copy_(torch.tensor([3.0, -3.0, -1.0, 4.0]))  # pink, fully blended
    grey = portraits["lp_s12"].mean(-1, keepdims=True).round().astype("uint8").repeat(3, -1)
    reenactor = Reenactor(grey, fitter, method=NeuralStage(generator, torch.device("cpu"), runtime="torch"))
    source = reenactor.source.params
    driving = source.replace(rotation=source.rotation @ torch.tensor([[0.94, 0, 0.34], [0, 1, 0], [-0.34, 0, 0.94]]))
    seen: list[torch.Tensor] = []
    generator.to_rgb.register_forward_hook(lambda _, __, out: seen.append(torch.sigmoid(out[:, :3])))
    batch = reenactor.reenact(driving, source)
    assert seen and float((seen[0][:, 0] - seen[0][:, 1]).mean()) > 0.5, "the network did draw pink"
    assert float(batch.stage.holes.sum()) > 0
    crops = torch.from_numpy(batch.crops).float()
    # Untoned, this fill reaches 175 levels of colour; what remains is the network's own detail.
    assert float((crops.amax(-1) - crops.amin(-1)).max()) <= 10, "no colour in the output of a grey photo"


@needs_onnxruntime
def test_onnx_runtime_refines_as_pytorch_does(fitter, portraits) -> None:  # type: ignore[no-untyped-def]
    """The CPU default runs the network's per-frame part under ONNX Runtime: the same synthesis
    and blend as PyTorch for every frame, in the same chunks, at any batch size."""
    torch.manual_seed(0)
    generator = Generator(ModelConfig(resolution=32, base=4, corr_channels=8, warp_inputs=True, refine_region="holes"))
    with torch.no_grad():
        generator.to_rgb.bias[3] = 4.0
    stages = {runtime: NeuralStage(generator, torch.device("cpu"), runtime=runtime) for runtime in ("torch", "onnxruntime")}
    assert NeuralStage(generator, torch.device("cpu")).runtime == "onnxruntime", "the CPU default"
    bound = {runtime: Reenactor(portraits["lp_s12"], fitter, method=stage).stage for runtime, stage in stages.items()}
    calls: list[int] = []
    onnx_refine = bound["onnxruntime"].refine
    bound["onnxruntime"].refine = lambda features, pncc, *rest: calls.append(len(pncc)) or onnx_refine(features, pncc, *rest)
    pncc, warp = torch.rand(7, 3, 32, 32), torch.rand(7, 3, 32, 32)
    holes = torch.zeros(7, 1, 32, 32)
    holes[1:6, :, 10:16, 12:20] = 1
    with torch.inference_mode():
        expected, got = (bound[runtime]._refinement(pncc, warp, holes) for runtime in ("torch", "onnxruntime"))
    assert calls == [4, 1], "frames with holes only, CPU_NETWORK_BATCH at a time"
    assert float(expected[1].amax()) > 0.9, "the blend opens in the holes, so the comparison means something"
    for torch_out, onnx_out in zip(expected, got):
        assert torch.allclose(torch_out, onnx_out, atol=1e-4)


def test_runtime_choices_are_checked() -> None:
    from facereenact.errors import ConfigError

    refining = Generator(ModelConfig(resolution=32, base=4, corr_channels=8, warp_inputs=True, refine_region="holes"))
    with pytest.raises(ConfigError, match="runtime must be one of"):
        NeuralStage(refining, torch.device("cpu"), runtime="tensorrt")
    plain = Generator(ModelConfig(resolution=32, base=4, corr_channels=8))
    assert NeuralStage(plain, torch.device("cpu")).runtime == "torch", "a network that does not refine the warp stays in PyTorch"
    with pytest.raises(ConfigError, match="only a warp-refining network"):
        NeuralStage(plain, torch.device("cpu"), runtime="onnxruntime")


@needs_onnxruntime
def test_a_network_onnx_runtime_cannot_take_runs_in_pytorch(monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    """An exporter or runtime of another version may fail: ``auto`` then keeps PyTorch and says
    so once; asking for ONNX Runtime explicitly is a one-line error."""
    from facereenact.errors import NotAvailableError
    from facereenact.model import inference

    def broken(*_: object) -> None:
        raise RuntimeError("Exporting the operator 'aten::grid_sampler' to ONNX opset version 17 is not supported\nmore")

    monkeypatch.setattr(inference, "OnnxRefiner", broken)
    refining = Generator(ModelConfig(resolution=32, base=4, corr_channels=8, warp_inputs=True, refine_region="holes"))
    with caplog.at_level("WARNING"):
        stage = NeuralStage(refining, torch.device("cpu"))
    assert stage.runtime == "torch" and "grid_sampler" in caplog.text and "more" not in caplog.text
    with pytest.raises(NotAvailableError, match="ONNX Runtime could not take the network"):
        NeuralStage(refining, torch.device("cpu"), runtime="onnxruntime")
