"""The commands on the execution layer: ``animate --batch`` (a failing row, resume) and
``evaluate`` (the same report from both backends, resume from kept clip outcomes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from facereenact.cli import app
from facereenact.evaluate import dataset, suite
from facereenact.evaluate.protocols import Sampling
from facereenact.execute import make_backend
from facereenact.io.video import probe_video

runner = CliRunner()


def test_animate_batch_reports_a_failing_row_and_resumes(data_dir: Path, assets, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"source,driving,max_frames\n{data_dir / 'portraits' / 'lp_s12.jpg'},{data_dir / 'clips' / 'dpe_s.mp4'},8\n{data_dir / 'portraits' / 'lp_s12.jpg'},broken.mp4,\n")
    out = tmp_path / "out"
    arguments = ["animate", "--batch", str(jobs), "--out", str(out), "--crop-only", "--crop-size", "128", "--assets", str(assets.root)]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 1, "a failed row makes the exit code say so\n" + result.output
    assert "2 animation(s): 1 done, 0 skipped (finished earlier), 1 failed" in result.output
    assert "failed lp_s12__broken.mp4:" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["lp_s12__dpe_s.mp4"]
    info = probe_video(out / "lp_s12__dpe_s.mp4")
    assert info.frame_count == 8 and (info.width, info.height) == (128, 128)
    again = runner.invoke(app, arguments)
    assert "0 done, 1 skipped (finished earlier), 1 failed" in again.output, again.output


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key not in {"created", "seconds"}}


def test_evaluate_gives_the_same_report_on_both_backends_and_resumes(local_ray, data_dir: Path, assets, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = dataset.discover(data_dir, ["dpe_s", "grid_bbaf2n"])
    data = dataset.EvaluationData(data.root, data.clips, data.portraits[:1])
    settings = suite.EvaluationSettings(sampling=Sampling(every=3, max_frames=2, window=4, cross_frames=1, cross_sources=1), bootstrap=50)
    partial = tmp_path / "partial"
    local = suite.evaluate(data, "source,warp", assets, settings, backend=make_backend("local", workers=2), partial=partial)
    assert sorted(local.summary.done) == ["dpe_s", "grid_bbaf2n"] and not local.summary.failed
    assert [c["status"] for c in local.result["self_reenactment"]["clips"]] == ["ok", "ok"]
    assert len(list(partial.glob("*.pkl"))) == 2
    distributed = suite.evaluate(data, "source,warp", assets, settings, backend=make_backend("ray"))
    assert _comparable(distributed.result) == _comparable(local.result)
    assert distributed.strips == local.strips
    resumed = suite.evaluate(data, "source,warp", assets, settings, backend=make_backend("local", workers=2), partial=partial)
    assert sorted(resumed.summary.skipped) == ["dpe_s", "grid_bbaf2n"] and not resumed.summary.done
    assert _comparable(resumed.result) == _comparable(local.result)
    changed = suite.EvaluationSettings(sampling=Sampling(every=3, max_frames=1, window=4, cross_frames=1, cross_sources=1), bootstrap=50)
    rerun = suite.evaluate(data, "source,warp", assets, changed, backend=make_backend("local", workers=2), partial=partial)
    assert not rerun.summary.skipped, "outcomes kept for other settings are not reused"
