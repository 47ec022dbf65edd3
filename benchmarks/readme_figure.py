"""The README's picture: the identity-matched PNCC, drawn from the 3D face model alone.

Top row: a "driving" identity in four poses and expressions. Bottom row: the same poses and
expressions rebuilt with the "source" identity, which is what the generator is shown. Equal
colours are the same surface point on both faces. Both identities are synthetic (fixed, seeded
coefficients of the morphable model), so the picture holds no frame of a real person:

    python benchmarks/readme_figure.py --assets ../shared/assets -o docs/images/identity-matched-pncc.png
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from facereenact.app.locations import resolve_assets
from facereenact.face3d.morphable import MorphableModel, identity_matched, load_morphable_model
from facereenact.face3d.params import MODEL_FACE_WIDTH, N_EXPRESSION, N_SHAPE, FaceParams, angles_to_rotation
from facereenact.face3d.pncc import render_pncc

CELL = 220  # pixels per face
LABEL_WIDTH = 120  # the row labels on the left
HEADER = 36  # the column titles on top
FOOTER = 30  # the key at the bottom
BACKGROUND = (24, 24, 28)  # RGB
TEXT = (225, 225, 225)
DIM_TEXT = (150, 150, 150)
FONT = cv2.FONT_HERSHEY_SIMPLEX

#: (title, yaw, pitch, roll in degrees, expression as multiples of the regressor's std per coefficient)
POSES: list[tuple[str, float, float, float, dict[int, float]]] = [
    ("frontal, mouth closed", 0.0, 0.0, 0.0, {0: 1.0}),
    ("turned, mouth open", -30.0, 5.0, 0.0, {4: 2.0, 0: -1.0}),
    ("turned, smiling", 28.0, -5.0, 6.0, {2: -2.0, 1: 1.5}),
    ("tilted, mouth half open", 10.0, -15.0, -12.0, {4: 1.0, 9: -1.5}),
]
#: Landmark outlines drawn over the PNCC for orientation: brows, nose, eyes, lips.
OUTLINES: list[tuple[list[int], bool]] = [
    (list(range(17, 22)), False),
    (list(range(22, 27)), False),
    (list(range(27, 31)), False),
    (list(range(31, 36)), False),
    (list(range(36, 42)), True),
    (list(range(42, 48)), True),
    (list(range(48, 60)), True),
    (list(range(60, 68)), True),
]


def identity(std: np.ndarray, seed: int, strength: float) -> torch.Tensor:
    """A fixed synthetic identity: seeded normal coefficients scaled by the regressor's spread."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.standard_normal(N_SHAPE) * std[12 : 12 + N_SHAPE] * strength).float()[None]


def driving_params(mean: np.ndarray, std: np.ndarray, shape: torch.Tensor) -> FaceParams:
    """Four faces (one per column) with ``shape``'s identity, centred in a CELL² square."""
    angles, expressions = [], []
    for _title, yaw, pitch, roll, expression in POSES:
        angles.append([yaw, pitch, roll])
        coefficients = mean[12 + N_SHAPE :].copy()
        for index, amount in expression.items():
            coefficients[index] += amount * std[12 + N_SHAPE + index]
        expressions.append(coefficients)
    n = len(POSES)
    return FaceParams(
        rotation=angles_to_rotation(torch.tensor(angles, dtype=torch.float32)),
        scale=torch.full((n,), 0.58 * CELL / MODEL_FACE_WIDTH),
        translation=torch.tensor([[CELL / 2, CELL / 2 + 4]] * n, dtype=torch.float32),
        shape=shape.expand(n, N_SHAPE).clone(),
        expression=torch.from_numpy(np.stack(expressions)).float().reshape(n, N_EXPRESSION),
    )


def render_row(model: MorphableModel, params: FaceParams) -> list[np.ndarray]:
    """PNCC renders (RGB uint8, CELL²) on the dark background, with the landmark outlines.

    The triangles bridging the lips are left out, so an open mouth shows as a dark opening."""
    lips_apart = replace(model, triangles=model.triangles[~model.mouth_gap])
    pncc, mask, _ = render_pncc(lips_apart, model.vertices(params), CELL, CELL)
    pncc = pncc.permute(0, 2, 3, 1).numpy()
    mask = mask.permute(0, 2, 3, 1).numpy()
    background = np.array(BACKGROUND, np.float32) / 255.0
    images = [np.round((p * m + background * (1.0 - m)) * 255.0).astype(np.uint8) for p, m in zip(pncc, mask)]
    landmarks = model.landmarks(params)[..., :2].numpy()
    for image, points in zip(images, landmarks):
        lines = image.copy()
        for indices, closed in OUTLINES:
            polyline = np.round(points[indices] * 4).astype(np.int32)  # 2 bits of sub-pixel precision
            cv2.polylines(lines, [polyline], closed, (30, 30, 36), 1, cv2.LINE_AA, shift=2)
        cv2.addWeighted(lines, 0.6, image, 0.4, 0.0, dst=image)
    return images


def put_text(image: np.ndarray, text: str, x: int, y: int, scale: float, colour: tuple[int, int, int], centred: bool = False) -> None:
    (width, _), _ = cv2.getTextSize(text, FONT, scale, 1)
    if centred:
        x -= width // 2
    cv2.putText(image, text, (x, y), FONT, scale, colour, 1, cv2.LINE_AA)


def compose(top: list[np.ndarray], bottom: list[np.ndarray]) -> np.ndarray:
    width = LABEL_WIDTH + CELL * len(POSES)
    height = HEADER + 2 * CELL + FOOTER
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND
    for column, (title, *_rest) in enumerate(POSES):
        x = LABEL_WIDTH + column * CELL
        canvas[HEADER : HEADER + CELL, x : x + CELL] = top[column]
        canvas[HEADER + CELL : HEADER + 2 * CELL, x : x + CELL] = bottom[column]
        put_text(canvas, title, x + CELL // 2, 24, 0.45, TEXT, centred=True)
    for row, (label, note) in enumerate([("driving", "its own identity"), ("rebuilt", "source identity")]):
        y = HEADER + row * CELL + CELL // 2
        put_text(canvas, label, 12, y - 4, 0.6, TEXT)
        put_text(canvas, note, 12, y + 18, 0.4, DIM_TEXT)
    cv2.line(canvas, (LABEL_WIDTH, HEADER + CELL), (width - 8, HEADER + CELL), (60, 60, 66), 1)
    key = "colour = the surface point's place on the mean face (same colour, same point); lines: the model's landmarks"
    put_text(canvas, key, width // 2, height - 11, 0.4, DIM_TEXT, centred=True)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/images/identity-matched-pncc.png"))
    parser.add_argument("--assets", help="model files folder (default: FACEREENACT_ASSETS or the per-user folder; see docs/assets.md)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    assets = resolve_assets(args.assets)
    model = load_morphable_model(assets)
    stats = assets.load_pickle("3ddfa/param_mean_std_62d_120x120.pkl")
    mean, std = np.asarray(stats["mean"], np.float64), np.asarray(stats["std"], np.float64)

    # Two clearly different people: one identity and its opposite about the mean face.
    person = identity(std, seed=7, strength=2.0)
    driving = driving_params(mean, std, person)
    source = driving_params(mean, std, -person)[:1]
    rebuilt = identity_matched(source, driving)  # source identity, driving pose and expression

    canvas = compose(render_row(model, driving), render_row(model, rebuilt))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.output} ({canvas.shape[1]}×{canvas.shape[0]}, {args.output.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
