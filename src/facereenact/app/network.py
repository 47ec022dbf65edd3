"""``export`` and ``release``: a trained network as an ONNX graph, or cut down to a release file."""

from __future__ import annotations

from pathlib import Path

from facereenact.errors import OutputError


def export_file(checkpoint: Path, output: Path, check: bool) -> float | None:
    """Write the generator of ``checkpoint`` as ONNX; with ``check``, the largest difference
    between ONNX Runtime's output and PyTorch's."""
    from facereenact.model.export import check_onnx, export_onnx
    from facereenact.model.inference import load_generator

    if output.suffix != ".onnx":
        raise OutputError(f"{output}: the output must end in .onnx")
    generator = load_generator(checkpoint)
    export_onnx(generator, output)
    return check_onnx(generator, output) if check else None


def release_file(checkpoint: Path, output: Path, provenance: dict[str, str]) -> str:
    """Cut a training checkpoint down to a release; returns its SHA-256."""
    from facereenact.model.release import write_release

    return write_release(checkpoint, output, provenance)
