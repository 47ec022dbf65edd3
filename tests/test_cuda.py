"""The pipeline on a CUDA device agrees with the CPU (runs only where a CUDA device is)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

FRAMES = 16


@pytest.fixture(scope="module")
def inputs(data_dir: Path) -> tuple[np.ndarray, list[np.ndarray], float]:
    from facereenact.io.image import read_image
    from facereenact.io.video import iter_frames, probe_video

    clip = data_dir / "clips" / "hdtf_aoc.mp4"
    return read_image(data_dir / "portraits" / "lp_s1.jpg"), list(iter_frames(clip, FRAMES)), probe_video(clip).fps


def _animate(assets, device: str, inputs, neural: bool) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    from facereenact.face3d.fitter import FaceFitter
    from facereenact.model.inference import load_stage
    from facereenact.model.release import shipped_checkpoint
    from facereenact.pipeline.reenactor import Reenactor

    image, frames, fps = inputs
    fitter = FaceFitter(assets, device=device)
    fit = fitter.track(frames, fps)
    stage = load_stage(shipped_checkpoint(), device=device) if neural else None
    reenactor = Reenactor(image, fitter, method=stage)
    crops = np.concatenate([reenactor.reenact(fit.params[i : i + 8], fit.params[0], paste=False).crops for i in range(0, FRAMES, 8)])
    return fit.landmarks, crops.astype(np.int16)


@pytest.mark.parametrize("neural", [False, True], ids=["warp", "neural"])
def test_tracking_and_animation_on_cuda_match_the_cpu(assets, inputs, neural: bool) -> None:  # type: ignore[no-untyped-def]
    cpu_landmarks, cpu_crops = _animate(assets, "cpu", inputs, neural)
    gpu_landmarks, gpu_crops = _animate(assets, "cuda", inputs, neural)
    assert np.median(np.linalg.norm(cpu_landmarks - gpu_landmarks, axis=-1)) < 0.5  # pixels
    difference = np.abs(cpu_crops - gpu_crops)
    assert difference.mean() < 1.0, f"mean difference {difference.mean():.2f} levels"
    assert (difference > 16).mean() < 0.01, f"{100 * (difference > 16).mean():.2f} % of values off by more than 16 levels"


def test_animate_on_cuda_writes_the_video_with_audio(assets, data_dir: Path, tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:  # type: ignore[no-untyped-def]
    """The command's path: frames are generated in a background thread, on the device."""
    from facereenact.app.animate import animate_file
    from facereenact.face3d.fitter import FaceFitter
    from facereenact.io.video import probe_video
    from facereenact.pipeline.request import AnimateRequest, GenerationMethod

    output = tmp_path / "cuda.mp4"
    request = AnimateRequest(method=GenerationMethod.warp, max_frames=FRAMES)
    report = animate_file(FaceFitter(assets, device="cuda"), request, data_dir / "portraits" / "lp_s1.jpg", data_dir / "clips" / "hdtf_aoc.mp4", output)
    info = probe_video(output)
    assert report.frames == FRAMES and info.frame_count == FRAMES and info.has_audio
    assert not [w for w in recwarn if "CUDA context" in str(w.message)]
