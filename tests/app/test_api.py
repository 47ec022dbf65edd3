"""``facereenact.animate``: one call, the command line's defaults, a light ``import facereenact``."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import facereenact
from facereenact.app import api
from facereenact.app.animate import AnimateRequest
from facereenact.errors import OptionError


def test_importing_the_package_stays_light() -> None:
    code = "import sys, facereenact; print(sorted(m for m in ('torch', 'cv2', 'numpy', 'facereenact.app') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_api_and_the_command_line_share_one_use_case() -> None:
    """Same parameters as the use case the command line calls, and the request's own defaults."""
    ours = inspect.signature(facereenact.animate).parameters
    assert list(ours) == list(inspect.signature(api.animate).parameters)
    assert all(ours[name].default is None for name in ("source", "driving", "output"))
    assert api.DEFAULT_OUTPUT == Path("animated.mp4")


def test_bad_options_are_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="unknown option.*speed.*the options are"):
        facereenact.animate(tmp_path / "a.jpg", tmp_path / "b.mp4", tmp_path / "o.mp4", speed=2)
    with pytest.raises(OptionError, match="crop_size 9 is outside"):
        facereenact.animate(tmp_path / "a.jpg", tmp_path / "b.mp4", tmp_path / "o.mp4", crop_size=9)
    assert list(tmp_path.iterdir()) == []


def test_one_call_animates(assets, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from facereenact.io.video import probe_video

    report = facereenact.animate(
        data_dir / "portraits" / "lp_s12.jpg", str(data_dir / "clips" / "hdtf_aoc.mp4"), tmp_path / "out.mp4",
        assets=assets.root, method="warp", max_frames=5, crop_only=True, regions="mouth",
    )  # fmt: skip
    assert report.output == tmp_path / "out.mp4" and report.frames == 5
    info = probe_video(report.output)
    assert (info.frame_count, info.width) == (5, AnimateRequest().crop_size)
