"""Pictures of what the 3D front end found: mesh wireframes, landmarks and PNCC panels."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from facereenact.face3d.morphable import MorphableModel
from facereenact.face3d.params import FaceParams
from facereenact.face3d.pncc import render_pncc


def to_uint8_image(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) floats in [0, 1] → (B, H, W, 3) uint8."""
    return (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def draw_mesh(image: np.ndarray, vertices: np.ndarray, triangles: np.ndarray, every: int = 2) -> np.ndarray:
    """Wireframe of (a subset of) the mesh's front-facing triangles on a copy of ``image``."""
    out = image.copy()
    corners = vertices[triangles[::every], :2]
    edge_a, edge_b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    front = edge_a[:, 0] * edge_b[:, 1] - edge_a[:, 1] * edge_b[:, 0] < 0
    polygons = [np.round(c * 4).astype(np.int32) for c in corners[front]]
    cv2.polylines(out, polygons, True, (90, 220, 90), 1, cv2.LINE_AA, shift=2)
    return out


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, radius: int = 2) -> np.ndarray:
    out = image.copy()
    radius = max(radius, round(max(image.shape[:2]) / 400))
    for x, y in np.round(landmarks[:, :2]).astype(int):
        cv2.circle(out, (int(x), int(y)), radius, (240, 40, 40), -1, cv2.LINE_AA)
    return out


def fit_overlay(image: np.ndarray, model: MorphableModel, params: FaceParams, mesh_opacity: float = 1.0, mesh_every: int = 2) -> np.ndarray:
    """Side by side: the image with mesh and landmarks of every face | the faces' PNCC.

    ``mesh_opacity`` below 1 lets the face show through the wireframe and ``mesh_every`` thins it
    (every k-th triangle): what a small preview needs to stay readable."""
    with torch.no_grad():
        vertices = model.vertices(params)
        landmarks = model.landmarks(params).cpu().numpy()
        pncc, mask, _ = render_pncc(model, vertices, image.shape[0], image.shape[1])
    meshed = image
    triangles = model.triangles.cpu().numpy()
    for face_vertices in vertices.cpu().numpy():
        meshed = draw_mesh(meshed, face_vertices, triangles, mesh_every)
    left = meshed if mesh_opacity >= 1 else cv2.addWeighted(meshed, mesh_opacity, image, 1 - mesh_opacity, 0)
    for face_landmarks in landmarks:
        left = draw_landmarks(left, face_landmarks)
    colours = to_uint8_image(pncc)
    covered = mask.squeeze(1).cpu().numpy() > 0
    right = np.zeros_like(image)
    for colour, cover in zip(colours, covered):  # several faces: paint each where it is visible
        right[cover] = colour[cover]
    return np.concatenate([left, right], axis=1)
