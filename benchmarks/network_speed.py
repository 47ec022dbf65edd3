"""Speed and memory of the network on this machine: generator inference at a crop size, and
training steps (generator + discriminator, forward and backward) on synthetic inputs.

    python benchmarks/network_speed.py --preset cpu-small --preset paper-256 --threads 2

Prints one line per measurement; the README quotes them. Peak RSS is the process's maximum
resident memory so far (it only grows, so measure one preset per run for a clean figure).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from facereenact.model.config import PRESETS
from facereenact.model.discriminator import MultiScaleDiscriminator
from facereenact.model.generator import Generator
from facereenact.train import losses as L


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def inference_fps(preset: str, batch: int, repeats: int) -> float:
    config = PRESETS[preset]
    generator = Generator(config).eval()
    size = config.resolution
    inputs = [torch.rand(batch, 3, size, size) for _ in range(3)]
    with torch.inference_mode():
        generator(*inputs)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            generator(*inputs)
    return batch * repeats / (time.perf_counter() - start)


def training_images_per_second(preset: str, batch: int, repeats: int) -> float:
    config = PRESETS[preset]
    generator, discriminator = Generator(config), MultiScaleDiscriminator(config)
    optim_g = torch.optim.Adam(generator.parameters(), 2e-4)
    optim_d = torch.optim.Adam(discriminator.parameters(), 2e-4)
    size = config.resolution
    source, source_pncc, pncc, target = (torch.rand(batch, 3, size, size) for _ in range(4))

    def step() -> None:
        out = generator(source, source_pncc, pncc)
        l1, ms = L.reconstruction_loss(out.image, target, 1.0)
        discriminator.requires_grad_(False)
        fake = discriminator(out.image, pncc)
        with torch.no_grad():
            real = discriminator(target, pncc)
        discriminator.requires_grad_(True)
        loss = l1 + ms + L.correspondence_loss(out.warped_small, target) + 0.05 * L.hinge_generator(fake) + L.feature_matching(real, fake)
        optim_g.zero_grad()
        loss.backward()
        optim_g.step()
        both = discriminator(torch.cat([target, out.image.detach()]), torch.cat([pncc, pncc]))
        d_loss = L.hinge_discriminator([[f.chunk(2)[0] for f in s] for s in both], [[f.chunk(2)[1] for f in s] for s in both])
        optim_d.zero_grad()
        d_loss.backward()
        optim_d.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", action="append", choices=sorted(PRESETS), required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for preset in args.preset:
        size = PRESETS[preset].resolution
        for batch in (1, 8):
            fps = inference_fps(preset, batch, args.repeats)
            print(f"{preset}: generator inference at {size}², batch {batch}: {fps:.2f} frames/s (peak RSS {_peak_rss_mb():.0f} MB)")
        if not args.skip_training:
            rate = training_images_per_second(preset, 8, args.repeats)
            print(f"{preset}: training step (G + D, batch 8) at {size}²: {rate:.2f} images/s (peak RSS {_peak_rss_mb():.0f} MB)")


if __name__ == "__main__":
    main()
