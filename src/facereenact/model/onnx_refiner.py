"""The warp-refining generator run by ONNX Runtime, for CPU inference.

The same network with the same weights: exported from the loaded generator once per process
(about a second, in memory), then run on ONNX Runtime's CPU kernels, which fuse each convolution
with its bias and activation and keep activations in a blocked layout between layers. On the
2-core machine that makes the shipped model's per-frame cost about 1.4× lower than eager
PyTorch's (``facereenact bench`` times both in one run); outputs agree to ~1e-4.

Only what the pipeline calls per frame is exported: the source's features are computed once per
source by PyTorch (:meth:`Generator.encode_source`) and passed in. The network is cut in two
graphs at its flow warps: ONNX Runtime's ``GridSample`` took 15 % of the network's time, ten
times what PyTorch's ``grid_sample`` takes for the same two warps, which therefore run in
PyTorch between the correspondence graph and the decoder graph.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from torch import nn

from facereenact.model.attention import warp_by_flow
from facereenact.model.generator import Generator, SourceFeatures

if TYPE_CHECKING:
    import onnxruntime


class _Correspond(nn.Module):
    """(source keys, values; driving PNCC) → driving features and the correspondence."""

    inputs = ("keys", "values", "driving_pncc")
    outputs = ("d4", "warped", "flow", "confidence")

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, keys: torch.Tensor, values: torch.Tensor, driving_pncc: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch = driving_pncc.shape[0]
        d4, match = self.generator.correspond(driving_pncc, keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1))
        return d4, match.warped, match.flow, match.confidence


class _Decode(nn.Module):
    """(driving features, correspondence, warped source features, condition) → (synthesis, blend)."""

    inputs = ("d4", "warped", "confidence", "skip2", "skip1", "driving_pncc", "warp", "holes")
    outputs = ("synthesis", "blend")

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d4, warped, confidence, skip2, skip1, driving_pncc, warp, holes = inputs
        condition = self.generator.condition(driving_pncc, warp, holes)
        return self.generator.refinement(self.generator.decode(d4, warped, confidence, skip2, skip1, condition), holes)


class OnnxRefiner:
    """(source features, driving PNCC, warp, holes) → (synthesis, blend), as
    :meth:`Generator.refine` computes them; the source features batch 1, the per-frame inputs
    any batch. Raises whatever the exporter or ONNX Runtime raise (not installed included)."""

    def __init__(self, generator: Generator, threads: int):
        import onnxruntime

        if not generator.config.warp_inputs:
            raise ValueError("only a generator that refines the warp (warp_inputs) runs under ONNX Runtime")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle workers sleep instead of spinning: the rest of the pipeline (rasterizer, warp,
        # encoder) runs on the same cores between network calls.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        correspond, decode = _export(generator)
        self.correspond = onnxruntime.InferenceSession(correspond, options, providers=["CPUExecutionProvider"])
        self.decode = onnxruntime.InferenceSession(decode, options, providers=["CPUExecutionProvider"])

    def __call__(self, features: SourceFeatures, driving_pncc: torch.Tensor, warp: torch.Tensor, holes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = len(driving_pncc)
        d4, warped, flow_array, confidence = _run(self.correspond, _Correspond.outputs, keys=features.keys, values=features.values, driving_pncc=driving_pncc)
        flow = torch.from_numpy(flow_array)
        skip2, skip1 = (warp_by_flow(f.expand(batch, -1, -1, -1), flow) for f in (features.half, features.full))
        given: dict[str, torch.Tensor | np.ndarray] = dict(
            d4=d4, warped=warped, confidence=confidence, skip2=skip2, skip1=skip1, driving_pncc=driving_pncc, warp=warp, holes=holes
        )
        synthesis, blend = _run(self.decode, _Decode.outputs, **given)
        return torch.from_numpy(synthesis), torch.from_numpy(blend)


def _run(session: onnxruntime.InferenceSession, outputs: tuple[str, ...], **given: torch.Tensor | np.ndarray) -> list[np.ndarray]:
    """The session's ``outputs`` for the inputs it takes among ``given`` (the exporter drops
    inputs a graph does not use)."""
    feed = {}
    for item in session.get_inputs():
        value = given[item.name]
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        feed[item.name] = np.ascontiguousarray(array, dtype=np.float32)
    return session.run(list(outputs), feed)


def _export(generator: Generator) -> tuple[bytes, bytes]:
    """The correspondence and decoder graphs as ONNX models (bytes), the driving batch dynamic."""
    size = generator.config.resolution
    batch = 2
    with torch.inference_mode(False), torch.no_grad():  # tracing cannot record inference tensors
        generator = generator.eval()
        features = generator.encode_source(torch.zeros(1, 3, size, size), torch.zeros(1, 3, size, size))
        driving = torch.zeros(batch, 3, size, size)
        expanded = features.expand(batch)
        d4, match = generator.correspond(driving, expanded.keys, expanded.values)
        skip2, skip1 = (warp_by_flow(f.expand(batch, -1, -1, -1), match.flow) for f in (features.half, features.full))
        examples: dict[type[_Correspond | _Decode], tuple[torch.Tensor, ...]] = {
            _Correspond: (features.keys, features.values, driving),
            _Decode: (d4, match.warped, match.confidence, skip2, skip1, driving, driving, torch.zeros(batch, 1, size, size)),
        }
        graphs = []
        for part, inputs in examples.items():
            per_frame = [name for name in (*part.inputs, *part.outputs) if name not in ("keys", "values")]
            buffer = io.BytesIO()
            with warnings.catch_warnings():  # the exporter's notes on deprecation and on instance norm
                warnings.simplefilter("ignore")
                # cast: torch annotates f as a path, but its TorchScript exporter (dynamo=False) writes to a BytesIO too.
                torch.onnx.export(
                    part(generator), inputs, cast(str, buffer), input_names=list(part.inputs), output_names=list(part.outputs),
                    dynamic_axes={name: {0: "batch"} for name in per_frame}, opset_version=17, dynamo=False,
                )  # fmt: skip
            graphs.append(buffer.getvalue())
    return graphs[0], graphs[1]
