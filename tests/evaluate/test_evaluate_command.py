"""`facereenact evaluate` end to end on a tiny sample, and its answers to bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from facereenact.evaluate.catalog import REGION_SIGNALS
from facereenact.io.video import VideoWriter
from tests.cli_inputs import run_cli

TINY = ["--every", "3", "--max-frames", "2", "--window", "4", "--cross-frames", "1", "--cross-sources", "1", "--bootstrap", "50"]


def _run(*args: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
    return run_cli(*["evaluate", *[str(a) for a in args]])


def _error_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:"), lines[0]
    return lines[0]


def _strict_json(path: Path) -> dict:  # type: ignore[type-arg]
    def refuse(constant: str) -> None:
        raise AssertionError(f"metrics.json holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture()
def assets_env(assets, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FACEREENACT_ASSETS", str(assets.root))
    return assets


@pytest.fixture()
def tiny_data(data_dir: Path, tmp_path: Path) -> Path:
    """Two real clips, one video without a face, one portrait."""
    folder = tmp_path / "data"
    (folder / "clips").mkdir(parents=True)
    (folder / "portraits").mkdir()
    for name in ("dpe_s.mp4", "grid_bbaf2n.mp4"):
        (folder / "clips" / name).symlink_to(data_dir / "clips" / name)
    (folder / "portraits" / "lp_s12.jpg").symlink_to(data_dir / "portraits" / "lp_s12.jpg")
    with VideoWriter(folder / "clips" / "wall.mp4", 25) as writer:
        writer.write_batch(np.full((12, 96, 96, 3), 128, np.uint8))
    return folder


def test_evaluate_writes_metrics_and_report(assets_env, tiny_data: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "report"
    threads = torch.get_num_threads()
    result = _run("--data", tiny_data, "--out", out, "--methods", "source,warp", "--seed", "3", *TINY)
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == threads, "the run's thread setting was not undone"
    assert "Self-reenactment: 2 of 3 clips" in result.output and "Cross-identity" in result.output
    assert "LPIPS is left out" in result.output
    report = _strict_json(out / "metrics.json")
    assert report["methods"] == ["source", "warp"] and report["settings"]["seed"] == 3

    clips = {c["clip"]: c for c in report["self_reenactment"]["clips"]}
    assert set(clips) == {"dpe_s", "grid_bbaf2n", "wall"}
    assert clips["wall"]["status"] == "failed" and "no face" in clips["wall"]["reason"]
    for name in ("dpe_s", "grid_bbaf2n"):
        assert clips[name]["status"] == "ok" and clips[name]["frames"] == [[3, 6]]
        source, warp = clips[name]["methods"]["source"], clips[name]["methods"]["warp"]
        assert source["csim"] == pytest.approx(1.0) and source["jitter_ratio"] == 0
        assert "lpips" not in warp
        assert 0 < warp["ssim"] <= 1 and warp["face_found"] == 1.0 and warp["akd"] < 10
        assert (out / clips[name]["strip"]).is_file()
    aggregate = report["self_reenactment"]["aggregate"]["warp"]
    assert aggregate["psnr"]["n"] == 2 and len(aggregate["psnr"]["ci95"]) == 2
    assert aggregate["frechet_dlib"]["mean"] is not None
    assert report["identity_check"]["clips"] == 2

    pairs = report["cross_identity"]["pairs"]
    assert [(p["source"], p["driving"]) for p in pairs] == [("lp_s12", "dpe_s"), ("lp_s12", "grid_bbaf2n"), ("lp_s12", "wall")]
    assert [p["status"] for p in pairs] == ["ok", "ok", "failed"]
    assert set(pairs[0]["methods"]["warp"]) == {
        "csim", "pose_rmse_fitter", "pose_rmse_mediapipe", "expression_l1", "expression_agreement", "face_found", "expression_regions"
    }  # fmt: skip
    window = pairs[0]["expression_window"]
    assert window["frames"] == [0, 49] and window["pipeline_reads_mediapipe"] is True
    assert set(window["strip_frames"]) == {"rest", "blink", "brows"} and (out / pairs[0]["expression_strip"]).is_file()
    warp_regions = pairs[0]["methods"]["warp"]["expression_regions"]
    assert {instrument: set(signals) for instrument, signals in warp_regions.items()} == {k: set(v) for k, v in REGION_SIGNALS.items()}
    assert warp_regions["dlib"]["eye_opening"]["frames"] == 50 and -1 <= warp_regions["dlib"]["eye_opening"]["r"] <= 1
    still = pairs[0]["methods"]["source"]["expression_regions"]["mediapipe"]["eyes"]
    assert still["r"] is None and still["ratio"] == 0, "the source baseline does not move: no correlation, no amplitude"
    regions = report["cross_identity"]["expression_regions"]
    assert regions["pairs"] == 2 and regions["independent_check"] == "dlib"
    assert regions["methods"]["warp"]["dlib"]["mouth_opening"]["r"]["n"] == 2
    assert any("dlib's 68 landmarks are the independent check" in note for note in report["notes"])

    native = {c["clip"]: c for c in report["native_resolution"]["clips"]}
    assert native["wall"]["status"] == "failed" and native["dpe_s"]["status"] == "ok"
    still, warped = native["dpe_s"]["methods"]["source"], native["dpe_s"]["methods"]["warp"]
    assert still["frame0_psnr"] == "inf" and warped["frame0_psnr"] == "inf", "a frame with no motion yet is the source photo"
    assert 0 < warped["sharpness_ratio"] < 2 and warped["native_psnr"] > 10

    html = (out / "report.html").read_text()
    charts = len(report["self_reenactment"]["aggregate"]["warp"]) + 6 + len(report["native_resolution"]["aggregate"]["warp"])
    assert html.count("data:image/png;base64,") == charts
    assert "strips/self_dpe_s.jpg" in html and "strips/native_dpe_s.jpg" in html and "Fréchet" in html and "failed" in html
    assert "Expression by region" in html and "strips/cross_expression_lp_s12__dpe_s.jpg" in html and "(independent check)" in html
    assert sorted(p.name for p in (out / "strips").iterdir()) == [
        "cross_expression_lp_s12__dpe_s.jpg", "cross_expression_lp_s12__grid_bbaf2n.jpg",
        "cross_lp_s12__dpe_s.jpg", "cross_lp_s12__grid_bbaf2n.jpg", "native_dpe_s.jpg", "native_grid_bbaf2n.jpg", "self_dpe_s.jpg", "self_grid_bbaf2n.jpg"
    ]  # fmt: skip


def test_identical_frames_give_infinite_psnr_in_the_report(assets_env, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A still clip: the source baseline reproduces every frame exactly (PSNR inf, SSIM 1)."""
    from facereenact.io.image import read_image

    folder = tmp_path / "still"
    folder.mkdir()
    picture = read_image(data_dir / "portraits" / "lp_s12.jpg")[:512, :512]
    # Lossless (PNG frames): every decoded frame is exactly the first.
    container = av.open(str(folder / "still.mov"), "w")
    stream = container.add_stream("png", rate=25)
    stream.width, stream.height, stream.pix_fmt = 512, 512, "rgb24"
    for _ in range(8):
        container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
    container.mux(stream.encode())
    container.close()
    out = tmp_path / "report"
    result = _run("--data", folder, "--out", out, "--methods", "source", "--protocols", "self", "--every", "2", "--max-frames", "2", "--window", "0")
    assert result.exit_code == 0, result.output
    report = _strict_json(out / "metrics.json")
    source = report["self_reenactment"]["clips"][0]["methods"]["source"]
    assert source["psnr"] == "inf" and source["ssim"] == pytest.approx(1.0) and source["l1"] == 0
    aggregate = report["self_reenactment"]["aggregate"]["source"]
    assert aggregate["psnr"]["mean"] == "inf" and aggregate["psnr"]["n_infinite"] == 1
    assert "∞" in result.output


