"""Tests for facereenact.io.image: content-based reading, size limits, atomic writing, sniffing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facereenact.errors import InputError, OutputError
from facereenact.io import image as image_io
from facereenact.io.image import (
    MAX_IMAGE_PIXELS,
    is_image_file,
    is_video_file,
    read_image,
    write_image,
)


def gradient(height: int = 48, width: int = 64) -> np.ndarray:
    """A deterministic RGB image whose three channels differ, so channel order is checkable."""
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[..., 0] = (np.arange(width) * 255 // max(width - 1, 1))[None, :]
    rgb[..., 1] = (np.arange(height) * 255 // max(height - 1, 1))[:, None]
    rgb[..., 2] = 200
    return rgb


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.parametrize("extension", [".png", ".bmp"])
def test_lossless_round_trip_is_exact(tmp_path: Path, extension: str) -> None:
    rgb = gradient()
    path = tmp_path / f"out{extension}"
    write_image(path, rgb)
    back = read_image(path)
    assert back.dtype == np.uint8 and back.shape == (48, 64, 3)
    np.testing.assert_array_equal(back, rgb)
    assert files_in(tmp_path) == [path.name]  # no temporary file left behind


@pytest.mark.parametrize("extension", [".jpg", ".jpeg", ".webp", ".JPG"])
def test_lossy_round_trip_is_close(tmp_path: Path, extension: str) -> None:
    rgb = gradient()
    path = tmp_path / f"out{extension}"
    write_image(path, rgb)
    back = read_image(path)
    assert back.shape == rgb.shape
    assert np.abs(back.astype(int) - rgb.astype(int)).mean() < 3


def test_read_returns_rgb_not_bgr(tmp_path: Path) -> None:
    bgr = np.zeros((40, 40, 3), dtype=np.uint8)
    bgr[..., 0] = 255  # pure blue in OpenCV's BGR order
    path = tmp_path / "blue.png"
    cv2.imwrite(str(path), bgr)
    rgb = read_image(path)
    assert (rgb[..., 2] == 255).all() and (rgb[..., :2] == 0).all()


def test_write_stores_rgb_in_the_right_order(tmp_path: Path) -> None:
    rgb = np.zeros((40, 40, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # red
    path = tmp_path / "red.png"
    write_image(path, rgb)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert (bgr[..., 2] == 255).all() and (bgr[..., :2] == 0).all()


def test_greyscale_is_expanded_to_three_channels(tmp_path: Path) -> None:
    grey = np.tile(np.arange(50, dtype=np.uint8)[None, :] * 5, (40, 1))
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), grey)
    rgb = read_image(path)
    assert rgb.shape == (40, 50, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], grey)


def test_alpha_channel_is_dropped(tmp_path: Path) -> None:
    bgra = np.zeros((40, 40, 4), dtype=np.uint8)
    bgra[..., 1] = 128  # green
    bgra[..., 3] = 7  # nearly transparent
    path = tmp_path / "alpha.png"
    cv2.imwrite(str(path), bgra)
    rgb = read_image(path)
    assert rgb.shape == (40, 40, 3)
    assert (rgb[..., 1] == 128).all() and (rgb[..., 0] == 0).all() and (rgb[..., 2] == 0).all()


@pytest.mark.parametrize(("orientation", "turns"), [(6, -1), (8, 1), (3, 2)])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, turns: int) -> None:
    """A phone photo stored sideways with an EXIF orientation reads as a viewer shows it."""
    image_module = pytest.importorskip("PIL.Image")
    stored = gradient()
    picture = image_module.fromarray(stored)
    exif = picture.getexif()
    exif[0x0112] = orientation  # Orientation: 6 = turn 90° clockwise to show, 8 = anticlockwise
    path = tmp_path / "phone.jpg"
    picture.save(path, quality=95, exif=exif.tobytes())
    shown = np.rot90(stored, turns)
    got = read_image(path)
    assert got.shape == shown.shape
    assert np.abs(got.astype(int) - shown.astype(int)).mean() < 3


def test_format_is_taken_from_content_not_name(tmp_path: Path) -> None:
    png_named_jpg = tmp_path / "really_a_png.jpg"
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(gradient(), cv2.COLOR_RGB2BGR))
    assert ok
    png_named_jpg.write_bytes(encoded.tobytes())
    np.testing.assert_array_equal(read_image(png_named_jpg), gradient())

    no_extension = tmp_path / "portrait"
    no_extension.write_bytes(encoded.tobytes())
    np.testing.assert_array_equal(read_image(no_extension), gradient())


def test_text_file_named_jpg_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n" * 20)
    with pytest.raises(InputError, match=r"notes\.jpg is not an image \(could not decode it\)"):
        read_image(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "nowhere.png")


def test_folder(tmp_path: Path) -> None:
    folder = tmp_path / "a_folder.png"
    folder.mkdir()
    with pytest.raises(InputError, match="is a folder"):
        read_image(folder)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(InputError, match="is empty"):
        read_image(path)


def test_truncated_png_is_not_an_image(tmp_path: Path) -> None:
    ok, encoded = cv2.imencode(".png", gradient())
    path = tmp_path / "cut.png"
    path.write_bytes(encoded.tobytes()[:40])
    with pytest.raises(InputError, match="is not an image"):
        read_image(path)


@pytest.mark.parametrize("extension", [".png", ".jpg"])
def test_huge_image_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extension: str
) -> None:
    path = tmp_path / f"huge{extension}"
    assert cv2.imwrite(str(path), np.zeros((7000, 7000), dtype=np.uint8))
    assert path.stat().st_size < 2_000_000  # compressed, the bomb is small

    def must_not_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("the huge image was decoded")

    monkeypatch.setattr(image_io.cv2, "imdecode", must_not_decode)
    with pytest.raises(InputError) as caught:
        read_image(path)
    message = str(caught.value)
    assert "7000×7000 = 49.0 megapixels; the limit is 40 megapixels" in message
    assert "\n" not in message


def test_limit_constant() -> None:
    assert MAX_IMAGE_PIXELS == 40_000_000


def test_image_over_the_limit_in_an_unparsed_format_is_refused_after_decoding(tmp_path: Path) -> None:
    # PGM headers are not parsed, so this exercises the check on the decoded array.
    path = tmp_path / "big.pgm"
    assert cv2.imwrite(str(path), np.zeros((6400, 6300), dtype=np.uint8))
    with pytest.raises(InputError, match=r"6300×6400 = 40\.3 megapixels"):
        read_image(path)


@pytest.mark.parametrize("size", [(20, 100), (100, 31), (8, 8)])
def test_too_small_image_is_refused(tmp_path: Path, size: tuple[int, int]) -> None:
    height, width = size
    path = tmp_path / "tiny.png"
    cv2.imwrite(str(path), np.zeros((height, width, 3), dtype=np.uint8))
    with pytest.raises(InputError, match=rf"{width}×{height} pixels; images must be at least 32 pixels"):
        read_image(path)


def test_smallest_allowed_image(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    cv2.imwrite(str(path), np.zeros((32, 32, 3), dtype=np.uint8))
    assert read_image(path).shape == (32, 32, 3)


def test_write_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"unsupported image extension '\.gif'"):
        write_image(tmp_path / "out.gif", gradient())
    with pytest.raises(OutputError, match="unsupported image extension"):
        write_image(tmp_path / "out", gradient())
    assert files_in(tmp_path) == []


def test_write_into_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        write_image(tmp_path / "missing" / "out.png", gradient())


def test_write_rejects_wrong_array(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_image(tmp_path / "out.png", gradient().astype(np.float32))
    with pytest.raises(ValueError):
        write_image(tmp_path / "out.png", gradient()[..., 0])
    assert files_in(tmp_path) == []


def test_write_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    write_image(path, gradient())
    np.testing.assert_array_equal(read_image(path), gradient())
    assert files_in(tmp_path) == ["out.png"]


def test_sniffers(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    write_image(png, gradient())
    jpg_without_extension = tmp_path / "photo"
    write_image(tmp_path / "photo.jpg", gradient())
    (tmp_path / "photo.jpg").rename(jpg_without_extension)
    text = tmp_path / "text.jpg"
    text.write_text("hello")
    empty = tmp_path / "empty.png"
    empty.touch()
    huge = tmp_path / "huge.png"
    cv2.imwrite(str(huge), np.zeros((7000, 7000), dtype=np.uint8))

    assert is_image_file(png)
    assert is_image_file(str(jpg_without_extension))
    assert is_image_file(huge)  # still an image; read_image explains why it is refused
    for not_image in (text, empty, tmp_path / "missing.png", tmp_path):
        assert not is_image_file(not_image)

    # Stills are not videos even though FFmpeg opens them as one-frame streams.
    for not_video in (png, jpg_without_extension, text, empty, tmp_path / "missing.mp4", tmp_path):
        assert not is_video_file(not_video)
