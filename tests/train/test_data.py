"""Training pairs: shapes, the identity split, and a flip that flips the 3D faces too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facereenact.errors import DataError
from facereenact.face3d.mirror import ParamMirror
from facereenact.face3d.pncc import render_pncc
from facereenact.train.data import (
    Augment,
    EpochSampler,
    PairDataset,
    params_from_batch,
    read_manifest,
    render_conditions,
    split_identities,
    validation_batch,
)


@pytest.fixture(scope="module")
def mirror(model) -> ParamMirror:  # type: ignore[no-untyped-def]
    return ParamMirror(model)


def test_pairs_have_the_right_shapes(prepared_dataset, model, mirror) -> None:  # type: ignore[no-untyped-def]
    clips = read_manifest(prepared_dataset)
    dataset = PairDataset(prepared_dataset, clips, 48, Augment(), seed=1, mirror=mirror)
    assert len(dataset) == 40
    sample = dataset[3]
    assert sample["source"].shape == (3, 48, 48) and sample["target"].shape == (3, 48, 48)
    assert 0 <= float(sample["source"].min()) and float(sample["source"].max()) <= 1
    assert sample["driving_shape"].shape == (40,) and sample["source_rotation"].shape == (3, 3)
    assert torch.equal(sample["source_shape"], dataset[3]["source_shape"]), "a sample depends only on (seed, index)"
    batch = {k: torch.stack([dataset[i][k] for i in range(4)]) for k in sample}
    source_pncc, driving_pncc = render_conditions(model, params_from_batch(batch, "source"), params_from_batch(batch, "driving"), 48)
    assert source_pncc.shape == (4, 3, 48, 48) and driving_pncc.shape == (4, 3, 48, 48)
    coverage = (driving_pncc.sum(1) > 0).float().mean()
    assert 0.1 < coverage < 0.6, "the face covers a sensible share of the crop"


def test_reconstructed_pncc_takes_the_source_identity(prepared_dataset, model) -> None:  # type: ignore[no-untyped-def]
    dataset = PairDataset(prepared_dataset, read_manifest(prepared_dataset), 64, None, seed=0, mirror=None)
    sample = dataset[0]
    batch = {k: v[None] for k, v in sample.items()}
    source, driving = params_from_batch(batch, "source"), params_from_batch(batch, "driving")
    other = source.replace(shape=source.shape + 3 * torch.randn(1, 40, generator=torch.Generator().manual_seed(0)) * 1e5)
    _, with_source = render_conditions(model, source, driving, 64)
    _, with_other = render_conditions(model, other, driving, 64)
    own = render_pncc(model, model.vertices(driving), 64, 64)[0]
    assert not torch.allclose(with_source, with_other), "the driving PNCC is rebuilt with the source's identity"
    assert not torch.equal(with_source, own) or torch.equal(source.shape, driving.shape)


def test_flip_mirrors_images_and_faces_alike(prepared_dataset, model, mirror) -> None:  # type: ignore[no-untyped-def]
    clips = read_manifest(prepared_dataset)
    plain = PairDataset(prepared_dataset, clips, 64, Augment(jitter=0.0, flip=0.0), seed=5, mirror=mirror)
    flipped = PairDataset(prepared_dataset, clips, 64, Augment(jitter=0.0, flip=1.0), seed=5, mirror=mirror)
    a, b = plain[11], flipped[11]
    assert torch.equal(b["source"], a["source"].flip(-1)) and torch.equal(b["target"], a["target"].flip(-1))
    batch_a = {k: v[None] for k, v in a.items()}
    batch_b = {k: v[None] for k, v in b.items()}
    pncc_a, _ = render_conditions(model, params_from_batch(batch_a, "source"), params_from_batch(batch_a, "driving"), 64)
    pncc_b, _ = render_conditions(model, params_from_batch(batch_b, "source"), params_from_batch(batch_b, "driving"), 64)
    mirrored = pncc_a.flip(-1)
    mask_a, mask_b = mirrored.sum(1) > 0, pncc_b.sum(1) > 0
    iou = (mask_a & mask_b).sum() / (mask_a | mask_b).sum()
    assert iou > 0.9, "the mirrored face covers the mirrored pixels"
    both = mask_a & mask_b
    # Left and right swap on the mirrored face: the x code becomes 1 − x, y and z stay.
    assert (pncc_b[:, 0][both] - (1 - mirrored[:, 0][both])).abs().mean() < 0.05
    assert (pncc_b[:, 1:].permute(1, 0, 2, 3)[:, both] - mirrored[:, 1:].permute(1, 0, 2, 3)[:, both]).abs().mean() < 0.05


def test_colour_jitter_is_the_same_on_both_frames(prepared_dataset, mirror) -> None:  # type: ignore[no-untyped-def]
    clips = read_manifest(prepared_dataset)
    plain = PairDataset(prepared_dataset, clips, 64, Augment(jitter=0.0, flip=0.0), seed=2, mirror=mirror)
    jittered = PairDataset(prepared_dataset, clips, 64, Augment(jitter=0.3, flip=0.0), seed=2, mirror=mirror)
    for index in (0, 17, 33):
        a, b = plain[index], jittered[index]
        ratio_source = (b["source"].mean() / a["source"].mean()).item()
        ratio_target = (b["target"].mean() / a["target"].mean()).item()
        assert abs(ratio_source - ratio_target) < 0.05


def test_identity_split_is_deterministic_and_disjoint(prepared_dataset) -> None:  # type: ignore[no-untyped-def]
    clips = read_manifest(prepared_dataset)
    training, validation = split_identities(clips, [], 3)
    assert len(validation) == 3 and len(training) == 1 and not set(training) & set(validation)
    assert split_identities(list(reversed(clips)), [], 3) == (training, validation)
    assert split_identities(clips, ["dpe_s"], 3) == (["grid_bbaf2n", "pcavs_00015", "stk_nice"], ["dpe_s"])
    with pytest.raises(DataError, match="not in the dataset"):
        split_identities(clips, ["nobody"], 3)
    with pytest.raises(DataError, match="no training identities"):
        split_identities(clips, [], 4)


def test_sampler_shards_ranks_and_resumes_mid_epoch(prepared_dataset) -> None:  # type: ignore[no-untyped-def]
    dataset = PairDataset(prepared_dataset, read_manifest(prepared_dataset), 32, None, seed=0, mirror=None)
    take = lambda sampler, n: [next(it) for it in [iter(sampler)] for _ in range(n)]  # noqa: E731
    rank0, rank1 = take(EpochSampler(dataset, 0, 2, 0, 4), 40), take(EpochSampler(dataset, 1, 2, 0, 4), 40)
    first_epoch = set(rank0[:20]) | set(rank1[:20])
    assert len(first_epoch) == 40, "the two ranks share an epoch without overlap"
    assert min(rank0[20:]) >= 40, "indices carry the epoch"
    assert take(EpochSampler(dataset, 0, 2, 0, 4, start_batch=3), 8) == rank0[12:20]


def test_validation_batch_is_fixed(prepared_dataset) -> None:  # type: ignore[no-untyped-def]
    dataset = PairDataset(prepared_dataset, read_manifest(prepared_dataset), 32, None, seed=0, mirror=None)
    a, b = validation_batch(dataset, 6, 0), validation_batch(dataset, 6, 0)
    assert a["source"].shape == (6, 3, 32, 32) and all(torch.equal(a[k], b[k]) for k in a)
    assert not np.allclose(a["source"][0].numpy(), a["target"][0].numpy())


def test_geometric_warp_inputs_reproduce_the_source_when_driven_by_itself(prepared_dataset, model) -> None:  # type: ignore[no-untyped-def]
    from facereenact.train.data import geometric_warp_inputs

    dataset = PairDataset(prepared_dataset, read_manifest(prepared_dataset), 64, None, seed=0, mirror=None)
    batch = {k: torch.stack([dataset[i][k] for i in (0, 25)]) for k in dataset[0]}
    source = params_from_batch(batch, "source")
    images, holes = geometric_warp_inputs(model, batch["source"], source, params_from_batch(batch, "driving"))
    assert images.shape == (2, 3, 64, 64) and holes.shape == (2, 1, 64, 64)
    same, same_holes = geometric_warp_inputs(model, batch["source"], source, source)
    assert (same - batch["source"]).abs().mean() < 0.03 and same_holes.mean() < 0.05


def test_a_dataset_with_a_warp_model_carries_each_samples_warp(prepared_dataset, model, mirror) -> None:  # type: ignore[no-untyped-def]
    """The loader workers make the warp inputs: the same warp as computed from the sample's own
    (augmented) images and fits."""
    from facereenact.train.data import geometric_warp_inputs

    clips = read_manifest(prepared_dataset)
    plain = PairDataset(prepared_dataset, clips, 64, Augment(), seed=3, mirror=mirror)
    with_warp = PairDataset(prepared_dataset, clips, 64, Augment(), seed=3, mirror=mirror, warp_model=model)
    for index in (1, 30):
        sample, expected = with_warp[index], plain[index]
        assert torch.equal(sample["source"], expected["source"])
        batch = {k: v[None] for k, v in expected.items()}
        images, holes = geometric_warp_inputs(model, batch["source"], params_from_batch(batch, "source"), params_from_batch(batch, "driving"))
        assert sample["warp"].shape == (3, 64, 64) and sample["holes"].shape == (1, 64, 64)
        assert torch.allclose(sample["warp"], images[0]) and torch.equal(sample["holes"], holes[0])
