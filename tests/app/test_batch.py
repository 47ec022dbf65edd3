"""``animate --batch``: reading the jobs CSV (defaults, per-row options, paths, refusals) and the
command's answers; the runs themselves are in tests/execute."""

from __future__ import annotations

from pathlib import Path

import pytest

from facereenact.app.batch import read_batch
from facereenact.errors import InputError
from facereenact.face3d.blendshapes import Region
from facereenact.face3d.transfer import MotionMode
from facereenact.pipeline.request import AnimateRequest
from tests.cli_inputs import run_cli


def _csv(folder: Path, text: str) -> Path:
    path = folder / "jobs.csv"
    path.write_text(text)
    return path


def test_rows_take_the_command_line_defaults_and_override_them(tmp_path: Path) -> None:
    jobs_file = _csv(tmp_path, "source,driving,output,mode,crop_only,max_frames,driving_mouth,model\nme.jpg,clips/a.mp4,,,,,,\n/abs/you.png,b.mp4,sub/x.mov,absolute,yes,12,no,net.safetensors\nme.jpg,still.png,,,,,,\n")
    defaults = AnimateRequest(crop_size=128, max_frames=50)
    first, second, third = read_batch(jobs_file, tmp_path / "out", defaults)
    assert first.name == "me__a.mp4" and first.output == (tmp_path / "out" / "me__a.mp4").absolute()
    assert first.source == tmp_path.absolute() / "me.jpg" and first.driving == tmp_path.absolute() / "clips" / "a.mp4"
    assert first.request == defaults
    assert second.source == Path("/abs/you.png") and second.name == "sub/x.mov"
    assert second.request == AnimateRequest(
        mode=MotionMode.absolute, crop_size=128, crop_only=True, max_frames=12, driving_mouth=False, model=tmp_path.absolute() / "net.safetensors"
    )
    assert third.name == "me__still.png", "a still driving image gives a still image"
    options = second.request.reenact_options()
    assert options.crop_size == 128 and options.motion.mode is MotionMode.absolute and not options.driving_mouth
    assert first.request.reenact_options().driving_mouth, "the driving mouth is on unless a row turns it off"


def test_rows_choose_regions_and_scales(tmp_path: Path) -> None:
    jobs_file = _csv(tmp_path, "source,driving,regions,expression_scale,pose_scale\nme.jpg,a.mp4,mouth,1.5,0\nme.jpg,b.mp4,,,\n")
    dubbed, plain = read_batch(jobs_file, tmp_path / "out")
    motion = dubbed.request.reenact_options().motion
    assert motion.regions == frozenset({Region.mouth}) and motion.expression_scale == 1.5 and motion.pose_scale == 0.0
    assert plain.request.reenact_options().motion.regions == frozenset(Region), "an empty cell: every region"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("source,output\nme.jpg,x.mp4\n", "columns source and driving"),
        ("source,driving,speed\nme.jpg,a.mp4,2\n", "unknown column 'speed'"),
        ("source,driving\n", "has no rows"),
        ("source,driving\nme.jpg,\n", "line 2: source and driving are required"),
        ("source,driving,crop_size\nme.jpg,a.mp4,32\n", "line 2: crop_size 32 is outside 64–1024"),
        ("source,driving,mode\nme.jpg,a.mp4,sideways\n", "line 2: mode"),
        ("source,driving,expression_scale\nme.jpg,a.mp4,9\n", "line 2: expression_scale 9.0 is outside 0.0–2.0"),
        ("source,driving,regions\nme.jpg,a.mp4,eyes;mouth\n", "line 2: regions"),
        ("source,driving,pose_only,expression_only\nme.jpg,a.mp4,1,1\n", "exclude each other"),
        ("source,driving,output\nme.jpg,a.mp4,x.mp4\nyou.jpg,b.mp4,x.mp4\n", "line 3: output x.mp4 is also written by line 2"),
        ("source,driving,output\nme.jpg,a.mp4,../x.mp4\n", "must be a name inside --out"),
        ("source,driving,output\nme.jpg,a.mp4,dup.mp4\nyou.jpg,b.mp4,./dup.mp4\n", "line 3: output ./dup.mp4 is also written by line 2"),
        ("source,driving,output\nme.jpg,a.mp4,sub/dup.mp4\nyou.jpg,b.mp4,sub//./DUP.mp4\n", "line 3: output sub//./DUP.mp4 is also written by line 2"),
        ('source,driving,output\nme.jpg,a.mp4,"a\x1b[2Jb.mp4"\n', "holds a control character"),
    ],
)
def test_bad_batch_files_are_refused_before_anything_runs(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_batch(_csv(tmp_path, text), tmp_path / "out")


def test_batch_options_that_do_not_fit(tmp_path: Path) -> None:
    jobs_file = _csv(tmp_path, "source,driving\nme.jpg,a.mp4\n")
    result = run_cli("animate", "--batch", jobs_file, "--source", "me.jpg", "--out", tmp_path)
    assert result.exit_code == 1 and "leave out --source" in result.output
    result = run_cli("animate", "--batch", jobs_file)
    assert result.exit_code == 1 and "--batch needs --out" in result.output
    result = run_cli("animate", "--backend", "ray")
    assert result.exit_code == 1 and "are for --batch runs" in result.output
