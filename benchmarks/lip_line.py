"""Where the mesh's lips part, against the picture's inner lips, before and after the lip-line offset.

For every portrait and the first frame of every clip: the fit (as ``animate`` fits and binds a photo),
the upper and lower edges of the mesh's strip of triangles bridging the lips, and MediaPipe's
upper and lower inner-lip contours. Per face, the median vertical miss of each edge across the
mouth (positive: the mesh's edge lies above the picture's line), in inter-ocular distances,
without and with :class:`~facereenact.face3d.lipline.LipLineOffsets`, and the share of the offset
kept (less than 1 where the whole would turn a triangle of the face over).

Usage::

    python benchmarks/lip_line.py [--data ../shared/data] [--out lip_line.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facereenact.app.locations import resolve_assets  # noqa: E402
from facereenact.errors import FaceReenactError  # noqa: E402
from facereenact.face3d.fitter import FaceFitter  # noqa: E402
from facereenact.face3d.lipline import EYE_CORNERS, LipLineOffsets, edge_shifts  # noqa: E402
from facereenact.io.image import read_image  # noqa: E402
from facereenact.io.video import iter_frames  # noqa: E402
from facereenact.pipeline.sources import held_apart  # noqa: E402


def _misses(fitter: FaceFitter, lips: LipLineOffsets, picture: np.ndarray) -> dict[str, float] | None:
    fit = fitter.fit_one(picture)
    if fit.points is None:
        return None
    model, points = fitter.model, fit.points[:, :2].astype(np.float64)
    params = held_apart(model, fit.params)  # as a bound source's
    eye_distance = float(np.linalg.norm(points[list(EYE_CORNERS[0])].mean(0) - points[list(EYE_CORNERS[1])].mean(0)))
    offsets = lips.offsets(model, params, [points])
    row: dict[str, float] = {}
    for when, offset in (("before", None), ("after", offsets)):
        strip = model.vertices(params, offset)[0, lips.strip, :2].double().numpy()
        shifts = edge_shifts(strip, lips.strip_upper, points, limit=np.inf)
        assert shifts is not None
        row[f"upper_{when}"] = float(np.median(shifts[1])) / eye_distance
        row[f"lower_{when}"] = float(np.median(shifts[2])) / eye_distance
    whole = lips.whole_offsets(model, params, [points])
    row["kept"] = float(offsets.abs().sum() / whole.abs().sum().clamp(min=1e-9)) if torch.count_nonzero(whole) else 0.0
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    fitter = FaceFitter(resolve_assets(None))
    lips = LipLineOffsets(fitter.model)
    pictures = [(path.stem, lambda path=path: read_image(path)) for path in sorted((args.data / "portraits").glob("*.jpg"))]
    pictures += [(path.stem, lambda path=path: next(iter_frames(path))) for path in sorted((args.data / "clips").glob("*.mp4"))]
    faces: dict[str, dict[str, float] | None] = {}
    for name, load in pictures:
        try:
            faces[name] = _misses(fitter, lips, load())
        except FaceReenactError as error:
            print(f"{name}: {error}", flush=True)
            continue
        print(name, faces[name], flush=True)
    rows = [row for row in faces.values() if row is not None]
    summary = {key: float(np.median([abs(row[key]) for row in rows])) for key in ("upper_before", "lower_before", "upper_after", "lower_after")}
    summary |= {"faces": len(rows), "held_back": sum(row["kept"] < 0.999 for row in rows), "not_moved": sum(row["kept"] < 0.001 for row in rows)}
    print(json.dumps(summary, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps({"summary": summary, "faces": faces}, indent=1))


if __name__ == "__main__":
    main()