def test_evaluate_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    result = _run("--data", tmp_path, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "no video clips" in _error_line(result)
    assert not (tmp_path / "out").exists()


def test_evaluate_a_folder_whose_only_clip_is_unreadable(assets_env, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Nothing measured is a failure, not "0 failed": exit 1, the reasons kept in the report."""
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "cut.mp4").write_bytes((data_dir / "clips" / "dpe_s.mp4").read_bytes()[:5000])
    result = _run("--data", tmp_path, "--out", tmp_path / "out", *TINY)
    assert result.exit_code == 1, result.output
    last = [line for line in result.output.splitlines() if line.strip()][-1]
    assert last.startswith("error: no clip could be measured"), last
    assert (tmp_path / "out" / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "source,magic"], "unknown method 'magic'"),
        (["--protocols", "self,other"], "unknown protocol"),
        (["--lpips-alexnet", "x.pth"], "needs both"),
        (["--clips", "nobody"], "no clip named nobody"),
        (["--identities", "no-such-identities.txt"], "cannot read identities file no-such-identities.txt"),
    ],
)
def test_evaluate_bad_options(data_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = _run("--data", data_dir, "--out", tmp_path / "out", *args)
    assert result.exit_code == 1
    assert message in _error_line(result)


def test_evaluate_a_corrupt_checkpoint(data_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model.safetensors"
    broken.write_bytes(b"\x00" * 64)
    result = _run("--data", data_dir, "--out", tmp_path / "out", "--methods", f"source,warp,neural:{broken}")
    assert result.exit_code == 1
    assert "is not a safetensors file" in _error_line(result)


def test_evaluate_video_to_video(assets_env, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Three clips of two people (an identities file says so): every clip re-acted by one of the
    other person, over its first frames; the unchanged source keeps identity and pose exactly."""
    folder = tmp_path / "data"
    folder.mkdir()
    for name, clip in (("dpe_s.mp4", "dpe_s.mp4"), ("dpe_s_again.mp4", "dpe_s.mp4"), ("grid.mp4", "grid_bbaf2n.mp4")):
        (folder / name).symlink_to(data_dir / "clips" / clip)
    (folder / "identities.txt").write_text("# one person in two clips\ndpe_s dpe_s_again\n")
    out = tmp_path / "report"
    result = _run("--data", folder, "--out", out, "--methods", "source,warp", "--protocols", "video", "--video-pairs", "0", "--video-frames", "8", "--bootstrap", "20")
    assert result.exit_code == 0, result.output
    assert "Video-to-video: 3 of 3 pairs" in result.output
    report = _strict_json(out / "metrics.json")
    assert set(report) >= {"video_to_video"} and "self_reenactment" not in report
    pairs = {p["source"]: p for p in report["video_to_video"]["pairs"]}
    assert pairs["grid"]["driving"] in ("dpe_s", "dpe_s_again") and {pairs["dpe_s"]["driving"], pairs["dpe_s_again"]["driving"]} == {"grid"}
    for pair in pairs.values():
        assert pair["status"] == "ok" and pair["frames"] == list(range(8))
        source, warp = pair["methods"]["source"], pair["methods"]["warp"]
        assert source["csim"] > 0.999 and source["yaw_r"] > 0.999 and source["pitch_r"] > 0.999, "the unchanged source frame"
        assert 0.85 < warp["csim"] < source["csim"], "each output frame against its own source frame"
        assert warp["face_found"] == 1.0 and -1 <= warp["yaw_r"] <= 1
        assert (out / pair["strip"]).is_file()
    aggregate = report["video_to_video"]["aggregate"]["warp"]
    assert set(aggregate) == {"csim", "face_found", "yaw_r", "pitch_r", "yaw_r_ceiling", "pitch_r_ceiling", "expression_r", "expression_ratio", "still_expression_r"}
    assert aggregate["csim"]["n"] == 3
    assert "still_expression_r" not in pairs["grid"]["methods"]["source"], "the unchanged source has no still comparator"
    assert "yaw_r_ceiling" not in pairs["grid"]["methods"]["source"], "the unchanged source is its own pose"
    assert all(-1 <= p["methods"]["warp"][key] <= 1 for p in pairs.values() for key in ("yaw_r_ceiling", "pitch_r_ceiling"))
    assert all(-1 <= p["methods"]["warp"]["still_expression_r"] <= 1 for p in pairs.values() if p["methods"]["warp"]["still_expression_r"] is not None)
    assert aggregate["still_expression_r"]["n"] >= 1
    html = (out / "report.html").read_text()
    assert "<h2>Video-to-video</h2>" in html and f"strips/video_grid__{pairs['grid']['driving']}.jpg" in html
    assert not any("Fréchet" in note for note in report["notes"]), "no note about a protocol that did not run"
