"""The identity embedding: dlib's descriptor tells the people of ../shared/data apart, the
background service gives the inline answers, and a stopped worker is one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facereenact.errors import AssetError
from facereenact.evaluate.identity import DescriptorService, DescriptorWorkerError, DlibFaceDescriptor, describe_clips, identity_validation
from facereenact.io.identities import read_identity_groups
from tests.conftest import clip_paths

#: Clips that show the same person (../shared/data/README.md, "Splitting"), as training groups them.
PERSON_OF = read_identity_groups(Path(__file__).resolve().parents[2] / "configs" / "shared-clips.identities.txt")
#: A quick subset: different people of varied footage, and one person in two clips.
QUICK_CLIPS = ["hdtf_aoc", "vr_face3", "dpe_s", "grid_bbaf2n", "pcavs_00015", "spc_W036_happy", "stk_nice", "mimic_german", "lp_d6"]
FRAMES = (0, 25, 50)
REQUIRED_RATE = 0.95


@pytest.fixture(scope="module")
def describer() -> DlibFaceDescriptor:
    try:
        return DlibFaceDescriptor()
    except AssetError as error:
        pytest.skip(f"dlib descriptor unavailable: {error}")


def _locate(fitter):  # type: ignore[no-untyped-def]
    def locate(frame: np.ndarray):  # type: ignore[no-untyped-def]
        found = sorted(fitter.detector.detect(frame), key=lambda d: d.area, reverse=True)
        return found[0].box if found else None

    return locate


def test_identity_validation_on_synthetic_people() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 128))
    people = {f"c{i}": centres[i] + 0.1 * rng.normal(size=(3, 128)) for i in range(5)}
    assert identity_validation(people).rate == 1.0
    result = identity_validation({name: rng.normal(size=(3, 128)) for name in people})
    assert 0.3 < result.rate < 0.7  # no identity information: a coin flip
    # Two clips of one person: without saying so, each is the other's "other person".
    people["c5"] = centres[0] + 0.1 * rng.normal(size=(3, 128))
    assert identity_validation(people).rate < 1.0
    assert identity_validation(people, {"c5": "c0"}).rate == 1.0
    with pytest.raises(ValueError):
        identity_validation({"only": people["c0"]})


def test_descriptor_separates_people_on_a_few_clips(data_dir: Path, fitter, describer: DlibFaceDescriptor) -> None:  # type: ignore[no-untyped-def]
    paths = [p for p in clip_paths(data_dir) if p.stem in QUICK_CLIPS]
    descriptors = describe_clips(paths, (0, 40), _locate(fitter), describer)
    assert all(np.isfinite(d).all() for d in descriptors.values())
    result = identity_validation(descriptors, PERSON_OF)
    assert result.clips == len(QUICK_CLIPS)
    assert result.rate >= REQUIRED_RATE, f"rate {result.rate:.3f}"


@pytest.mark.slow
def test_descriptor_separates_people_on_all_clips(data_dir: Path, fitter, describer: DlibFaceDescriptor) -> None:  # type: ignore[no-untyped-def]
    descriptors = describe_clips(clip_paths(data_dir), FRAMES, _locate(fitter), describer)
    result = identity_validation(descriptors, PERSON_OF)
    print(f"identity validation: {result.rate:.4f} of {result.comparisons} comparisons over {result.clips} clips")
    assert result.clips >= 78
    assert result.rate >= REQUIRED_RATE


def test_background_service_matches_inline_and_describes_repeats_once(portraits, fitter, describer: DlibFaceDescriptor) -> None:  # type: ignore[no-untyped-def]
    images = [portraits["lp_s12"], portraits["lp_s5"], portraits["lp_s12"]]
    boxes = np.array([_locate(fitter)(image) for image in images], dtype=np.float64)
    boxes = np.concatenate([boxes, np.full((1, 4), np.nan)])
    images.append(np.zeros((64, 64, 3), np.uint8))
    expected = describer.describe_all(images, boxes)
    assert np.isnan(expected[3]).all() and np.isfinite(expected[:3]).all()
    with DescriptorService(background=True) as service:
        pending = service.submit(images, boxes)
        again = service.submit(images[:1], boxes[:1])
        got = pending.result()
        assert again._parts[0][0] is pending._parts[0][0], "a repeated image is not described again"
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    with DescriptorService(background=False) as service:
        np.testing.assert_allclose(service.submit(images, boxes).result(), expected, rtol=1e-6)


def test_a_stopped_worker_is_one_clear_error(portraits, fitter, describer: DlibFaceDescriptor) -> None:  # type: ignore[no-untyped-def]
    image = portraits["lp_s12"]
    box = np.array([_locate(fitter)(image)], dtype=np.float64)
    with DescriptorService(background=True) as service:
        service._process.kill()  # type: ignore[union-attr]
        service._process.wait()  # type: ignore[union-attr]
        with pytest.raises(DescriptorWorkerError, match="descriptor worker stopped"):
            service.submit([image], box).result()
