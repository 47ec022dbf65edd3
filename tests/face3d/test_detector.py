"""FaceBoxes: anchors, decoding, NMS, and real portraits."""

from __future__ import annotations

import torch

from facereenact.face3d.detector import decode_boxes, make_anchors, nms


def test_anchor_count_matches_the_heads() -> None:
    height, width = 240, 320
    cells = [(-(-height // s)) * (-(-width // s)) for s in (32, 64, 128)]
    assert len(make_anchors(height, width)) == cells[0] * 21 + cells[1] + cells[2]


def test_zero_offsets_decode_to_the_anchor() -> None:
    anchors = make_anchors(64, 64)
    boxes = decode_boxes(torch.zeros(len(anchors), 4), anchors)
    assert torch.allclose((boxes[:, :2] + boxes[:, 2:]) / 2, anchors[:, :2])
    assert torch.allclose(boxes[:, 2:] - boxes[:, :2], anchors[:, 2:])


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.6, 0.9, 0.7])
    assert nms(boxes, scores, 0.3).tolist() == [1, 2]


def test_each_portrait_has_exactly_one_face(fitter, portraits) -> None:  # type: ignore[no-untyped-def]
    counts = {name: len(fitter.detector.detect(image)) for name, image in portraits.items()}
    assert len(counts) == 8
    assert all(n == 1 for n in counts.values()), counts


def test_a_face_free_image_has_no_face(fitter) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 1, 3))
    assert fitter.detector.detect(gradient) == []
