"""The web page's sources beyond one still face: a source video uploaded and re-acted, and a
choice of several or all faces of a group photo, through the same request options."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="FastAPI is not installed (pip install 'facereenact[web]')")
pytest.importorskip("httpx", reason="httpx (FastAPI's TestClient) is not installed (pip install 'facereenact[test]')")

from fastapi.testclient import TestClient  # noqa: E402

from facereenact.io.image import read_image, write_image  # noqa: E402
from facereenact.io.video import VideoWriter, read_frames  # noqa: E402
from facereenact.web.app import create_app  # noqa: E402
from facereenact.web.settings import ServerSettings  # noqa: E402

from .conftest import count_frames, video_size  # noqa: E402

MAX_FRAMES = 5
OCTETS = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def client(fitter, data_dir: Path) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    settings = ServerSettings(max_jobs=1, max_waiting=4, max_frames=MAX_FRAMES, max_upload_mb=2, max_seconds=2.5, data=data_dir)
    with TestClient(create_app(settings, fitter=fitter)) as test_client:
        yield test_client


def _upload(client: TestClient, kind: str, path: Path) -> dict:
    answer = client.post(f"/api/uploads/{kind}", params={"name": path.name}, content=path.read_bytes(), headers=OCTETS)
    assert answer.status_code == 200, answer.json()
    return answer.json()


def _finished(client: TestClient, body: dict) -> dict:
    answer = client.post("/api/jobs", json=body)
    assert answer.status_code in (200, 202), answer.json()
    deadline = time.monotonic() + 120
    while (status := client.get(f"/api/jobs/{answer.json()['id']}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    return status


def _result(client: TestClient, status: dict, tmp_path: Path) -> Path:
    assert status["state"] == "done", status
    path = tmp_path / "result.mp4"
    path.write_bytes(client.get(status["video"]).content)
    return path


def test_the_video_options_start_at_the_shared_defaults(client: TestClient) -> None:
    defaults = client.get("/api/config").json()["defaults"]
    assert (defaults["video_motion"], defaults["length"], defaults["audio"]) == ("expression", "shortest", "driving")


def test_a_source_video_is_uploaded_and_re_acted(client: TestClient, data_dir: Path, tmp_path: Path) -> None:
    source = _upload(client, "source", data_dir / "clips" / "vx_radio10.mp4")
    assert source["video"]["frames"] == 61 and source["video"]["has_audio"] and len(source["faces"]) == 1
    silent = tmp_path / "driver.mp4"  # another person, 1.2 s, no audio
    with VideoWriter(silent, 25) as writer:
        writer.write_batch(read_frames(data_dir / "clips" / "pcavs_00098.mp4", 30))
    driving = _upload(client, "driving", silent)
    body = {"source": source["id"], "driving": driving["id"], "method": "warp", "paste_back": False, "crop_size": 128, "length": "loop", "audio": "source"}
    output = _result(client, _finished(client, body), tmp_path)
    assert count_frames(output) == (MAX_FRAMES, 1)  # the source video's audio, which the driver lacks
    bad = client.post("/api/jobs", json={**body, "length": "forever"})
    assert bad.status_code in (400, 422)


def test_every_face_or_several_of_a_group_photo(client: TestClient, data_dir: Path, tmp_path: Path) -> None:
    pair = np.concatenate([cv2.resize(read_image(data_dir / "portraits" / f"{name}.jpg"), (240, 240), interpolation=cv2.INTER_AREA) for name in ("lp_s1", "lp_s5")], 1)
    photo = tmp_path / "pair.png"
    write_image(photo, pair)
    source = _upload(client, "source", photo)
    assert len(source["faces"]) == 2
    body = {"source": source["id"], "example": "vx_radio10", "method": "warp", "face_index": "all"}
    output = _result(client, _finished(client, body), tmp_path)
    assert video_size(output) == (480, 240)
    beyond = client.post("/api/jobs", json={**body, "face_index": [0, 5]})
    assert beyond.status_code == 400 and beyond.json()["error"] == "face 6 asked for, but pair.png has 2 face(s)"
