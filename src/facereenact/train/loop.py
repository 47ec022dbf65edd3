"""The training loop: one process, or many under ``torchrun`` (DDP: gloo on CPU, NCCL on GPU).

Every process trains on its share of each global batch (DistributedSampler); gradients are
averaged by DDP, so all replicas hold the same weights (checked at the end). Rank 0 alone writes
TensorBoard logs, ``metrics.jsonl`` and checkpoints. A run resumes exactly: the weights, the EMA,
both optimizers and the loss scaler come back from the checkpoint and the data stream restarts
at the next batch, whose samples depend only on (seed, index).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from pytorch_msssim import ssim
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from facereenact.errors import CheckpointError, ConfigError
from facereenact.face3d.mirror import ParamMirror
from facereenact.face3d.morphable import load_morphable_model
from facereenact.io.assets import Assets
from facereenact.model.checkpoint import (
    architecture_of,
    generator_prefix,
    load_module,
    load_optimizer,
    read_checkpoint,
    save_checkpoint,
    transplant,
)
from facereenact.model.discriminator import MultiScaleDiscriminator
from facereenact.model.generator import Generator, GeneratorOutput
from facereenact.train import losses as L
from facereenact.train.config import TrainConfig
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


@dataclass
class TrainSummary:
    steps: int
    start_step: int
    train_identities: list[str]
    val_identities: list[str]
    validation: list[dict[str, float]] = field(default_factory=list)
    images_per_second: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Dist:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup(config: TrainConfig) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    wanted = config.run.device
    if wanted == "auto":
        device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(wanted)
        if device.type == "cuda" and world > 1:
            device = torch.device(f"cuda:{local}")
        if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
            raise ConfigError(f"run.device is {wanted}, but this machine has {torch.cuda.device_count()} CUDA device(s): use auto or cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        # Fixed input sizes: let cuDNN pick the fastest kernels; TF32 matrix products on Ampere+.
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Dist(rank, world, device)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob("step_*.safetensors"))


def _grid(rows: list[torch.Tensor], count: int = 4) -> torch.Tensor:
    """Columns side by side, samples stacked: (3, n·H, k·W) for TensorBoard."""
    columns = [r[:count].detach().float().cpu().clamp(0, 1) for r in rows]
    columns = [c.expand(-1, 3, -1, -1) for c in columns]
    return torch.cat([torch.cat(list(column), 1) for column in columns], 2)


def _weights_digest(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for tensor in module.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class Trainer:
    """Holds the networks, optimizers and data of one run; :meth:`run` trains to the end."""

    def __init__(self, config: TrainConfig, resume: bool, log: Callable[[str], None]):
        self.config = config
        self.log = log
        self.dist = _setup(config)
        device = self.dist.device
        self.out = config.run.out
        self.checkpoint_dir = self.out / "checkpoints"
        existing = _checkpoints(self.checkpoint_dir)
        if existing and not resume:
            raise ConfigError(f"{self.out} already holds checkpoints: resume the run to continue it, or set run.out to a new folder")
        _seed(config.run.seed)
        self.morphable = load_morphable_model(Assets.resolve(config.run.assets)).to(device)

        root = config.data.root
        assert root is not None
        clips = read_manifest(root)
        self.train_ids, self.val_ids = split_identities(clips, list(config.data.val_identities), config.data.val_count)
        resolution = config.model.resolution
        mirror = ParamMirror(self.morphable) if config.data.flip > 0 else None
        warp_model = self.morphable.to("cpu") if config.model.warp_inputs else None
        train_clips = [c for c in clips if c["identity"] in self.train_ids]
        self.dataset = PairDataset(root, train_clips, resolution, Augment(config.data.jitter, config.data.flip), config.run.seed, mirror, warp_model)
        self.validation = validation_batch(PairDataset(root, [c for c in clips if c["identity"] in self.val_ids], resolution, None, config.run.seed, None, warp_model),
                                           config.data.val_batch, config.run.seed) if self.dist.main else None  # fmt: skip

        self.generator = Generator(config.model).to(device)
        self.generator.correspondence.recompute = config.optim.recompute_attention
        self.discriminator = MultiScaleDiscriminator(config.model).to(device)
        warm_start = self._warm_start(config.run.init_from) if config.run.init_from and not (resume and existing) else []
        self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        betas = (config.optim.beta1, config.optim.beta2)
        self.optim_g = torch.optim.Adam(self.generator.parameters(), lr=config.optim.lr_generator, betas=betas)
        self.optim_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.optim.lr_discriminator, betas=betas)
        self.amp_dtype: torch.dtype | None = None
        if device.type == "cuda" and config.optim.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.vgg, self.identity, self.notes = L.optional_networks(
            config.losses.vgg_weights, config.losses.identity_model, config.losses.vgg, config.losses.identity
        )
        self.notes += warm_start
        for network in (self.vgg, self.identity):
            if network is not None:
                network.to(device)

        self.step = 0
        if resume:
            self._resume(existing)
        if self.dist.world > 1:
            self.g_train: nn.Module = DistributedDataParallel(self.generator, device_ids=[device] if device.type == "cuda" else None)
            self.d_train: nn.Module = DistributedDataParallel(self.discriminator, device_ids=[device] if device.type == "cuda" else None)
        else:
            self.g_train, self.d_train = self.generator, self.discriminator
        sampler = EpochSampler(self.dataset, self.dist.rank, self.dist.world, config.run.seed, config.optim.batch_size, start_batch=self.step)
        workers = config.data.workers
        loader = DataLoader(self.dataset, batch_size=config.optim.batch_size, sampler=sampler, num_workers=workers,
                            pin_memory=device.type == "cuda", persistent_workers=workers > 0, prefetch_factor=4 if workers else None)  # fmt: skip
        self.batches = iter(loader)
        self.writer = None
        if self.dist.main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("training logs to TensorBoard, which is not installed: pip install 'facereenact[train]'") from None
            self.out.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(self.out / "tensorboard"), purge_step=self.step)
            (self.out / "config.json").write_text(config.to_json() + "\n")

    # ---- checkpoints -------------------------------------------------------------------------
    def _warm_start(self, path: Path) -> list[str]:
        """Start the generator (from the EMA weights when present) and the discriminator from
        another run's checkpoint."""
        _, tensors = read_checkpoint(path)
        note = f"warm start from {path}"
        skipped = transplant(self.generator, tensors, generator_prefix(tensors))
        if skipped:
            note += f"; {len(skipped)} generator tensors left at their initial values"
        if any(key.startswith("discriminator.") for key in tensors):
            skipped = transplant(self.discriminator, tensors, "discriminator")
            note += f"; {len(skipped)} discriminator tensors left at their initial values" if skipped else ""
        else:
            note += "; the discriminator starts fresh (the file has none, as a release)"
        return [note]

    def _resume(self, existing: list[Path]) -> None:
        if not existing:
            self.notes.append(f"no checkpoint in {self.checkpoint_dir}: starting from step 0")
            return
        path = existing[-1]
        metadata, tensors = read_checkpoint(path)
        if architecture_of(metadata, path) != self.config.model:
            raise CheckpointError(f"{path} was trained with another architecture than this configuration's model section")
        load_module(self.generator, tensors, "generator", path)
        load_module(self.discriminator, tensors, "discriminator", path)
        load_module(self.ema, tensors, "ema", path)
        device = self.dist.device
        try:
            load_optimizer(self.optim_g, {k: v.to(device) for k, v in tensors.items() if k.startswith("optim_g.")}, "optim_g", metadata["optim_g_groups"])
            load_optimizer(self.optim_d, {k: v.to(device) for k, v in tensors.items() if k.startswith("optim_d.")}, "optim_d", metadata["optim_d_groups"])
            scaler = json.loads(metadata.get("scaler", "null"))
            if scaler:
                self.scaler.load_state_dict(scaler)
            self.step = int(metadata["step"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{path} holds an unreadable training state ({type(error).__name__}: {error})") from None
        if self.step < 0:
            raise CheckpointError(f"{path} records step {self.step}")
        if self.dist.main:
            self._forget_after(self.step)
        self.log(f"resumed from {path} at step {self.step}")

    def _forget_after(self, step: int) -> None:
        """Drop the metrics an interrupted run logged after its last checkpoint: those steps
        are trained again, and the curve must not hold them twice."""
        metrics = self.out / "metrics.jsonl"
        if metrics.is_file():
            kept = [line for line in metrics.read_text().splitlines() if line and json.loads(line)["step"] <= step]
            metrics.write_text("".join(line + "\n" for line in kept))

    def _save(self) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = self.checkpoint_dir / f"step_{self.step:07d}.safetensors"
        save_checkpoint(path, self.step, self.config.model, self.config.to_json(), self.generator, self.discriminator, self.ema,
                        self.optim_g, self.optim_d, self.scaler.state_dict() or None)  # fmt: skip
        for old in _checkpoints(self.checkpoint_dir)[: -self.config.run.keep_checkpoints]:
            old.unlink(missing_ok=True)

    # ---- one step ----------------------------------------------------------------------------
    def _inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """(target, driving PNCC, generator inputs) of a batch, rendered on the device."""
        device = self.dist.device
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        source, driving = params_from_batch(batch, "source"), params_from_batch(batch, "driving")
        source_pncc, driving_pncc = render_conditions(self.morphable, source, driving, self.config.model.resolution)
        inputs: tuple[torch.Tensor, ...] = (batch["source"], source_pncc, driving_pncc)
        if self.config.model.warp_inputs:
            inputs += (batch["warp"], batch["holes"])
        return batch["target"], driving_pncc, inputs

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.dist.device.type, dtype=self.amp_dtype)

    def _generator_losses(self, out: GeneratorOutput, target: torch.Tensor, pncc: torch.Tensor, adversarial: bool) -> dict[str, torch.Tensor]:
        weights = self.config.losses
        l1, ms = L.reconstruction_loss(out.image, target, weights.ms_ssim)
        terms = {"l1": l1, "ms_ssim": ms, "correspondence": L.correspondence_loss(out.warped_small, target)}
        total = weights.l1 * l1 + weights.ms_ssim * ms + weights.correspondence * terms["correspondence"]
        if self.vgg is not None:
            terms["vgg"] = self.vgg(out.image.float(), target.float())
            total = total + weights.vgg * terms["vgg"]
        if self.identity is not None:
            terms["identity"] = self.identity(out.image.float(), target.float())
            total = total + weights.identity * terms["identity"]
        if adversarial:
            # The discriminator is used as a fixed function here (not through DDP: only the
            # generator's gradients are wanted, and its own are never computed).
            self.discriminator.requires_grad_(False)
            fake = self.discriminator(out.image, pncc)
            with torch.no_grad():
                real = self.discriminator(target, pncc)
            self.discriminator.requires_grad_(True)
            terms["gan_g"] = L.hinge_generator(fake)
            terms["feature_matching"] = L.feature_matching(real, fake)
            total = total + weights.gan * terms["gan_g"] + weights.feature_matching * terms["feature_matching"]
        terms["total_g"] = total
        return terms

    def _train_step(self) -> dict[str, float]:
        config = self.config
        target, pncc, inputs = self._inputs(next(self.batches))
        adversarial = config.losses.gan > 0 and self.step >= config.losses.gan_start
        with self._autocast():
            out = self.g_train(*inputs)
            terms = self._generator_losses(out, target, pncc, adversarial)
        self.optim_g.zero_grad(set_to_none=True)
        self.scaler.scale(terms["total_g"]).backward()
        self.scaler.unscale_(self.optim_g)
        terms["grad_norm_g"] = torch.nn.utils.clip_grad_norm_(self.generator.parameters(), config.optim.grad_clip)
        self.scaler.step(self.optim_g)
        if adversarial:
            with self._autocast():
                both = self.d_train(torch.cat([target, out.image.detach()]), torch.cat([pncc, pncc]))
                real = [[f.chunk(2)[0] for f in scale] for scale in both]
                fake = [[f.chunk(2)[1] for f in scale] for scale in both]
                terms["gan_d"] = L.hinge_discriminator(real, fake)
            self.optim_d.zero_grad(set_to_none=True)
            self.scaler.scale(terms["gan_d"]).backward()
            self.scaler.unscale_(self.optim_d)
            terms["grad_norm_d"] = torch.nn.utils.clip_grad_norm_(self.discriminator.parameters(), config.optim.grad_clip)
            self.scaler.step(self.optim_d)
        self.scaler.update()
        self._update_ema()
        self._last = (inputs[0].detach(), target, pncc, out.warped.detach(), out.image.detach())
        values = {k: float(v.detach()) for k, v in terms.items()}
        values["temperature"] = float(self.generator.correspondence.temperature.detach())
        return values

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Warm-up: early on the average must forget the random initial weights quickly, or
        # validation (which uses the EMA) would lag the training by thousands of steps.
        decay = min(self.config.optim.ema_decay, (1 + self.step) / (10 + self.step))
        average: torch.Tensor  # Parameters in the first loop, buffers in the second
        current: torch.Tensor
        for average, current in zip(self.ema.parameters(), self.generator.parameters()):
            average.lerp_(current, 1 - decay)
        for average, current in zip(self.ema.buffers(), self.generator.buffers()):
            average.copy_(current)

    # ---- logging -----------------------------------------------------------------------------
    def _record(self, kind: str, values: dict[str, float]) -> None:
        with open(self.out / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps({"kind": kind, "step": self.step, **values}) + "\n")
        assert self.writer is not None
        for name, value in values.items():
            self.writer.add_scalar(f"{kind}/{name}", value, self.step)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """L1 and SSIM of the EMA generator on the fixed validation batch (rank 0)."""
        assert self.validation is not None and self.writer is not None
        target, pncc, inputs = self._inputs(self.validation)
        with self._autocast():
            out = self.ema(*inputs)
        image = out.image.float()
        values = {"l1": float((image - target).abs().mean()), "ssim": float(ssim(image, target, data_range=1.0, win_size=L.ssim_window(image.shape[-1])))}
        self._record("val", values)
        self.writer.add_image("val/source|driving|pncc|warped|output", _grid([inputs[0], target, pncc, out.warped, image]), self.step)
        return values

    def run(self) -> TrainSummary:
        config = self.config
        summary = TrainSummary(config.optim.steps, self.step, self.train_ids, self.val_ids, notes=list(self.notes))
        if self.dist.main:
            for note in self.notes:
                self.log(f"note: {note}")
            self.log(f"training on {len(self.train_ids)} identities ({len(self.dataset)} frames), validating on {', '.join(self.val_ids)}")
            if self.step == 0:
                summary.validation.append({"step": 0, **self.validate()})
        window_start, window_steps = time.perf_counter(), 0
        deadline = time.monotonic() + config.run.time_limit_minutes * 60 if config.run.time_limit_minutes > 0 else None
        last = self.step >= config.optim.steps
        while not last:
            values = self._train_step()
            self.step += 1
            window_steps += 1
            last = self.step >= config.optim.steps
            if deadline is not None and not last and self.step % config.run.log_every == 0 and self._all_agree(time.monotonic() > deadline):
                last = True
                summary.notes.append(f"stopped at step {self.step}: the {config.run.time_limit_minutes:g}-minute time limit")
                if self.dist.main:
                    self.log(summary.notes[-1])
            if not self.dist.main:
                continue
            if self.step % config.run.log_every == 0 or last:
                elapsed = time.perf_counter() - window_start
                values["images_per_second"] = window_steps * config.optim.batch_size * self.dist.world / max(elapsed, 1e-9)
                summary.images_per_second = values["images_per_second"]
                self._record("train", values)
                self.log(f"step {self.step}: L1 {values['l1']:.4f}, total {values['total_g']:.4f}, {values['images_per_second']:.1f} img/s")
                window_start, window_steps = time.perf_counter(), 0
            if self.step % config.run.image_every == 0:
                assert self.writer is not None
                self.writer.add_image("train/source|driving|pncc|warped|output", _grid(list(self._last)), self.step)
            if self.step % config.run.val_every == 0 or last:
                summary.validation.append({"step": self.step, **self.validate()})
                self.log(f"validation at step {self.step}: L1 {summary.validation[-1]['l1']:.4f}, SSIM {summary.validation[-1]['ssim']:.4f}")
            if self.step % config.run.checkpoint_every == 0 or last:
                self._save()
        self._check_replicas()
        if self.writer is not None:
            self.writer.close()
        return summary

    def _all_agree(self, flag: bool) -> bool:
        """``flag`` on any process, for all: every process must stop at the same step."""
        if self.dist.world == 1:
            return flag
        value = torch.tensor([float(flag)], device=self.dist.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def _check_replicas(self) -> None:
        """All processes must end with identical weights; rank 0 records every rank's digest."""
        digest = _weights_digest(self.generator)
        digests = [digest]
        if self.dist.world > 1:
            digests = [""] * self.dist.world
            dist.all_gather_object(digests, digest)
        if self.dist.main:
            (self.out / "replicas.json").write_text(json.dumps({"step": self.step, "generator_sha256": digests}) + "\n")
        if len(set(digests)) != 1:
            raise RuntimeError(f"the {self.dist.world} processes ended with different weights: {digests}")


def train(config: TrainConfig, resume: bool = False, log: Callable[[str], None] = print) -> TrainSummary:
    """Train as configured (resuming from the last checkpoint in ``run.out`` with ``resume``)."""
    try:
        summary = Trainer(config, resume, log).run()
        if dist.is_initialized():
            # Every process is done talking before any tears its connections down: a rank that
            # exits first can otherwise abort a peer still closing gloo's sockets.
            dist.barrier()
        return summary
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
