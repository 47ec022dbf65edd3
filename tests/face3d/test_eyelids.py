"""The model's eyelids: never crossed, and matched to a photo's."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facereenact.face3d.blendshapes import CHANNEL_NAMES, N_BLENDSHAPES, BlendshapeReader, Region, nearest_face, region_mask
from facereenact.face3d.eyelids import EYELIDS, eyelid_gaps, keep_eyelids_apart, match_eyelids, measured_gaps
from facereenact.face3d.params import FaceParams, angles_to_rotation

SOURCE = FaceParams(
    rotation=angles_to_rotation(torch.tensor([[10.0, 0.0, 0.0]])),
    scale=torch.tensor([2.0]),
    translation=torch.tensor([[100.0, 50.0]]),
    shape=torch.zeros(1, 40),
    expression=torch.zeros(1, 10),
)


def _with_scores(params: FaceParams, **scores: float) -> FaceParams:
    values = torch.zeros(len(params), N_BLENDSHAPES)
    for name, value in scores.items():
        values[:, CHANNEL_NAMES.index(name)] = value
    return params.replace(blendshapes=values)


@settings(max_examples=30, deadline=None)
@given(blink=st.floats(0.0, 1.0), squint=st.floats(0.0, 1.0), wide=st.floats(0.0, 0.5))
def test_eyelids_never_pass_through_each_other(fitter, blink: float, squint: float, wide: float) -> None:  # type: ignore[no-untyped-def]
    """An eye shut beyond shut is brought back to closed by a change of the eye scores only;
    an open eye is left exactly as it was."""
    model = fitter.model
    params = _with_scores(SOURCE, eyeBlinkLeft=blink, eyeBlinkRight=blink * 0.8, eyeSquintLeft=squint, eyeSquintRight=squint, eyeWideLeft=wide)
    params = params.replace(shape=torch.zeros(1, 40), expression=torch.zeros(1, 10))
    before = eyelid_gaps(model, params.shape, params.expression, params.blendshapes)
    kept = keep_eyelids_apart(model, params)
    after = eyelid_gaps(model, kept.shape, kept.expression, kept.blendshapes)
    face_size = float(model.mean[:, 1].max() - model.mean[:, 1].min())
    assert bool((after > -1e-4 * face_size).all()), "no lid below the other"
    crossed = before < 0
    assert bool((after[crossed].abs() < 1e-3 * face_size).all()), "a crossed eye is now just closed"
    if not bool(crossed.any()):
        assert torch.equal(kept.blendshapes, params.blendshapes)
    others = ~torch.from_numpy(region_mask([Region.eyes]))
    assert torch.equal(kept.blendshapes[:, others], params.blendshapes[:, others]), "only the eye scores change"


def test_a_photos_eyelids_are_where_mediapipe_sees_them(fitter, assets, portraits) -> None:  # type: ignore[no-untyped-def]
    """The regressor's lids of an open eye stand too close; the fit of a photo opens them to the
    gap MediaPipe's landmarks measure, and the matching changes the eye scores only."""
    reader = BlendshapeReader(assets)
    for name in ("lp_s1", "lp_s7"):
        image = portraits[name]
        fitted = fitter.fit_one(image)
        centre = fitted.landmarks[:, :2].mean(0)
        read = nearest_face(reader.faces(image), centre, float(np.ptp(fitted.landmarks[:, :2], axis=0).max()))
        assert read is not None
        wanted = measured_gaps(read[1], fitted.params, fitter.model)
        landmarks = fitted.landmarks
        pictured = [float(np.mean(landmarks[lower.numpy(), 1]) - np.mean(landmarks[upper.numpy(), 1])) for upper, lower in EYELIDS]
        assert np.allclose(pictured, wanted[0].numpy(), atol=0.05 * float(wanted.max())), f"{name}: lids at {pictured}, MediaPipe {wanted}"
        others = ~torch.from_numpy(region_mask([Region.eyes]))
        opened = match_eyelids(fitter.model, fitted.params.replace(blendshapes=torch.from_numpy(read[0])[None]), wanted)
        assert torch.equal(opened.blendshapes[:, others], torch.from_numpy(read[0])[None][:, others]), "only the eye scores change"
        again = match_eyelids(fitter.model, fitted.params, wanted)
        assert torch.allclose(again.blendshapes, fitted.params.blendshapes, atol=0.03), "matching a matched face changes it little"
    reader.close()


def test_each_eye_opens_in_proportion_to_the_drivers(fitter) -> None:  # type: ignore[no-untyped-def]
    """Whatever the two people's eye sizes: the driver at rest gives the source's own eyes, the
    driver's eye half shut gives the source's half shut, shut gives shut."""
    from facereenact.face3d.eyelids import follow_eyelids
    from facereenact.face3d.transfer import MotionOptions, target_params

    model = fitter.model
    generator = torch.Generator().manual_seed(3)
    source = _with_scores(SOURCE, eyeBlinkLeft=-0.3, eyeBlinkRight=-0.2).replace(shape=torch.randn(1, 40, generator=generator) * 0.5)
    driver_shape = torch.randn(1, 40, generator=generator) * 0.5
    reference = _with_scores(SOURCE, eyeBlinkLeft=0.1, eyeBlinkRight=0.1).replace(shape=driver_shape)

    def gaps(params: FaceParams) -> torch.Tensor:
        return eyelid_gaps(model, params.shape, params.expression, params.blendshapes)

    at_rest = gaps(reference)
    blink = CHANNEL_NAMES.index("eyeBlinkLeft"), CHANNEL_NAMES.index("eyeBlinkRight")
    # (2 blink scores, 2 eyes): how the gaps change per unit of each blink score
    per_blink = torch.cat([gaps(_with_scores(SOURCE, **{CHANNEL_NAMES[c]: 1.0})) for c in blink]) - gaps(_with_scores(SOURCE))
    frames = []
    for fraction in (1.0, 0.5, 0.0):  # the driver's eyes open to this share of its rest
        scores = reference.blendshapes.clone()
        scores[0, list(blink)] += torch.linalg.solve(per_blink.T, (fraction - 1) * at_rest[0])
        frames.append(reference.replace(blendshapes=scores))
    driving = FaceParams.cat(frames)
    assert torch.allclose(gaps(driving) / at_rest, torch.tensor([[1.0, 1.0], [0.5, 0.5], [0.0, 0.0]]), atol=1e-3)
    targets = follow_eyelids(model, source, driving, reference, target_params(source, driving, reference, MotionOptions()))
    opening = gaps(targets) / gaps(source)
    assert torch.allclose(opening, torch.tensor([[1.0, 1.0], [0.5, 0.5], [0.0, 0.0]]), atol=1e-3), opening
    others = ~torch.from_numpy(region_mask([Region.eyes]))
    assert torch.equal(targets.blendshapes[:, others], target_params(source, driving, reference, MotionOptions()).blendshapes[:, others])
