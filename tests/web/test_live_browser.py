"""The Live tab in a real browser: Debian's chromium, headless, with a fake camera that plays a
clip made from ../shared/data (``--use-file-for-fake-video-capture``). The page must show
animated frames whose face is the source's (dlib's descriptor, as ``evaluate`` measures
identity) and whose head follows the fake camera's (the yaw of the face in each screenshot's
camera view against the yaw of the portrait beside it).

The fake camera's clip is the driving clip turned in the picture's plane, ±15° over four
seconds: a clear head roll the portrait must follow (the output's roll lags by its latency, so
the correlation is taken at the best of a few screenshots' shifts). Skips with
the reason when Playwright, chromium, dlib, the example data or the model files are missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)")
pytest.importorskip("uvicorn", reason="uvicorn is not installed (pip install 'facereenact[web]')")
pytest.importorskip("dlib", reason="dlib is not installed (pip install 'facereenact[eval]')")

from facereenact.face3d.fitter import FaceFit, FaceFitter  # noqa: E402
from facereenact.face3d.params import rotation_to_angles  # noqa: E402
from facereenact.io.video import iter_frames  # noqa: E402
from facereenact.web.app import create_app  # noqa: E402
from facereenact.web.settings import ServerSettings  # noqa: E402

from .test_browser import CHROMIUM, _open, _serving  # noqa: E402

CLIP = "hdtf_aoc"
PORTRAIT = "lp_s12"
FPS = 25
SIDE = 320
SHOTS = 16
ROLL_DEGREES = 15.0


def _fake_camera_clip(clip: Path, target: Path, frames: int = 4 * FPS) -> Path:
    """A .y4m (what chromium's fake camera plays) of ``clip``'s first ``frames`` frames at
    SIDE², turned by ROLL_DEGREES · sin(2π t / the clip's length)."""
    with av.open(str(target), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("rawvideo", rate=FPS)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        for index, frame in enumerate(iter_frames(clip, frames)):
            small = cv2.resize(frame, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
            turn = cv2.getRotationMatrix2D((SIDE / 2, SIDE / 2), ROLL_DEGREES * np.sin(2 * np.pi * index / frames), 1.0)
            small = cv2.warpAffine(small, turn, (SIDE, SIDE), borderMode=cv2.BORDER_REFLECT)
            for packet in stream.encode(av.VideoFrame.from_ndarray(small, format="rgb24").reformat(format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return target


@pytest.fixture(scope="module")
def camera_browser(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    y4m = _fake_camera_clip(data_dir / "clips" / f"{CLIP}.mp4", tmp_path_factory.mktemp("camera") / "camera.y4m")
    args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={y4m}"]
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield launched
        launched.close()


def _largest(fitter: FaceFitter, image: np.ndarray) -> FaceFit | None:
    """The largest face in ``image`` (None: no face)."""
    faces = fitter.fit_image(image)
    return faces[0] if faces else None


def test_the_live_tab_animates_the_portrait_with_the_fake_camera(camera_browser, fitter, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from facereenact.evaluate.identity import DlibFaceDescriptor

    settings = ServerSettings(max_live=1, data=data_dir)
    portrait = data_dir / "portraits" / f"{PORTRAIT}.jpg"
    shots: list[tuple[np.ndarray, np.ndarray]] = []
    with _serving(create_app(settings, fitter=fitter, allowed_hosts=["127.0.0.1"])) as url, _open(camera_browser, url) as page:
        page.set_input_files("#source-file", str(portrait))
        sync_api.expect(page.locator("#source-preview")).to_be_visible()
        page.click("#tab-live")
        sync_api.expect(page.locator("#driving-card")).to_be_hidden()
        page.click("#live-start")
        sync_api.expect(page.locator("#live-output")).to_be_visible(timeout=60_000)
        sync_api.expect(page.locator("#live-stats")).to_contain_text("frames/s", timeout=15_000)
        sync_api.expect(page.locator("#live-recentre")).to_be_enabled()
        views = page.locator(".live-views").bounding_box()
        camera, output = page.locator("#live-camera").bounding_box(), page.locator("#live-output").bounding_box()
        for _ in range(SHOTS):  # the camera view and the portrait beside it, in one picture each time
            picture = cv2.imdecode(np.frombuffer(page.screenshot(clip=views), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
            shots.append(tuple(_inside(picture, box, views) for box in (camera, output)))  # type: ignore[arg-type]
            time.sleep(0.15)
        stats = page.locator("#live-stats").inner_text()
        page_shot = page.screenshot(full_page=True)
        page.click("#live-recentre")
        page.click("#live-stop")
        sync_api.expect(page.locator("#live-start")).to_be_enabled()
    folder = Path(os.environ.get("FACEREENACT_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    strip = folder / "web-live.png"
    (folder / "web-live-page.png").write_bytes(page_shot)
    rows = [np.concatenate([cv2.resize(view, (round(view.shape[1] * 300 / view.shape[0]), 300)) for view in pair], 1) for pair in shots[::5]]
    cv2.imwrite(str(strip), np.concatenate(rows, 0)[..., ::-1])
    print(f"\nscreenshots: {strip}; {stats}")

    pose_fitter = FaceFitter(fitter.assets, blendshapes=False)  # the head pose alone: no MediaPipe
    fits = [[_largest(pose_fitter, view) for view in pair] for pair in shots]
    rolls = np.array([[float(rotation_to_angles(f.params.rotation)[0, 2]) if f else np.nan for f in pair] for pair in fits])
    assert np.isfinite(rolls).mean() > 0.75, rolls
    assert np.nanmax(rolls[:, 0]) - np.nanmin(rolls[:, 0]) > ROLL_DEGREES, "the fake camera's head rolls from side to side"
    correlation = max(_correlation(rolls[: SHOTS - shift, 0], rolls[shift:, 1]) for shift in range(3))
    assert correlation > 0.7, (correlation, rolls)

    describe = DlibFaceDescriptor()
    source_image = cv2.imread(str(portrait))[..., ::-1]
    source_fit = _largest(pose_fitter, source_image)
    assert source_fit is not None
    source = describe.describe(np.ascontiguousarray(source_image), source_fit.detection.box)
    pairs = [(index, pair) for index, pair in enumerate(fits) if pair[0] and pair[1]][::5]
    to_source, to_driver = [], []
    for index, (camera_fit, output_fit) in pairs:
        driver = describe.describe(shots[index][0], camera_fit.detection.box)  # type: ignore[union-attr]
        output = describe.describe(shots[index][1], output_fit.detection.box)  # type: ignore[union-attr]
        to_source.append(float(np.linalg.norm(output - source)))
        to_driver.append(float(np.linalg.norm(output - driver)))
    assert len(pairs) >= 3 and max(to_source) < 0.5 and all(s < d for s, d in zip(to_source, to_driver)), (to_source, to_driver)
    print(f"roll correlation {correlation:.2f}; dlib distance to the source {max(to_source):.2f} at most, to the driver {min(to_driver):.2f} at least")


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    both = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[both], b[both])[0, 1])


def _inside(picture: np.ndarray, box: dict, origin: dict) -> np.ndarray:
    """The part of a screenshot taken at ``origin`` (a bounding box) inside an element's box."""
    left, top = round(box["x"] - origin["x"]), round(box["y"] - origin["y"])
    return np.ascontiguousarray(picture[top : top + round(box["height"]), left : left + round(box["width"])])
