"""Sources bound together (a source video's frames) give what each bound alone gives: the warp
and a warp-refining network bound to B sources turn the i-th into the i-th target."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from facereenact.face3d.params import FaceParams
from facereenact.face3d.transfer import MotionOptions
from facereenact.pipeline.sources import BoundSources
from facereenact.stage import StageMethod

SIZE = 96


def _neural() -> StageMethod:
    from facereenact.model.config import PRESETS
    from facereenact.model.generator import Generator
    from facereenact.model.inference import NeuralStage

    torch.manual_seed(0)
    config = replace(PRESETS["tiny"], warp_inputs=True, refine_region="holes")
    return NeuralStage(Generator(config), torch.device("cpu"), runtime="torch")


@pytest.mark.parametrize("neural", [False, True], ids=["warp", "neural"])
def test_sources_bound_together_match_each_bound_alone(fitter, portraits, neural: bool) -> None:  # type: ignore[no-untyped-def]
    method = _neural() if neural else None
    pictures = [portraits["lp_s1"], portraits["lp_s5"]]
    faces = [fitter.fit_one(picture) for picture in pictures]
    params = FaceParams.cat([face.params for face in faces])
    landmarks = np.stack([face.landmarks for face in faces])
    points = [face.points for face in faces]  # each face's lips placed by its own landmarks
    # Each source driven by the other's expression and lips (the first's fit as the reference).
    driving = FaceParams.cat([faces[1].params, faces[0].params])
    driving_points = [points[1], points[0]]
    motion = MotionOptions()
    together = BoundSources(fitter.model, pictures, params, landmarks, SIZE, 2.0, method, points)
    assert together.offsets is not None and all(torch.count_nonzero(offset) > 0 for offset in together.offsets)
    crops, result, _ = together.generate(motion, driving, faces[0].params, bases=params, driving_points=driving_points, reference_points=points[0])
    assert crops.shape == (2, SIZE, SIZE, 3)
    for i in range(2):
        alone = BoundSources(fitter.model, pictures[i : i + 1], params[i : i + 1], landmarks[i : i + 1], SIZE, 2.0, method, points[i : i + 1])
        crop, single, _ = alone.generate(motion, driving[i : i + 1], faces[0].params, driving_points=driving_points[i : i + 1], reference_points=points[0])
        difference = np.abs(crop[0].astype(int) - crops[i].astype(int))
        assert difference.max() <= 1, f"source {i}: up to {difference.max()} levels apart"
        assert torch.allclose(single.field[0], result.field[i], atol=1e-3)
    made = list(together.pasted(crops, result))
    assert [m.shape for m in made] == [p.shape for p in pictures]  # each into its own picture
