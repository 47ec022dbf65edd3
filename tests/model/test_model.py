"""The network's parts: chunked attention equals the unchunked one; shapes and gradients."""

from __future__ import annotations

import pytest
import torch

from facereenact.errors import ConfigError
from facereenact.model.attention import attention_warp, warp_by_flow
from facereenact.model.checkpoint import transplant
from facereenact.model.config import PRESETS, ModelConfig
from facereenact.model.discriminator import MultiScaleDiscriminator
from facereenact.model.generator import BLEND_START, Generator, hole_region


def _features(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_chunked_attention_equals_unchunked(chunk: int) -> None:
    driving, source, values = _features(0, 2, 8, 6, 5), _features(1, 2, 8, 6, 5), _features(2, 2, 4, 6, 5)
    inverse_temperature = torch.tensor(20.0)
    whole = attention_warp(driving, source, values, inverse_temperature, chunk=None)
    parts = attention_warp(driving, source, values, inverse_temperature, chunk=chunk)
    for a, b in ((whole.warped, parts.warped), (whole.flow, parts.flow), (whole.confidence, parts.confidence)):
        assert torch.allclose(a, b, atol=1e-6)


def test_recomputed_attention_has_the_same_gradients() -> None:
    grads = []
    for recompute in (False, True):
        driving = _features(0, 1, 8, 4, 4).requires_grad_()
        source, values = _features(1, 1, 8, 4, 4), _features(2, 1, 3, 4, 4)
        out = attention_warp(driving, source, values, torch.tensor(10.0), chunk=5, recompute=recompute)
        (out.warped.square().sum() + out.flow.sum()).backward()
        grads.append(driving.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_attention_finds_the_matching_position() -> None:
    """Identical features at permuted positions: the flow points at each one's twin."""
    source = _features(3, 1, 16, 4, 4)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(4))
    driving = source.flatten(2)[:, :, order].view(1, 16, 4, 4)
    out = attention_warp(driving, source, source, torch.tensor(1000.0), chunk=3)
    assert torch.allclose(out.warped, driving, atol=1e-4)
    assert torch.allclose(out.confidence, torch.ones_like(out.confidence), atol=1e-5)
    assert torch.allclose(warp_by_flow(source, out.flow), driving, atol=1e-3)


@pytest.mark.parametrize("name", ["tiny", "cpu-small"])
def test_generator_and_discriminator_shapes_and_gradients(name: str) -> None:
    config = PRESETS[name]
    generator, discriminator = Generator(config), MultiScaleDiscriminator(config)
    size = config.resolution
    x = [torch.rand(2, 3, size, size) for _ in range(3)]
    out = generator(*x)
    assert out.image.shape == (2, 3, size, size) and 0 <= out.image.min() and out.image.max() <= 1
    assert out.warped.shape == (2, 3, size, size)
    assert out.flow.shape == (2, 2, size // 4, size // 4) and out.warped_small.shape == (2, 3, size // 4, size // 4)
    scales = discriminator(out.image, x[2])
    assert len(scales) == config.disc_scales and all(s[-1].shape[1] == 1 for s in scales)
    sum(s[-1].mean() for s in scales).backward()
    unused = [n for n, p in generator.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not unused, f"parameters the image does not depend on: {unused[:3]}"


def test_warp_inputs_are_required_when_configured() -> None:
    config = ModelConfig(resolution=32, base=4, corr_channels=8, warp_inputs=True)
    generator = Generator(config)
    x = [torch.rand(1, 3, 32, 32) for _ in range(3)]
    with pytest.raises(ValueError, match="warp_inputs"):
        generator(*x)
    assert generator(*x, torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32)).image.shape == (1, 3, 32, 32)


def test_bad_architecture_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="multiple of 4"):
        ModelConfig(resolution=30)
    with pytest.raises(ConfigError, match="base"):
        ModelConfig(base=0)
    with pytest.raises(ConfigError, match="refine_region"):
        ModelConfig(refine_region="mouth")


def test_refining_only_in_the_holes_keeps_the_warp_exactly_elsewhere() -> None:
    """``refine_region: holes``: the output is the warp, bit for bit, wherever the grown and
    feathered hole mask is zero, and the synthesis can reach into the hole."""
    torch.manual_seed(0)
    config = ModelConfig(resolution=64, base=4, corr_channels=8, warp_inputs=True, refine_region="holes")
    generator = Generator(config)
    with torch.no_grad():
        generator.to_rgb.bias[3] = 6.0  # the blend wide open: only the region limits it
    holes = torch.zeros(2, 1, 64, 64)
    holes[0, :, 20:30, 24:40] = 1  # the second sample has no holes at all
    warp = torch.rand(2, 3, 64, 64)
    out = generator(*[torch.rand(2, 3, 64, 64) for _ in range(3)], warp, holes)
    region = hole_region(holes)
    assert torch.equal(out.image[region.expand(-1, 3, -1, -1) == 0], warp[region.expand(-1, 3, -1, -1) == 0])
    assert torch.equal(out.image[1], warp[1])
    inside = holes[0, 0] > 0
    assert float(out.blend[0, 0][inside].min()) > 0.9
    # grown by 1 px at 64² and feathered: the region is 1 inside the hole, between 0 and 1
    # just around it, and 0 a few pixels away
    assert float(region[0, 0, 20:30, 24:40].min()) == 1.0
    assert 0 < float(region[0, 0, 31, 30]) < 1 and float(region[0, 0, 34, 30]) == 0.0


def test_a_refining_generator_starts_close_to_the_warp() -> None:
    """Refining the warp, an untrained network must return (almost) the warp itself, so that
    training starts from the training-free result rather than from noise."""
    torch.manual_seed(0)
    config = ModelConfig(resolution=32, base=4, corr_channels=8, warp_inputs=True)
    generator = Generator(config)
    x = [torch.rand(2, 3, 32, 32) for _ in range(3)]
    warp = torch.rand(2, 3, 32, 32)
    out = generator(*x, warp, torch.zeros(2, 1, 32, 32))
    assert out.blend is not None and out.synthesis is not None
    assert out.blend.shape == (2, 1, 32, 32) and float(out.blend.max()) < 0.2
    assert torch.allclose(out.image, warp + out.blend * (out.synthesis - warp))
    assert (out.image - warp).abs().mean() < 0.05


def test_warm_start_copies_what_fits_and_keeps_the_old_function() -> None:
    """A network that gained inputs (the warp) starts from one trained without them: shared
    layers copied, weights from the new inputs zero, so the old layers compute what they did."""
    torch.manual_seed(0)
    small = ModelConfig(resolution=32, base=4, corr_channels=8)
    old, new = Generator(small), Generator(ModelConfig(resolution=32, base=4, corr_channels=8, warp_inputs=True))
    tensors = {f"ema.{k}": v for k, v in old.state_dict().items()}
    skipped = transplant(new, tensors, "ema")
    assert skipped == []
    old_state, new_state = old.state_dict(), new.state_dict()
    same = [k for k in old_state if old_state[k].shape == new_state[k].shape]
    assert len(same) > 0.8 * len(old_state) and all(torch.equal(old_state[k], new_state[k]) for k in same)
    x = [torch.rand(1, 3, 32, 32) for _ in range(3)]
    with torch.no_grad():
        before = old(*x)
        after = new(*x, torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32))
    assert after.synthesis is not None
    assert torch.allclose(after.synthesis, before.image, atol=1e-5), "the synthesis must be the old network's image"
    assert float(new.to_rgb.bias[3]) == BLEND_START


