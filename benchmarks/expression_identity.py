"""Does carrying the driver's expression carry its identity too?

dlib descriptor similarity of cross-identity outputs to the source photo and to the driving
frame, with the blendshapes and without them (the 10 regressor coefficients alone). The drivers
and portraits of ``expression_following.py`` (4 clips × 8 portraits), every 10th of the first
120 driving frames, ``animate``'s defaults (relative motion, the warp) on the face crop.
Descriptors are of unit length; similarity is their dot product.

Usage::

    python benchmarks/expression_identity.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facereenact.app.locations import resolve_assets  # noqa: E402
from facereenact.evaluate.identity import DescriptorService  # noqa: E402
from facereenact.face3d.fitter import FaceFitter  # noqa: E402
from facereenact.face3d.transfer import neutral_reference  # noqa: E402
from facereenact.io.image import read_image  # noqa: E402
from facereenact.io.video import read_frames  # noqa: E402
from facereenact.pipeline.reenactor import Reenactor  # noqa: E402

CLIPS = ("stk_vscodehappy", "dpe_d", "pcavs_00098", "lp_d6")
FRAMES, EVERY = 120, 10


def describe(service: DescriptorService, images: list[np.ndarray], landmarks: np.ndarray) -> np.ndarray:
    """Unit descriptors (N, 128) of faces located by their 68 landmarks (N, 68, ≥2)."""
    boxes = np.concatenate([landmarks[..., :2].min(1), landmarks[..., :2].max(1)], axis=1)
    found = service.submit(np.stack(images), boxes).result()
    return found / np.linalg.norm(found, axis=-1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    assets = resolve_assets(None)
    service = DescriptorService(background=False)
    portraits = sorted((args.data / "portraits").glob("*.jpg"))
    for label, blendshapes in (("this version", True), ("blendshapes at zero", False)):
        fitter = FaceFitter(assets, blendshapes=blendshapes)
        to_source: list[float] = []
        to_driver: list[float] = []
        for clip in CLIPS:
            frames = read_frames(args.data / "clips" / f"{clip}.mp4", FRAMES)
            fit = fitter.track(list(frames), 25.0)
            reference = neutral_reference(fit.params, 0)
            picks = list(range(EVERY // 2, len(frames), EVERY))
            drivers = describe(service, [frames[i] for i in picks], fit.landmarks[picks])
            for portrait in portraits:
                reenactor = Reenactor(read_image(portrait), fitter)
                batch = reenactor.reenact(
                    fit.params[picks], reference, paste=False, frames=frames[picks], points=fit.points_of(np.array(picks)), reference_points=fit.points_at(0)
                )  # fmt: skip
                outputs = describe(service, list(batch.crops), reenactor.bound.to_crop(fitter.model.landmarks(batch.targets)).numpy())
                source = describe(service, [reenactor.source_crop_uint8()], reenactor.bound.to_crop(fitter.model.landmarks(reenactor.source.params)).numpy())
                ok = np.isfinite(outputs).all(1) & np.isfinite(drivers).all(1)
                to_source += list(outputs[ok] @ source[0])
                to_driver += list((outputs[ok] * drivers[ok]).sum(1))
        near_source, near_driver = np.array(to_source), np.array(to_driver)
        print(
            f"{label}: {len(near_source)} frames, similarity to the source {near_source.mean():.4f}, "
            f"to the driver {near_driver.mean():.4f}, closer to the source {np.mean(near_source > near_driver):.1%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
