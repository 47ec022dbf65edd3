"""ONNX export of the generator, checked against PyTorch with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from facereenact.errors import OutputError
from facereenact.io.atomic import atomic_output
from facereenact.model.generator import Generator

#: Largest absolute difference allowed between ONNX Runtime's and PyTorch's output images.
TOLERANCE = 1e-3


class _ImageOnly(nn.Module):
    """The generator with plain tensor inputs and the image as its only output."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.generator(*inputs).image


def input_names(generator: Generator) -> list[str]:
    names = ["source_image", "source_pncc", "driving_pncc"]
    return names + (["warp_image", "warp_holes"] if generator.config.warp_inputs else [])


def example_inputs(generator: Generator, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    size = generator.config.resolution
    generator_rng = torch.Generator().manual_seed(seed)
    channels = [3, 3, 3] + ([3, 1] if generator.config.warp_inputs else [])
    return tuple(torch.rand(batch, c, size, size, generator=generator_rng) for c in channels)


def export_onnx(generator: Generator, output: Path, opset: int = 17) -> None:
    """Write the generator as ONNX (inputs (B, C, R, R) in [0, 1], output ``image``), batch dynamic."""
    names = input_names(generator)
    with atomic_output(output) as tmp:
        torch.onnx.export(
            _ImageOnly(generator.eval()), example_inputs(generator), str(tmp), input_names=names, output_names=["image"],
            dynamic_axes={name: {0: "batch"} for name in [*names, "image"]}, opset_version=opset, dynamo=False,
        )  # fmt: skip


def check_onnx(generator: Generator, path: Path, batch: int = 2) -> float:
    """The largest absolute difference between ONNX Runtime and PyTorch on random inputs
    (a batch other than the export's, which also checks the dynamic batch axis)."""
    import onnxruntime

    inputs = example_inputs(generator, batch, seed=1)
    with torch.no_grad():
        expected = generator.eval()(*inputs).image.numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["image"], {name: x.numpy() for name, x in zip(input_names(generator), inputs)})
    difference = float(np.abs(got - expected).max())
    if not difference <= TOLERANCE:
        raise OutputError(f"the ONNX export differs from PyTorch by {difference:.2e} (more than {TOLERANCE:g})")
    return difference