@pytest.mark.parametrize("warp_inputs", [False, True])
def test_source_features_computed_once_give_the_same_output(warp_inputs: bool) -> None:
    """Inference encodes the source once and reuses it for every driving frame: the result is
    what the generator computes from the repeated source image."""
    torch.manual_seed(0)
    generator = Generator(ModelConfig(resolution=32, base=4, corr_channels=8, warp_inputs=warp_inputs)).eval()
    source, source_pncc = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    extras = (torch.rand(3, 3, 32, 32), torch.rand(3, 1, 32, 32)) if warp_inputs else ()
    pncc = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        repeated = generator(source.expand(3, -1, -1, -1), source_pncc.expand(3, -1, -1, -1), pncc, *extras)
        cached = generator(source, source_pncc, pncc, *extras, source=generator.encode_source(source, source_pncc))
    # (float rounding differs between a batch of 1 and of 3: equal to about 1e-5)
    assert torch.allclose(cached.image, repeated.image, atol=1e-4) and torch.allclose(cached.flow, repeated.flow, atol=1e-4)


@pytest.mark.parametrize("size", [64, 96, 128, 32])
def test_resize_to_any_size(size: int) -> None:
    """A crop resampled to the network's 64²: whole blocks, a 96² crop (not a whole multiple),
    or growing; a flat picture stays flat at its level."""
    from facereenact.model.layers import resize_to

    picture = torch.full((2, 3, size, size), 0.25)
    picture[:, :, : size // 2] = 0.75  # top half bright: the mean stays 0.5
    resized = resize_to(picture, torch.zeros(1, 1, 64, 64))
    assert resized.shape == (2, 3, 64, 64)
    assert abs(float(resized.mean()) - 0.5) < 1e-3
