"""Reading and writing still images as RGB ``uint8`` arrays.

Files are recognised by their content, never by their name: a portrait saved as ``.png`` that is
really a JPEG still loads, and a text file renamed to ``.jpg`` is refused with a clear message.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np

from facereenact.errors import InputError, OutputError
from facereenact.io.atomic import atomic_output
from facereenact.io.limits import MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE, FrameSizeError

_WRITE_EXTENSIONS: dict[str, str] = {
    ".png": ".png",
    ".jpg": ".jpg",
    ".jpeg": ".jpg",
    ".webp": ".webp",
    ".bmp": ".bmp",
}

#: The extensions :func:`write_image` writes.
IMAGE_EXTENSIONS = tuple(_WRITE_EXTENSIONS)

_PathLike = str | os.PathLike[str]


def read_image(path: _PathLike) -> np.ndarray:
    """Load an image file as an (H, W, 3) ``uint8`` RGB array.

    Greyscale images are expanded to three channels and an alpha channel is dropped. The header
    is inspected first (PNG, JPEG, GIF, BMP, WebP) so that a small file that declares an enormous
    image is refused without allocating memory for its pixels.

    Raises:
        InputError: the file is missing, a folder, empty, not a decodable image, larger than
            ``MAX_IMAGE_PIXELS`` or smaller than ``MIN_IMAGE_SIDE`` on a side.
    """
    file = Path(path)
    data = _read_bytes(file)
    declared = _header_size(data)
    if declared is not None:
        _check_not_huge(file, *declared)
    bgr = _decode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"{file} is not an image (could not decode it)")
    height, width = bgr.shape[:2]
    _check_not_huge(file, width, height)
    if min(width, height) < MIN_IMAGE_SIDE:
        raise FrameSizeError(
            f"{file} is only {width}×{height} pixels; images must be at least "
            f"{MIN_IMAGE_SIDE} pixels on each side"
        )
    if bgr.ndim == 2:  # defensive: IMREAD_COLOR should always give three channels
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    if bgr.shape[2] == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_image(path: _PathLike, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) ``uint8`` RGB array; the format follows the extension.

    The file is encoded in memory first and then written through :func:`atomic_output`, so an
    existing file at ``path`` is either fully replaced or left untouched.

    Raises:
        OutputError: unsupported extension, or the file cannot be written.
        ValueError: ``rgb`` is not an (H, W, 3) ``uint8`` array (a programming error).
    """
    file = Path(path)
    extension = _WRITE_EXTENSIONS.get(file.suffix.lower())
    if extension is None:
        raise OutputError(
            f"cannot write {file}: unsupported image extension {file.suffix or '(none)'!r}; "
            f"use one of {', '.join(_WRITE_EXTENSIONS)}"
        )
    array = np.asarray(rgb)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {array.shape} {array.dtype}")
    params: list[int] = []
    if extension == ".jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, 95]
    elif extension == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 95]
    ok, encoded = cv2.imencode(extension, cv2.cvtColor(array, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OutputError(f"cannot write {file}: OpenCV could not encode a {extension} image")
    with atomic_output(file) as tmp:
        try:
            tmp.write_bytes(encoded.tobytes())
        except OSError as error:
            raise OutputError(f"cannot write {file}: {error.strerror or error}") from None


#: First bytes of the image formats OpenCV reads (WebP is checked apart: RIFF....WEBP).
_IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def is_image_file(path: _PathLike) -> bool:
    """True if the first bytes of ``path`` are those of an image format (JPEG, PNG, GIF, BMP,
    TIFF, WebP); never raises. Only the header is read: :func:`read_image` then decodes it, or
    explains why it cannot (a broken file, or one too large)."""
    try:
        with open(path, "rb") as file:
            header = file.read(16)
    except OSError:
        return False
    return header.startswith(_IMAGE_SIGNATURES) or (header[:4] == b"RIFF" and header[8:12] == b"WEBP")


def is_video_file(path: _PathLike) -> bool:
    """True if PyAV opens ``path`` as a video container with a video stream; never raises.

    FFmpeg also opens still images (as one-frame "pipe" streams); those are not videos here.
    """
    try:
        from facereenact.io.video import is_video_file as _is_video_file

        return _is_video_file(path)
    except Exception:
        return False


def _read_bytes(file: Path) -> bytes:
    """Read the whole file, turning every file-system problem into a one-line InputError."""
    if not file.exists():
        raise InputError(f"{file} does not exist")
    if file.is_dir():
        raise InputError(f"{file} is a folder, not an image")
    try:
        data = file.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {file}: {error.strerror or error}") from None
    if not data:
        raise InputError(f"{file} is empty")
    return data


def _decode(data: bytes, flags: int) -> np.ndarray | None:
    """``cv2.imdecode`` that reports failure as ``None`` whether OpenCV returns or raises."""
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error:
        return None
    if image is None or image.size == 0:
        return None
    return image


def _check_not_huge(file: Path, width: int, height: int) -> None:
    pixels = width * height
    if pixels > MAX_IMAGE_PIXELS:
        raise FrameSizeError(
            f"{file} is {width}×{height} = {pixels / 1e6:.1f} megapixels; "
            f"the limit is {MAX_IMAGE_PIXELS / 1e6:g} megapixels"
        )


def image_header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) that the first bytes of a PNG, JPEG, GIF, BMP or WebP file declare; None
    when they declare none (another format, or a header cut short)."""
    return _header_size(data)


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) declared by a PNG, JPEG, GIF, BMP or WebP header; None if unknown.

    Only reads a few bytes, so a decompression bomb is caught before any pixel is allocated.
    Other formats (TIFF, PPM, ...) are checked after decoding instead.
    """
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return width, height
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
            return width, height
        if data[:2] == b"BM":
            (dib_size,) = struct.unpack("<I", data[14:18])
            if dib_size == 12:  # OS/2 BITMAPCOREHEADER
                width, height = struct.unpack("<HH", data[18:22])
            else:
                width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
    except struct.error:  # header cut short: let the decoder produce the error
        return None
    return None


# Start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            index += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[index + 2 : index + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return (width, height) if width and height else None
        index += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None
