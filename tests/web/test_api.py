"""The web app's API with FastAPI's TestClient and the real pipeline on short clips: files are
judged by content, limits hold, failures give one clear message and leave the server answering,
and with two job slots two runs go at once while a third waits its turn."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="FastAPI is not installed (pip install 'facereenact[web]')")
pytest.importorskip("httpx", reason="httpx (FastAPI's TestClient) is not installed (pip install 'facereenact[test]')")

from fastapi.testclient import TestClient  # noqa: E402

from facereenact.web.app import create_app  # noqa: E402
from facereenact.web.settings import ServerSettings  # noqa: E402

from .conftest import count_frames, video_size  # noqa: E402

MAX_FRAMES = 6
OCTETS = {"Content-Type": "application/octet-stream"}  # a type another site's page cannot send unasked
CLIP = "vx_radio10"  # 2.0 s, 61 frames, with audio
PORTRAIT = "lp_s12"  # 375×500


@pytest.fixture(scope="module")
def client(fitter, data_dir: Path) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    settings = ServerSettings(max_jobs=2, max_waiting=4, max_frames=MAX_FRAMES, max_upload_mb=1, max_seconds=2.5, data=data_dir)
    with TestClient(create_app(settings, fitter=fitter)) as test_client:
        yield test_client


def _upload(client: TestClient, kind: str, path: Path, name: str | None = None):  # type: ignore[no-untyped-def]
    return client.post(f"/api/uploads/{kind}", params={"name": name or path.name}, content=path.read_bytes(), headers=OCTETS)


def _healthy(client: TestClient) -> None:
    answer = client.get("/api/health")
    assert answer.status_code == 200 and answer.json()["ok"] is True


def _wait(client: TestClient, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/api/jobs/{job_id}").json()
        if status["state"] not in ("queued", "running"):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


@pytest.fixture(scope="module")
def portrait_id(client: TestClient, data_dir: Path) -> str:
    return _upload(client, "source", data_dir / "portraits" / f"{PORTRAIT}.jpg").json()["id"]


@pytest.fixture(scope="module")
def clip_id(client: TestClient, data_dir: Path) -> str:
    return _upload(client, "driving", data_dir / "clips" / f"{CLIP}.mp4").json()["id"]


def test_the_page_and_its_files_are_served_with_a_strict_content_policy(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'id="source-file"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200
    assert client.get("/api/config").json()["max_frames"] == MAX_FRAMES


def test_the_page_starts_at_the_defaults_every_interface_shares(client: TestClient) -> None:
    from facereenact.pipeline.request import AnimateRequest

    defaults, shared = client.get("/api/config").json()["defaults"], AnimateRequest()
    assert defaults["method"] == shared.method.value == "neural"
    assert defaults["mode"] == shared.mode.value and defaults["crop_size"] == shared.crop_size
    assert defaults["paste_back"] is not shared.crop_only and defaults["driving_mouth"] is shared.driving_mouth
    assert defaults["transfer"] == "both" and defaults["compare"] is shared.compare
    assert defaults["pose_scale"] == shared.pose_scale and defaults["expression_scale"] == shared.expression_scale
    assert defaults["regions"] == ["eyes", "gaze", "brows", "mouth"] and set(defaults["regions"]) == {r.value for r in shared.regions}


def test_expression_controls_reach_the_request_and_bad_ones_are_refused(client: TestClient, portrait_id: str) -> None:
    from facereenact.web.service import JobChoices

    request = JobChoices(source="x", regions=["mouth"], expression_scale=1.5, pose_scale=0.0).animate_request(None)
    assert {r.value for r in request.regions} == {"mouth"} and request.expression_scale == 1.5 and request.pose_scale == 0.0
    for body, message in (({"expression_scale": 3}, "expression_scale 3.0 is outside 0.0–2.0"), ({"regions": ["nose"]}, "regions nose is not one of")):
        answer = client.post("/api/jobs", json={"source": portrait_id, "example": CLIP, **body})
        assert answer.status_code == 400 and message in answer.json()["error"], answer.json()


def test_a_non_image_portrait_is_refused_by_its_content_not_its_name(client: TestClient, data_dir: Path, tmp_path: Path) -> None:
    fake = tmp_path / "portrait.jpg"
    fake.write_text("these are not pixels")
    answer = _upload(client, "source", fake)
    assert answer.status_code == 400
    assert answer.json() == {"error": "portrait.jpg is not an image (could not decode it)"}
    # a real photo under a misleading name is accepted, and the name cannot climb out of its folder
    accepted = _upload(client, "source", data_dir / "portraits" / f"{PORTRAIT}.jpg", name="../../notes.txt")
    assert accepted.status_code == 200 and accepted.json()["name"] == "notes.txt"
    _healthy(client)


@pytest.mark.parametrize("name", ["preview.png", "PREVIEW.PNG", "source", "../preview.png"])
def test_an_upload_named_like_the_servers_own_files_is_kept_as_sent(client: TestClient, data_dir: Path, name: str) -> None:
    """The server writes the preview next to the upload: a client's name must not make them one file."""
    portrait = data_dir / "portraits" / f"{PORTRAIT}.jpg"
    described = _upload(client, "source", portrait, name=name).json()
    stored = client.app.state.service.uploads.get(described["id"])  # type: ignore[attr-defined]
    assert stored.path.read_bytes() == portrait.read_bytes() and stored.preview != stored.path
    assert described["name"] == Path(name.replace("\\", "/")).name


