"""The asset catalogue and the check of a copy: missing, truncated, altered, unchecked files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from facereenact.errors import AssetError
from facereenact.io.assets import BY_NAME, CATALOG, MODEL_FILES, AssetFile, Assets, Kind, State, check_file

CONTENT = b"model weights " * 100


def _entry(content: bytes | None = CONTENT, kind: Kind = Kind.model) -> AssetFile:
    known = content is not None
    return AssetFile(
        "3ddfa/w.bin", kind, "a test", "MIT", "https://example.invalid/w.bin",
        len(content) if known else None, hashlib.sha256(content).hexdigest() if known else None,
    )  # fmt: skip


def test_the_catalogue_is_complete_and_consistent() -> None:
    assert len(BY_NAME) == len(CATALOG), "names are unique"
    for entry in CATALOG:
        assert entry.url.startswith("https://"), entry.name
        assert entry.licence and entry.used_by
        if entry.required:
            assert entry.size and entry.sha256 and len(entry.sha256) == 64, f"{entry.name}: a required file needs its size and SHA-256"
    assert {"examples/portrait.jpg", "examples/driving.mp4"} <= set(BY_NAME)
    assert "mediapipe/face_landmarker.task" in MODEL_FILES and "3ddfa/bfm_noneck_v3.pkl" not in MODEL_FILES


def test_a_good_copy(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(CONTENT)
    check = check_file(_entry(), path)
    assert check.state is State.ok and check.good


@pytest.mark.parametrize(
    ("content", "state", "detail"),
    [
        (None, State.missing, ""),
        (CONTENT[:-10], State.truncated, "1,390 of 1,400 bytes"),
        (CONTENT + b"!", State.oversized, "1,401 bytes, expected 1,400"),
        (CONTENT[:-1] + b"?", State.altered, "SHA-256"),
    ],
)
def test_damaged_copies_are_told_apart(tmp_path: Path, content: bytes | None, state: State, detail: str) -> None:
    path = tmp_path / "w.bin"
    if content is not None:
        path.write_bytes(content)
    check = check_file(_entry(), path)
    assert check.state is state and not check.good
    assert detail in check.detail


def test_a_file_without_a_known_hash_is_present_but_unchecked(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"anything")
    check = check_file(_entry(None, Kind.optional), path)
    assert check.state is State.unchecked and check.good


def test_require_names_every_missing_file_and_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEREENACT_ASSETS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "3ddfa").mkdir()
    (tmp_path / "3ddfa" / "u_shp.npy").write_bytes(b"x")
    with pytest.raises(AssetError) as caught:
        Assets(tmp_path).require()
    message = str(caught.value)
    assert "\n" not in message
    assert all(name in message for name in MODEL_FILES if name != "3ddfa/u_shp.npy") and "u_shp" not in message
    assert f"facereenact assets fetch --dir {tmp_path}" in message
    # the default folder needs no --dir
    default = Assets.resolve()
    assert default.root == tmp_path / "cache" / "facereenact" / "assets"
    with pytest.raises(AssetError, match=r"files are missing from .*; fetch them with: facereenact assets fetch$"):
        default.require()
