"""The portrait preview: every detected face with its fitted mesh and landmarks, beside its PNCC.

The same picture as ``facereenact fit``'s overlay, shrunk for the page, so a creator sees at
once which face will be animated and whether the fit sits on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facereenact.errors import NoFaceError
from facereenact.face3d.fitter import FaceFitter
from facereenact.face3d.params import FaceParams
from facereenact.face3d.records import pose_summary
from facereenact.face3d.visualize import fit_overlay
from facereenact.io.image import read_image, write_image
from facereenact.io.media import read_still

#: Widest preview sent to the page (the overlay is two pictures wide).
PREVIEW_WIDTH = 960


@dataclass
class SourcePreview:
    width: int
    height: int
    #: Per face, largest first: box (x0, y0, x1, y1) and yaw/pitch/roll in degrees.
    faces: list[dict[str, Any]]

    def describe(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "faces": self.faces}


def make_source_preview(fitter: FaceFitter, image_path: Path, preview_path: Path, name: str, video: bool = False) -> SourcePreview:
    """Decode the portrait (by content; a source ``video``'s first frame), fit every face and
    write the overlay to ``preview_path``.

    Raises:
        InputError: the file is not a decodable image (or is too large or too small).
        NoFaceError: no face was found.
    """
    image = read_still(image_path) if video else read_image(image_path)
    faces = fitter.fit_image(image)
    if not faces:
        raise NoFaceError(f"no face found in {name}")
    params = FaceParams.cat([face.params for face in faces])
    overlay = fit_overlay(image, fitter.model, params.to(fitter.device), mesh_opacity=0.5, mesh_every=4)
    write_image(preview_path, _shrink(overlay, PREVIEW_WIDTH))
    poses = pose_summary(params)
    described = [
        {"box": [round(float(v), 1) for v in face.detection.box], **{k: pose[k] for k in ("yaw", "pitch", "roll")}}
        for face, pose in zip(faces, poses)
    ]
    return SourcePreview(int(image.shape[1]), int(image.shape[0]), described)


def _shrink(image: np.ndarray, width: int) -> np.ndarray:
    if image.shape[1] <= width:
        return image
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
