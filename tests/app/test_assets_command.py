"""``facereenact assets list / fetch / verify`` and the missing-file messages of the commands."""

from __future__ import annotations

import functools
import hashlib
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facereenact.app import assets as asset_files
from facereenact.app import examples, locations
from facereenact.cli import app
from facereenact.io.assets import CATALOG, MODEL_FILES, AssetFile, Kind
from tests.conftest import SHARED

runner = CliRunner()


def _run(*args: str | Path):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def _error_line(result) -> str:  # type: ignore[no-untyped-def]
    """The one error line, last on stderr (after any "fetching …" lines)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    return errors[0]


@pytest.fixture()
def fresh_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No FACEREENACT_* settings, an empty per-user cache, and no checkout's ../shared: the
    returned folder is where ``fetch`` puts files by default."""
    for name in ("FACEREENACT_ASSETS", "FACEREENACT_DATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for module in (locations, examples):
        monkeypatch.setattr(module, "CHECKOUT_SHARED", tmp_path / "no-shared")
    return tmp_path / "cache" / "facereenact" / "assets"


@pytest.fixture(scope="module")
def shared_mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out as a checkout's ../shared (assets/ and data/), linking the real files."""
    if not (SHARED / "assets" / "3ddfa").is_dir() or not (SHARED / "data" / "clips").is_dir():
        pytest.skip(f"model files or example data not found under {SHARED}")
    root = tmp_path_factory.mktemp("shared")
    for entry in CATALOG:
        if entry.kind is Kind.optional:
            continue
        place = entry.shared_path or f"assets/{entry.name}"
        (root / place).parent.mkdir(parents=True, exist_ok=True)
        (root / place).symlink_to(SHARED / place)
    return root / "assets"


def test_list_names_every_file_with_its_size_hash_licence_and_origin() -> None:
    result = _run("assets", "list")
    assert result.exit_code == 0, result.output
    for entry in CATALOG:
        assert entry.name in result.stdout and entry.url in result.stdout and entry.licence in result.stdout
        assert (entry.sha256 or "not known") in result.stdout
    assert "academic use only" in result.stdout


def test_fetch_from_a_shared_folder_then_verify_finds_each_kind_of_damage(fresh_machine: Path, shared_mirror: Path) -> None:
    result = _run("assets", "fetch", "--from", shared_mirror)
    assert result.exit_code == 0, result.output
    required = [entry for entry in CATALOG if entry.required]
    assert f"fetched {len(required)} file(s) into {fresh_machine}" in result.stderr
    assert sorted(str(p.relative_to(fresh_machine)) for p in fresh_machine.rglob("*") if p.is_file()) == sorted(e.name for e in required)
    assert not any(p.is_symlink() for p in fresh_machine.rglob("*")), "copies, not links to the mirror"
    assert _run("assets", "verify").exit_code == 0

    truncated, altered, missing = fresh_machine / "3ddfa/Model_PAF.pkl", fresh_machine / "examples/portrait.jpg", fresh_machine / "3ddfa/u_exp.npy"
    truncated.write_bytes(truncated.read_bytes()[:1000])
    data = bytearray(altered.read_bytes())
    data[500] ^= 0xFF
    altered.write_bytes(bytes(data))
    missing.unlink()
    result = _run("assets", "verify")
    assert result.exit_code == 1
    line = _error_line(result)
    assert "3 of 11 files are unusable" in line
    assert "3ddfa/Model_PAF.pkl: truncated (1,000 of 2,507,052 bytes)" in line
    assert "examples/portrait.jpg: altered (SHA-256" in line and "3ddfa/u_exp.npy: missing" in line
    assert line.endswith("fetch them again with: facereenact assets fetch")

    result = _run("assets", "fetch", "--from", shared_mirror)
    assert result.exit_code == 0, result.output
    assert "fetched 3 file(s)" in result.stderr and "8 were already there" in result.stderr
    assert _run("assets", "verify").exit_code == 0


def test_fetch_from_an_http_mirror(fresh_machine: Path, shared_mirror: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    for entry in CATALOG:
        if entry.required:
            (site / entry.name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(asset_files.mirror_source(entry, str(shared_mirror)), site / entry.name)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = _run("assets", "fetch", "--dir", tmp_path / "into", "--from", f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    assert _run("assets", "verify", "--dir", tmp_path / "into").exit_code == 0


@pytest.fixture()
def public_origin(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bytes]]:
    """A small catalogue whose public origins are a local HTTP server."""
    files = {"model.bin": b"weights" * 1000, "clip.mp4": b"frames" * 500}

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            data = files.get(self.path.lstrip("/"))
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    catalogue = (
        AssetFile("m/model.bin", Kind.model, "test", "MIT", base + "model.bin", len(files["model.bin"]), hashlib.sha256(files["model.bin"]).hexdigest()),
        AssetFile("examples/clip.mp4", Kind.example, "test", "MIT", base + "clip.mp4", len(files["clip.mp4"]), hashlib.sha256(files["clip.mp4"]).hexdigest()),
        AssetFile("m/dense.pkl", Kind.optional, "test", "academic", base + "absent.pkl", None, None),
    )
    monkeypatch.setattr(asset_files, "CATALOG", catalogue)
    yield files
    server.shutdown()
    server.server_close()


def test_fetch_downloads_from_the_public_origins_by_default(fresh_machine: Path, public_origin: dict[str, bytes]) -> None:
    result = _run("assets", "fetch")
    assert result.exit_code == 0, result.output
    assert (fresh_machine / "m/model.bin").read_bytes() == public_origin["model.bin"]
    assert (fresh_machine / "examples/clip.mp4").read_bytes() == public_origin["clip.mp4"]
    again = _run("assets", "fetch")
    assert again.exit_code == 0 and "nothing to fetch" in again.stderr
    # the optional file has no known origin here: one line, and what was fetched stays
    result = _run("assets", "fetch", "--optional")
    assert result.exit_code == 1
    assert "could not fetch 1 file(s): m/dense.pkl (cannot download" in _error_line(result)


def test_fetch_refuses_a_mirror_that_is_not_there(fresh_machine: Path, tmp_path: Path) -> None:
    result = _run("assets", "fetch", "--from", tmp_path / "absent")
    assert result.exit_code == 1 and "no such folder" in _error_line(result)


def test_a_mirror_without_the_examples_names_them(fresh_machine: Path, shared_mirror: Path, tmp_path: Path) -> None:
    models_only = tmp_path / "models"
    for name in MODEL_FILES:
        (models_only / name).parent.mkdir(parents=True, exist_ok=True)
        (models_only / name).symlink_to(shared_mirror / name)
    result = _run("assets", "fetch", "--from", models_only)
    assert result.exit_code == 1
    line = _error_line(result)
    assert "could not fetch 2 file(s): examples/portrait.jpg" in line and "examples/driving.mp4" in line and "9 other(s) fetched" in line


def test_fetch_in_a_checkout_with_shared_fetches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (locations.CHECKOUT_SHARED / "assets").is_dir():
        pytest.skip(f"no checkout's ../shared at {locations.CHECKOUT_SHARED}")
    monkeypatch.delenv("FACEREENACT_ASSETS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = _run("assets", "fetch")
    assert result.exit_code == 0, result.output
    assert f"present and verified where the commands look ({locations.CHECKOUT_SHARED / 'assets'}); nothing to fetch" in result.stderr
    assert not (tmp_path / "cache").exists()


def test_commands_on_a_fresh_machine_name_every_missing_file_and_the_fetch_command(fresh_machine: Path) -> None:
    result = _run("animate", "-o", fresh_machine.parent / "out.mp4")
    assert result.exit_code == 1
    line = _error_line(result)
    assert f"{len(MODEL_FILES)} files are missing from {fresh_machine}" in line
    assert all(name in line for name in MODEL_FILES) and line.endswith("fetch them with: facereenact assets fetch")


def test_a_missing_example_says_how_to_get_it(fresh_machine: Path, shared_mirror: Path) -> None:
    for name in MODEL_FILES:
        (fresh_machine / name).parent.mkdir(parents=True, exist_ok=True)
        (fresh_machine / name).symlink_to(shared_mirror / name)
    result = _run("animate", "-o", fresh_machine.parent / "out.mp4")
    assert result.exit_code == 1
    assert _error_line(result).endswith(
        f"the example examples/portrait.jpg is missing from {fresh_machine}: name your own file with --source, or fetch it with: facereenact assets fetch"
    )


def test_an_unreachable_origin_is_named_once_for_all_its_files(fresh_machine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalogue = tuple(AssetFile(f"m/{name}", Kind.model, "test", "MIT", f"http://127.0.0.1:9/{name}", 10, "0" * 64) for name in ("a.bin", "b.bin"))
    monkeypatch.setattr(asset_files, "CATALOG", catalogue)
    result = _run("assets", "fetch")
    assert result.exit_code == 1
    line = _error_line(result)
    assert line.startswith("error: could not fetch 2 file(s): m/a.bin, m/b.bin (cannot reach 127.0.0.1:9 (")
    assert line.count("cannot reach") == 1 and line.endswith("fetch from a mirror or a folder with --from)")
    assert not any(fresh_machine.rglob("*.bin")), "nothing half-written"
