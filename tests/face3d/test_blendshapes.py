"""The blendshape signal: channels, regions, gaps, mirroring and which face is read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facereenact.face3d.blendshapes import CHANNEL_NAMES, CHANNELS, N_BLENDSHAPES, Region, fill_gaps, mirror_order, nearest_face, region_mask


def test_every_channel_belongs_to_exactly_one_region() -> None:
    masks = np.stack([region_mask([region]) for region in Region])
    assert (masks.sum(0) == 1).all()
    assert region_mask(Region).all() and not region_mask([]).any()
    assert len(set(CHANNEL_NAMES)) == N_BLENDSHAPES == sum(len(names) for names in CHANNELS.values())


def test_mirroring_trades_left_and_right() -> None:
    order = mirror_order()
    assert sorted(order) == list(range(N_BLENDSHAPES)) and (order[order] == np.arange(N_BLENDSHAPES)).all(), "a permutation, its own inverse"
    assert CHANNEL_NAMES[order[CHANNEL_NAMES.index("eyeBlinkLeft")]] == "eyeBlinkRight"
    assert CHANNEL_NAMES[order[CHANNEL_NAMES.index("mouthLeft")]] == "mouthRight"
    assert CHANNEL_NAMES[order[CHANNEL_NAMES.index("browInnerUp")]] == "browInnerUp"


@settings(max_examples=50, deadline=None)
@given(found=st.lists(st.booleans(), min_size=1, max_size=30), seed=st.integers(0, 1000))
def test_unread_frames_lie_between_their_neighbours(found: list[bool], seed: int) -> None:
    mask = np.array(found)
    scores = np.random.default_rng(seed).random((len(mask), 3)).astype(np.float32)
    filled = fill_gaps(scores, mask)
    if not mask.any():
        assert (filled == 0).all()
        return
    assert np.array_equal(filled[mask], scores[mask]), "read frames are kept"
    good = np.flatnonzero(mask)
    for index in np.flatnonzero(~mask):
        before, after = good[good < index], good[good > index]
        neighbours = scores[[*before[-1:], *after[:1]]]
        assert (filled[index] >= neighbours.min(0) - 1e-6).all() and (filled[index] <= neighbours.max(0) + 1e-6).all()


def test_the_face_read_is_the_one_the_fitter_follows() -> None:
    def face(x: float) -> tuple[np.ndarray, np.ndarray]:
        points = np.zeros((478, 3), np.float32)
        points[:, 0] = x + np.linspace(-40, 40, 478)
        return np.full(N_BLENDSHAPES, x, np.float32), points

    faces = [face(100.0), face(400.0)]
    chosen = nearest_face(faces, np.array([390.0, 0.0]), size=80.0)
    assert chosen is not None and chosen[0][0] == 400.0
    assert nearest_face(faces, np.array([250.0, 0.0]), size=80.0) is None, "no face where the fitter's is"
    assert nearest_face(faces, np.array([100.0, 0.0]), size=float("nan")) is None
    assert nearest_face([], np.array([100.0, 0.0]), size=80.0) is None


def test_mirrored_parameters_swap_the_sides(fitter) -> None:  # type: ignore[no-untyped-def]
    from facereenact.face3d.mirror import ParamMirror
    from facereenact.face3d.params import FaceParams

    params = FaceParams(
        rotation=torch.eye(3)[None], scale=torch.ones(1), translation=torch.zeros(1, 2), shape=torch.zeros(1, 40), expression=torch.zeros(1, 10),
        blendshapes=torch.zeros(1, N_BLENDSHAPES),
    )  # fmt: skip
    params.blendshapes[0, CHANNEL_NAMES.index("eyeBlinkLeft")] = 0.7
    mirrored = ParamMirror(fitter.model)(params, width=100.0)
    assert float(mirrored.blendshapes[0, CHANNEL_NAMES.index("eyeBlinkRight")]) == pytest.approx(0.7)
    assert float(mirrored.blendshapes[0, CHANNEL_NAMES.index("eyeBlinkLeft")]) == 0.0


def test_readers_made_in_several_threads_at_once_leave_stderr_where_it_was(assets) -> None:  # type: ignore[no-untyped-def]
    """MediaPipe's set-up chatter is silenced by pointing file descriptor 2 at /dev/null for a
    moment; readers made at once in two threads (the source prepared while the driving video is
    tracked) must not leave it there, or every later message and error of the process is lost."""
    import os
    import threading

    from facereenact.face3d.blendshapes import BlendshapeReader

    before = os.fstat(2)
    made: list[BlendshapeReader] = []
    together = threading.Barrier(2)

    def make() -> None:
        for _ in range(6):
            together.wait()
            made.append(BlendshapeReader(assets))

    threads = [threading.Thread(target=make) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = os.fstat(2)
    for reader in made:
        reader.close()
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino), "file descriptor 2 was left pointing elsewhere"


def test_silencing_drops_mediapipes_chatter_and_keeps_every_other_line(capfd: pytest.CaptureFixture[str]) -> None:
    """While a reader is made, what another thread writes (a server's log line) still arrives."""
    import os

    from facereenact.face3d.blendshapes import mediapipe_chatter_silenced

    with mediapipe_chatter_silenced():
        os.write(2, b"W0000 00:00:1 face_landmarker_graph.cc:181] Sets FaceBlendshapesGraph acceleration\n")
        os.write(2, b"upload of clip.mp4 cut off: the client went away\n")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    written = capfd.readouterr().err
    assert written == "upload of clip.mp4 cut off: the client went away\n", written


def test_a_process_started_while_silenced_does_not_hold_up_the_caller(capfd: pytest.CaptureFixture[str]) -> None:
    """A child started by another thread while descriptor 2 is the relay's pipe inherits it and
    keeps it open for as long as it lives; leaving the silencing must not wait for that child."""
    import os
    import subprocess
    import sys
    import time

    from facereenact.face3d.blendshapes import RELAY_GRACE_S, mediapipe_chatter_silenced

    with mediapipe_chatter_silenced():
        os.write(2, b"a line written before the child started\n")
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        left = time.monotonic()
    try:
        assert time.monotonic() - left < RELAY_GRACE_S + 3
    finally:
        child.kill()
        child.wait()
    time.sleep(0.2)  # the relay reads the pipe's end once the child is gone
    assert capfd.readouterr().err == "a line written before the child started\n"
