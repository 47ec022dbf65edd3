"""Method parsing and loading, the source baseline stage, and the sampling and pairing rules."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from facereenact.errors import CheckpointError, InputError
from facereenact.evaluate.methods import SourceStage, parse_methods
from facereenact.evaluate.protocols import Sampling, assign_cross_pairs, assign_video_pairs
from facereenact.stage import WarpTargets


def test_source_and_warp_methods() -> None:
    methods = parse_methods(" source , warp ")
    assert [m.name for m in methods] == ["source", "warp"]
    assert isinstance(methods[0].stage, SourceStage) and methods[1].stage is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [("", "no methods"), ("source,warp,source", "listed twice"), ("pix2pix", "unknown method 'pix2pix'"), ("neural:", "unknown method")],
)
def test_bad_method_lists(spec: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_methods(spec)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        parse_methods(f"source,neural:{tmp_path / 'absent.safetensors'}")
    with pytest.raises(InputError, match="is not a file"):
        parse_methods(f"neural:{tmp_path}")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"\xff" * 8 + b"{}", b"\x02\x00\x00\x00\x00\x00\x00\x00{"])
def test_corrupt_checkpoint_is_refused_before_model_code(tmp_path: Path, content: bytes) -> None:
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(content)
    with pytest.raises(InputError, match="is not a safetensors file") as info:
        parse_methods(f"neural:{checkpoint}")
    assert "\n" not in str(info.value)


def test_a_real_safetensors_file_reaches_the_model_package(tmp_path: Path) -> None:
    checkpoint = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(checkpoint))
    with pytest.raises(CheckpointError, match="is not a facereenact checkpoint") as info:
        parse_methods(f"neural:{checkpoint}")
    assert "\n" not in str(info.value)


def test_source_stage_repeats_the_source_crop() -> None:
    source = torch.rand(1, 3, 32, 32)
    targets = WarpTargets(vertices=torch.zeros(5, 10, 3), landmarks=torch.zeros(5, 68, 3), head=torch.zeros(5, 2, 3))
    result = SourceStage()(source, targets)
    assert result.images.shape == (5, 3, 32, 32) and torch.equal(result.images[3], source[0])
    assert result.holes.sum() == 0 and result.field.shape == (5, 32, 32, 2)
    assert result.field[0, 7, 3].tolist() == [3.0, 7.0]  # the identity warp: (x, y) of each pixel


def test_sampling_indices() -> None:
    sampling = Sampling(every=10, max_frames=8, window=16)
    assert sampling.decode_limit == 81
    assert Sampling(every=10, max_frames=2, window=30, expression_window=0).decode_limit == 31
    assert Sampling(every=10, max_frames=2, window=30).decode_limit == 51, "the cross protocol's 50 consecutive frames are decoded too"
    assert sampling.driving_indices(200) == [10, 20, 30, 40, 50, 60, 70, 80]
    assert sampling.driving_indices(55) == [10, 20, 30, 40, 50]
    assert sampling.source_indices(80) == [0]
    assert Sampling(sources=3).source_indices(80) == [0, 40, 80]
    assert Sampling(every=2, max_frames=3, window=16, expression_window=0).decode_limit == 17
    with pytest.raises(ValueError):
        Sampling(every=0)
    with pytest.raises(ValueError):
        Sampling(expression_window=-1)
    with pytest.raises(ValueError):
        Sampling(video_frames=2)


def test_cross_pairs_are_balanced_reproducible_and_never_self() -> None:
    clips = [f"clip{i}" for i in range(20)]
    portraits = [f"p{i}" for i in range(8)]
    pairs = assign_cross_pairs(clips, portraits, 2, np.random.default_rng(0))
    assert pairs == assign_cross_pairs(clips, portraits, 2, np.random.default_rng(0))
    assert pairs != assign_cross_pairs(clips, portraits, 2, np.random.default_rng(1))
    assert all(len(set(chosen)) == 2 for chosen in pairs.values())
    uses = Counter(source for chosen in pairs.values() for source in chosen)
    assert set(uses) == set(portraits) and max(uses.values()) - min(uses.values()) <= 1
    every = assign_cross_pairs(clips, portraits, 0, np.random.default_rng(0))
    assert all(sorted(chosen) == sorted(portraits) for chosen in every.values())
    # Clips as their own sources (no portraits): never paired with themselves.
    own = assign_cross_pairs(clips[:4], clips[:4], 5, np.random.default_rng(0))
    assert all(driver not in chosen and len(chosen) == 3 for driver, chosen in own.items())


def test_video_pairs_are_reproducible_and_of_different_people() -> None:
    clips = [f"clip{i}" for i in range(12)]
    person = {"clip1": "a", "clip2": "a", "clip3": "a", "clip4": "b", "clip5": "b"}.get
    pairs = assign_video_pairs(clips, 5, lambda clip: person(clip, clip), np.random.default_rng(0))
    assert pairs == assign_video_pairs(clips, 5, lambda clip: person(clip, clip), np.random.default_rng(0))
    assert pairs != assign_video_pairs(clips, 5, lambda clip: person(clip, clip), np.random.default_rng(1))
    assert len(pairs) == 5 and all(person(s, s) != person(d, d) for s, d in pairs.items())
    every = assign_video_pairs(clips, 0, lambda clip: person(clip, clip), np.random.default_rng(0))
    assert sorted(every) == sorted(clips), "0: every clip is a source"
    assert max(Counter(every.values()).values()) <= 3, "drivers are the next clips in one order, so each drives about once"
    assert assign_video_pairs(["x", "y"], 0, lambda clip: "one person", np.random.default_rng(0)) == {}
