"""End to end in a real browser: Debian's chromium, headless, driven by Playwright, against the
server running on a free port. A creator's path (portrait → preview, clip → run → result plays →
download) and the three refusals a creator can meet, each shown as one line in the page.

Skips with the reason when Playwright, chromium (``/usr/bin/chromium`` or ``FACEREENACT_CHROMIUM``),
the example data or the model files are missing. The screenshot of the finished page is saved
in the test's temporary folder (its path is printed) or in ``FACEREENACT_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (pip install 'facereenact[web]')")

from facereenact.web.app import create_app  # noqa: E402
from facereenact.web.settings import ServerSettings  # noqa: E402

from .conftest import count_frames  # noqa: E402

CHROMIUM = Path(os.environ.get("FACEREENACT_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.is_file():
    pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install -y chromium, or set FACEREENACT_CHROMIUM)", allow_module_level=True)

CLIP = "vx_radio10"  # 2.0 s, 61 frames, with audio: the whole clip is animated
PORTRAIT = "lp_s12"
UPLOAD_MB = 2


@contextmanager
def _serving(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """``app`` under uvicorn in a thread, on a free loopback port; its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(fitter, data_dir: Path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    settings = ServerSettings(max_jobs=2, max_upload_mb=UPLOAD_MB, data=data_dir)
    with _serving(create_app(settings, fitter=fitter, allowed_hosts=["127.0.0.1", "localhost"])) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--autoplay-policy=no-user-gesture-required"])
        yield launched
        launched.close()


@contextmanager
def _open(browser, url: str) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """A fresh browser context on the page, ready; fails on any script error in the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 1100}, accept_downloads=True)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.goto(url)
    sync_api.expect(opened.locator("body")).to_have_attribute("data-ready", "true")
    try:
        yield opened
    finally:
        context.close()
    assert not problems, problems


@pytest.fixture()
def page(browser, server: str):  # type: ignore[no-untyped-def]
    with _open(browser, server) as opened:
        yield opened


def _error(page) -> object:  # type: ignore[no-untyped-def]
    return sync_api.expect(page.locator("#error"))


def test_refusals_show_one_clear_line_in_the_page_and_the_server_keeps_answering(
    page, server: str, data_dir: Path, faceless_video: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("not a picture")
    page.set_input_files("#source-file", str(not_an_image))
    _error(page).to_have_text("notes.jpg is not an image (could not decode it)")  # type: ignore[attr-defined]

    too_big = tmp_path / "huge.jpg"
    too_big.write_bytes(b"\0" * (UPLOAD_MB * 1_000_000 + 1))
    page.set_input_files("#source-file", str(too_big))
    _error(page).to_have_text(f"huge.jpg is larger than the {UPLOAD_MB} MB upload limit")  # type: ignore[attr-defined]

    page.set_input_files("#source-file", str(data_dir / "portraits" / f"{PORTRAIT}.jpg"))
    sync_api.expect(page.locator("#source-preview")).to_be_visible()
    _error(page).to_be_hidden()  # type: ignore[attr-defined]
    page.set_input_files("#driving-file", str(faceless_video))
    sync_api.expect(page.locator("#driving-status")).to_contain_text("10 frames")
    page.click("#run")
    _error(page).to_have_text("no face found in any frame of the video", timeout=60_000)  # type: ignore[attr-defined]
    sync_api.expect(page.locator("#run")).to_be_enabled()  # ready for another try

    health = page.request.get(f"{server}/api/health")
    assert health.ok and health.json() == {"ok": True, "running": 0, "waiting": 0}


def test_a_creator_animates_a_portrait_plays_the_result_and_downloads_it(page, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = data_dir / "clips" / f"{CLIP}.mp4"
    clip_frames, clip_audio = count_frames(clip)
    page.set_input_files("#source-file", str(data_dir / "portraits" / f"{PORTRAIT}.jpg"))
    preview = page.locator("#source-preview")
    sync_api.expect(preview).to_be_visible()
    page.wait_for_function("() => document.getElementById('source-preview').naturalWidth > 0")
    sync_api.expect(page.locator("#source-status")).to_contain_text("1 face found")
    page.set_input_files("#driving-file", str(clip))
    sync_api.expect(page.locator("#driving-status")).to_contain_text(f"{clip_frames} frames")
    page.click("#run")

    sync_api.expect(page.locator("#result-card")).to_be_visible(timeout=120_000)
    _error(page).to_be_hidden()  # type: ignore[attr-defined]
    page.wait_for_function("() => { const v = document.getElementById('result'); return v.readyState >= 2 && v.duration > 0; }", timeout=30_000)
    duration = page.evaluate("() => document.getElementById('result').duration")
    assert duration == pytest.approx(clip_frames / 29.97, abs=0.1)
    page.evaluate("() => { const v = document.getElementById('result'); v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.getElementById('result').currentTime > 0.5", timeout=15_000)
    playing = page.evaluate("() => { const v = document.getElementById('result'); return {t: v.currentTime, paused: v.paused, error: v.error && v.error.code, w: v.videoWidth, h: v.videoHeight}; }")
    assert playing["error"] is None and playing["w"] == 376 and playing["h"] == 500  # 375×500 portrait, even width
    page.evaluate("() => document.getElementById('result').pause()")

    with page.expect_download() as waiting:
        page.click("#download")
    download = waiting.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.name == f"{PORTRAIT}-{CLIP}.mp4"
    assert count_frames(saved) == (clip_frames, clip_audio)  # every frame of the clip, and its audio

    shots = Path(os.environ.get("FACEREENACT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    screenshot = shots / "web-result.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    print(f"\nscreenshot: {screenshot}")


def _slowed(animate_file, seconds_per_step: float):  # type: ignore[no-untyped-def]
    """``animate_file`` whose every progress step takes ``seconds_per_step`` longer: a slow
    machine, so a job is still running while the test looks (an idle machine can finish a short
    job between two of the page's polls)."""

    def slow(*args, progress, **kwargs):  # type: ignore[no-untyped-def]
        def factory(label: str, total: int):  # type: ignore[no-untyped-def]
            tick = progress(label, total)

            def slow_tick(done: int) -> None:
                time.sleep(seconds_per_step)
                tick(done)

            return slow_tick

        return animate_file(*args, progress=factory, **kwargs)

    return slow


def test_a_second_creator_sees_their_place_in_line_while_the_only_slot_is_busy(browser, fitter, data_dir: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import facereenact.app.animate

    monkeypatch.setattr(facereenact.web.service, "animate_file", _slowed(facereenact.app.animate.animate_file, 0.2))
    settings = ServerSettings(max_jobs=1, max_frames=20, data=data_dir)
    portrait, clip = data_dir / "portraits" / f"{PORTRAIT}.jpg", data_dir / "clips" / f"{CLIP}.mp4"
    with _serving(create_app(settings, fitter=fitter)) as url, _open(browser, url) as first, _open(browser, url) as second:
        for page in (first, second):
            page.set_input_files("#source-file", str(portrait))
            sync_api.expect(page.locator("#source-preview")).to_be_visible()
            page.set_input_files("#driving-file", str(clip))
            sync_api.expect(page.locator("#run")).to_be_enabled()
        first.click("#run")
        sync_api.expect(first.locator("#job-status")).to_contain_text("frame")  # running: its frames count up
        second.click("#run")
        sync_api.expect(second.locator("#job-status")).to_have_text("Waiting in line: position 1 (1 job running).")
        second.screenshot(path=str(tmp_path / "web-waiting.png"))
        for page in (first, second):
            sync_api.expect(page.locator("#result-card")).to_be_visible(timeout=120_000)
            assert page.locator("#result-info").text_content().endswith("20 frames")


ATTACK_PAGE = """<!doctype html><html><body><iframe name="sink"></iframe><script>
async function attack(target, sourceId, example) {
  const portrait = await (await fetch("/portrait.jpg")).blob();
  const job = JSON.stringify({source: sourceId, example: example, method: "warp"});
  const tries = {
    "upload, simple text body": [target + "/api/uploads/source?name=a.jpg", {method: "POST", mode: "no-cors", body: new Blob([portrait], {type: "text/plain"})}],
    "upload, untyped body": [target + "/api/uploads/source?name=b.jpg", {method: "POST", mode: "no-cors", body: await portrait.arrayBuffer()}],
    "upload, as the page sends it": [target + "/api/uploads/source?name=c.jpg", {method: "POST", headers: {"Content-Type": "application/octet-stream"}, body: portrait}],
    "job, simple text body": [target + "/api/jobs", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: job}],
    "job, as the page sends it": [target + "/api/jobs", {method: "POST", headers: {"Content-Type": "application/json"}, body: job}],
  };
  const outcomes = {};
  for (const [label, [url, init]] of Object.entries(tries)) {
    try { const answer = await fetch(url, init); outcomes[label] = answer.type === "opaque" ? "sent, answer hidden" : answer.status; }
    catch (error) { outcomes[label] = "blocked by the browser"; }
  }
  const form = document.createElement("form");  // a plain form post: no script needed at all
  form.method = "POST"; form.enctype = "text/plain"; form.target = "sink"; form.action = target + "/api/jobs";
  const field = document.createElement("input");
  field.name = job.slice(0, -1) + ', "x": "'; field.value = '"}';
  form.appendChild(field); document.body.appendChild(form); form.submit();
  await new Promise(resolve => document.querySelector("iframe").onload = resolve);
  return outcomes;
}
</script></body></html>"""


def test_another_site_open_in_the_browser_can_neither_upload_nor_start_jobs(browser, fitter, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A page on another origin tries every way a page can send the API's requests (fetch with
    and without CORS, simple and typed bodies, a plain form post); the server stores nothing and
    runs nothing, while the same requests from the page itself work."""
    import http.server
    import shutil

    site = tmp_path / "attacker"
    site.mkdir()
    (site / "attack.html").write_text(ATTACK_PAGE)
    portrait = data_dir / "portraits" / f"{PORTRAIT}.jpg"
    shutil.copyfile(portrait, site / "portrait.jpg")
    class Site(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(site))

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    settings = ServerSettings(max_jobs=1, max_frames=3, data=data_dir)
    application = create_app(settings, fitter=fitter, allowed_hosts=["127.0.0.1", "localhost"])
    service = application.state.service
    try:
        with _serving(application) as url, _open(browser, url) as own:
            own.set_input_files("#source-file", str(portrait))  # the user's own upload, which the attacker knows the id of
            sync_api.expect(own.locator("#source-preview")).to_be_visible()
            (own_upload,) = service.uploads._uploads.values()
            example = service.examples.all()[0].name
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{attacker.server_address[1]}/attack.html")
            outcomes = page.evaluate("([target, id, example]) => attack(target, id, example)", [url, own_upload.id, example])
            context.close()
            print(f"\nwhat the other site's requests got: {outcomes}")
            assert list(service.uploads._uploads.values()) == [own_upload], "nothing the other site sent was stored"
            assert service.queue.counts() == (0, 0) and not service.queue._jobs, "no job was started"
            assert outcomes["upload, as the page sends it"] == outcomes["job, as the page sends it"] == "blocked by the browser"
            mine = own.request.post(f"{url}/api/jobs", data={"source": own_upload.id, "example": example, "method": "warp"})
            assert mine.status == 202, mine.text()
    finally:
        attacker.shutdown()


def test_a_source_video_brings_its_choices_and_a_group_photo_its_faces(page, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import cv2
    import numpy as np

    from facereenact.io.image import read_image, write_image

    page.set_input_files("#source-file", str(data_dir / "clips" / f"{CLIP}.mp4"))
    sync_api.expect(page.locator("#source-status")).to_contain_text("a video of 61 frames")
    sync_api.expect(page.locator("#video-row")).to_be_visible()
    sync_api.expect(page.locator("#face-row")).to_be_hidden()

    pair = np.concatenate([cv2.resize(read_image(data_dir / "portraits" / f"{name}.jpg"), (240, 240), interpolation=cv2.INTER_AREA) for name in ("lp_s1", "lp_s5")], 1)
    photo = tmp_path / "pair.png"
    write_image(photo, pair)
    page.set_input_files("#source-file", str(photo))
    sync_api.expect(page.locator("#source-status")).to_contain_text("2 faces found")
    sync_api.expect(page.locator("#video-row")).to_be_hidden()
    sync_api.expect(page.locator("#face-row")).to_be_visible()
    page.select_option("#face-index", ["0", "1"])  # every face
    page.select_option("#method", "warp")
    page.set_input_files("#driving-file", str(data_dir / "clips" / f"{CLIP}.mp4"))
    sync_api.expect(page.locator("#driving-status")).to_contain_text("61 frames")
    page.click("#run")
    sync_api.expect(page.locator("#result-card")).to_be_visible(timeout=120_000)
    page.wait_for_function("() => document.getElementById('result').readyState >= 1", timeout=30_000)
    size = page.evaluate("() => { const v = document.getElementById('result'); return [v.videoWidth, v.videoHeight]; }")
    assert size == [480, 240]  # both faces, in one result of the photo's size
    sync_api.expect(page.locator("#notes")).to_contain_text("animating faces 0, 1")