def test_the_portrait_preview_shows_the_fitted_face(client: TestClient, data_dir: Path, portrait_id: str) -> None:
    described = _upload(client, "source", data_dir / "portraits" / f"{PORTRAIT}.jpg").json()
    assert (described["width"], described["height"]) == (375, 500) and len(described["faces"]) == 1
    assert abs(described["faces"][0]["yaw"]) < 45
    picture = client.get(described["preview"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    preview = cv2.imdecode(np.frombuffer(picture.content, np.uint8), cv2.IMREAD_COLOR)
    assert preview.shape[:2] == (500, 750)  # the photo with its mesh | the PNCC
    assert preview[:, 375:].max() > 0 and preview[:, 375:, :].mean() < preview[:, :375].mean()  # PNCC on black


def test_a_portrait_without_a_face_is_refused(client: TestClient, faceless_image: Path) -> None:
    answer = _upload(client, "source", faceless_image)
    assert answer.status_code == 422 and answer.json() == {"error": "no face found in wall.png"}
    _healthy(client)


def test_an_over_size_upload_is_refused_and_never_stored(client: TestClient) -> None:
    uploads = client.app.state.service.uploads.root  # type: ignore[attr-defined]
    before = sorted(uploads.iterdir())
    body = b"\0" * 1_200_000
    declared = client.post("/api/uploads/driving", params={"name": "big.mp4"}, content=body, headers=OCTETS)
    assert declared.status_code == 413 and declared.json() == {"error": "big.mp4 is larger than the 1 MB upload limit"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        for _ in range(12):
            yield b"\0" * 100_000

    streamed = client.post("/api/uploads/source", params={"name": "big.jpg"}, content=chunks(), headers=OCTETS)
    assert streamed.status_code == 413 and streamed.json() == {"error": "big.jpg is larger than the 1 MB upload limit"}
    assert sorted(uploads.iterdir()) == before
    _healthy(client)


def test_driving_clips_are_checked_by_content_and_duration(client: TestClient, data_dir: Path, tmp_path: Path) -> None:
    still = _upload(client, "driving", data_dir / "portraits" / f"{PORTRAIT}.jpg", name="clip.mp4")
    assert still.status_code == 400 and still.json() == {"error": "clip.mp4 is an image, not a video"}
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(bytes(range(256)) * 64)
    garbage = _upload(client, "driving", junk)
    assert garbage.status_code == 400 and garbage.json()["error"].startswith("junk.mp4 is not a readable video")
    long = _upload(client, "driving", data_dir / "clips" / "grid_bbaf2n.mp4")  # 3.0 s
    assert long.status_code == 400 and long.json() == {"error": "grid_bbaf2n.mp4 lasts 3.0 s; the limit is 2.5 s"}
    fine = _upload(client, "driving", data_dir / "clips" / f"{CLIP}.mp4")
    assert fine.status_code == 200 and fine.json()["frames"] == 61 and fine.json()["has_audio"] is True
    _healthy(client)


def test_examples_are_the_data_folders_clips_within_the_duration_limit(client: TestClient) -> None:
    examples = client.get("/api/examples").json()
    names = {e["name"] for e in examples}
    assert CLIP in names and "grid_bbaf2n" not in names and all(e["seconds"] <= 2.5 for e in examples)
    assert client.get(f"/api/examples/{CLIP}").status_code == 200
    assert client.get("/api/examples/..%2Fportraits%2Flp_s12").status_code == 404


def test_a_clip_without_a_face_fails_its_job_with_a_clear_message_and_the_server_goes_on(
    client: TestClient, portrait_id: str, clip_id: str, faceless_video: Path
) -> None:
    uploaded = _upload(client, "driving", faceless_video)
    assert uploaded.status_code == 200  # a readable video: the face is looked for by the job
    job = client.post("/api/jobs", json={"source": portrait_id, "driving": uploaded.json()["id"], "method": "warp"}).json()
    status = _wait(client, job["id"])
    assert status["state"] == "failed" and status["message"] == "no face found in any frame of the video"
    assert not (client.app.state.service.root / "jobs" / job["id"]).exists()  # type: ignore[attr-defined]
    _healthy(client)
    again = client.post("/api/jobs", json={"source": portrait_id, "driving": clip_id, "method": "warp", "paste_back": False, "crop_size": 128}).json()
    assert _wait(client, again["id"])["state"] == "done"


def test_bad_job_requests_get_one_line(client: TestClient, portrait_id: str, clip_id: str) -> None:
    cases = [
        ({"source": "nope", "driving": clip_id}, 404, "the portrait is no longer on the server"),
        ({"source": portrait_id}, 400, "choose a driving clip or an example motion"),
        ({"source": portrait_id, "example": "missing"}, 404, "there is no example motion named 'missing'"),
        ({"source": portrait_id, "driving": clip_id, "method": "neural"}, 400, "the neural method needs a trained model"),
        # the default method is the network, as on the command line: this server has none
        ({"source": portrait_id, "driving": clip_id}, 400, "the neural method needs a trained model"),
        ({"source": portrait_id, "driving": clip_id, "method": "warp", "face_index": 3}, 400, "face 4 asked for, but lp_s12.jpg has 1 face(s)"),
        ({"source": portrait_id, "driving": clip_id, "crop_size": 9}, 400, "crop_size 9 is outside 64–1024"),
        ({"source": portrait_id, "driving": clip_id, "method": "fast"}, 422, "bad request: method"),
        ({"source": clip_id, "driving": clip_id}, 404, "the portrait is no longer on the server"),
    ]
    for body, code, message in cases:
        answer = client.post("/api/jobs", json=body)
        assert answer.status_code == code, (body, answer.json())
        assert answer.json()["error"].startswith(message), answer.json()
    assert client.get("/api/jobs/unknown").status_code == 404
    _healthy(client)


def test_two_jobs_run_at_once_and_a_third_waits_in_line_then_all_finish(
    client: TestClient, portrait_id: str, clip_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = [
        {"source": portrait_id, "driving": clip_id, "method": "warp"},
        {"source": portrait_id, "driving": clip_id, "method": "warp", "mode": "absolute", "transfer": "expression", "compare": True},
        {"source": portrait_id, "example": CLIP, "method": "warp", "paste_back": False, "crop_size": 128, "driving_mouth": False},
    ]
    assert client.get("/api/examples").status_code == 200  # examples probed: the three posts go at once
    ids = [client.post("/api/jobs", json=body).json()["id"] for body in bodies]
    seen: list[tuple[str, ...]] = []
    third_waiting_behind_two = False
    deadline = time.monotonic() + 90
    while True:
        statuses = [client.get(f"/api/jobs/{job_id}").json() for job_id in ids]
        states = tuple(f"{s['state']}{'@' + str(s['position']) if s['position'] else ''}" for s in statuses)
        if not seen or seen[-1] != states:
            seen.append(states)
        assert statuses[0]["running"] <= 2
        if statuses[0]["state"] == statuses[1]["state"] == "running" and statuses[2]["state"] == "queued":
            assert statuses[2]["position"] == 1 and statuses[2]["running"] == 2
            third_waiting_behind_two = True
        if all(s["state"] not in ("queued", "running") for s in statuses):
            break
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
    with capsys.disabled():
        print(f"\nobserved job states (position in line after @): {seen}")
    assert third_waiting_behind_two, seen
    assert [s["state"] for s in statuses] == ["done"] * 3, statuses
    first, second, third = statuses
    assert first["started_at"] < second["finished_at"] and second["started_at"] < first["finished_at"]  # ran at once
    assert third["started_at"] >= min(first["finished_at"], second["finished_at"])  # waited for a free slot

    for status in statuses:
        video = client.get(status["video"])
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        path = tmp_path / f"{status['id']}.mp4"
        path.write_bytes(video.content)
        assert count_frames(path) == (MAX_FRAMES, 1)  # the clip's audio is kept
        assert status["frames"] == MAX_FRAMES and any("first 6 frames" in note for note in status["notes"])
    assert video_size(tmp_path / f"{second['id']}.mp4") == (375 + 500 + 375, 500)  # portrait | driving (512² at height 500) | result
    assert video_size(tmp_path / f"{third['id']}.mp4") == (128, 128)  # the face crop only


def test_results_play_download_and_go_when_discarded(client: TestClient, portrait_id: str, clip_id: str) -> None:
    job = client.post("/api/jobs", json={"source": portrait_id, "driving": clip_id, "method": "warp", "paste_back": False, "crop_size": 128}).json()
    status = _wait(client, job["id"])
    folder = client.app.state.service.root / "jobs" / job["id"]  # type: ignore[attr-defined]
    assert sorted(p.name for p in folder.iterdir()) == ["result.mp4"]  # the inputs went when the job ended
    inline = client.get(status["video"])
    assert inline.headers["content-disposition"].startswith("inline")
    download = client.get(status["download"])
    assert download.headers["content-disposition"] == f'attachment; filename="{status["filename"]}"' and status["filename"] == "lp_s12-vx_radio10.mp4"
    part = client.get(status["video"], headers={"Range": "bytes=0-99"})  # the <video> element seeks with ranges
    assert part.status_code == 206 and len(part.content) == 100
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 204
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404 and not folder.exists()


def test_the_servers_folder_goes_when_it_stops_and_other_hosts_are_refused(fitter, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(ServerSettings(data=data_dir), fitter=fitter, allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1") as local:
        root = app.state.service.root
        image = io.BytesIO()
        image.write(cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes())
        local.post("/api/uploads/source", params={"name": "x.png"}, content=image.getvalue(), headers=OCTETS)
        assert root.is_dir()
        assert local.get("/api/health").status_code == 200
        assert local.get("/api/health", headers={"host": "attacker.example"}).status_code == 400
    assert not root.exists()


def test_with_a_checkpoint_the_neural_method_is_offered_and_runs(fitter, data_dir: Path, tiny_checkpoint: Path) -> None:  # type: ignore[no-untyped-def]
    settings = ServerSettings(max_frames=3, model=tiny_checkpoint, data=data_dir)
    with TestClient(create_app(settings, fitter=fitter)) as local:
        methods = [m["name"] for m in local.get("/api/config").json()["methods"]]
        assert methods == ["neural", "warp"], "the trained model is offered first (the default)"
        source = _upload(local, "source", data_dir / "portraits" / f"{PORTRAIT}.jpg").json()["id"]
        driving = _upload(local, "driving", data_dir / "clips" / f"{CLIP}.mp4").json()["id"]
        ids = [local.post("/api/jobs", json={"source": source, "driving": driving, "method": "neural", "paste_back": False}).json()["id"] for _ in range(2)]
        for job_id in ids:  # two at once: each binds its own copy of the stage
            status = _wait(local, job_id)
            assert status["state"] == "done" and status["frames"] == 3, status


def test_a_clip_cut_short_is_animated_as_far_as_it_goes_and_the_page_is_told(fitter, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = (data_dir / "clips" / f"{CLIP}.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip[: len(clip) // 2])
    with TestClient(create_app(ServerSettings(data=data_dir, work_dir=tmp_path), fitter=fitter)) as local:
        source = _upload(local, "source", data_dir / "portraits" / f"{PORTRAIT}.jpg").json()["id"]
        uploaded = _upload(local, "driving", cut)  # the clip's index is at its front: the cut file still opens
        assert uploaded.status_code == 200, uploaded.text
        job = local.post("/api/jobs", json={"source": source, "driving": uploaded.json()["id"], "method": "warp", "paste_back": False, "crop_size": 128}).json()
        status = _wait(local, job["id"])
        assert status["state"] == "done", status
        assert any("cut.mp4" in note and "frames" in note for note in status["notes"]), status["notes"]
