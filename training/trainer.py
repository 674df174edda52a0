"""The training loop (MODEL.md 4.5): AdamW + per-iteration cosine decay, AMP, optional EMA and distillation,
DDP, periodic validation with the CULane metric, best/last checkpoints, TensorBoard scalars, a tqdm bar."""

import dataclasses
import itertools
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from clrkdnet_core.checkpoint import load_checkpoint, load_pretrained, save_checkpoint
from clrkdnet_core.config import Preset
from clrkdnet_core.data.base import LaneDataset
from clrkdnet_core.data.culane import CULaneDataset
from clrkdnet_core.errors import CheckpointError, PresetError
from clrkdnet_core.models import build_model
from clrkdnet_core.models.heads.priors import priors_from_embeddings
from training.criterion import CLRNetCriterion
from training.data import Batch, SeededAugmentation, collate
from training.distillation import DistillationWeights, distillation_losses
from training.ema import ModelEMA
from training.pretrained import RANDOM_INIT, BackboneInit
from training.validation import validate


@dataclass(frozen=True)
class TrainSettings:
    """How to run (not what to learn: that is the preset)."""

    work_dir: Path
    device: torch.device
    seed: int = 0
    workers: int = 0
    amp: bool = False
    compile: bool = False
    ema_momentum: float | None = None
    validate: bool = True
    max_iters: int | None = None
    log_every: int = 10
    legacy_conflict: bool = False
    lane_iou: bool = False
    finetune_from: Path | None = None
    rank: int = 0
    world_size: int = 1
    backbone: BackboneInit = RANDOM_INIT
    # The teacher's forward: None follows ``amp``; False keeps it in float32 under a mixed-precision student.
    teacher_amp: bool | None = None
    # channels-last teacher weights and input: the layout oneDNN/cuDNN convolutions prefer (no numeric change
    # beyond summation order).
    teacher_channels_last: bool = False
    # Weight of the beyond-the-paper lane-regression distillation term (training.distillation); 0 = the paper.
    distill_lane_weight: float = 0.0


class _SkipFirst(Sampler[int]):
    """Drops the first ``skip`` indices of a sampler, to resume in the middle of an epoch."""

    def __init__(self, sampler: DistributedSampler, skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (the reference seeds all three with 0)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    # NumPy's state is stored as a tensor + ints so the checkpoint stays loadable with weights_only=True.
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# Input sizes of the same aspect ratio within this fraction share the priors' geometry (800x320 and 400x160
# differ by 0.1 % through the img_w - 1 in the line equation).
_ASPECT_TOLERANCE = 0.01


def teacher_at_student_geometry(teacher: Preset, student: Preset) -> Preset:
    """``teacher`` with the student's network input size, so both see the same batch.

    A network's weights do not depend on its input size, but the teacher must see the same crop of the same
    images and, since the priors are lines in normalised input coordinates, at the same aspect ratio; other
    pairs raise one PresetError naming both sizes.
    """
    t, s = teacher.geometry, student.geometry
    sizes = (
        f"teacher {teacher.name} takes {t.img_w}x{t.img_h} of {t.ori_img_w}x{t.ori_img_h} images cut at "
        f"row {t.cut_height}, student {student.name} {s.img_w}x{s.img_h} of {s.ori_img_w}x{s.ori_img_h} "
        f"cut at row {s.cut_height}"
    )
    if (t.ori_img_w, t.ori_img_h, t.cut_height) != (s.ori_img_w, s.ori_img_h, s.cut_height):
        raise PresetError(f"the teacher must see the student's image crop: {sizes}")
    if abs((t.img_w / t.img_h) / (s.img_w / s.img_h) - 1) > _ASPECT_TOLERANCE:
        raise PresetError(f"the teacher's input must have the student's aspect ratio: {sizes}")
    return teacher.with_overrides({"geometry.img_w": s.img_w, "geometry.img_h": s.img_h})


def epoch_loader(
    dataset: SeededAugmentation,
    batch_size: int,
    epoch: int,
    skip_batches: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """The batches of ``epoch`` that process ``rank`` of ``world_size`` trains on, after ``skip_batches``.

    Each rank gets its own 1/world_size share of one seeded shuffle (DistributedSampler), so the ranks see
    different samples and together every sample once per epoch.
    """
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    # A generator per epoch keeps the loader from drawing on the global RNG, so resuming is exact.
    generator = torch.Generator().manual_seed(seed + epoch)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=_SkipFirst(sampler, skip_batches * batch_size),
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        generator=generator,
    )


def build_teacher(
    preset: Preset, weights: Path, device: torch.device, student: Preset | None = None
) -> nn.Module:
    """The frozen teacher: built from its preset (at ``student``'s input size when given, see
    :func:`teacher_at_student_geometry`) and loaded strictly (a ResNet-101 file into a ResNet-101, unlike the
    reference's silent ResNet-50 load, MODEL.md 3.6), in eval mode."""
    if student is not None:
        preset = teacher_at_student_geometry(preset, student)
    teacher = build_model(preset)
    load_checkpoint(teacher, weights)
    heads = teacher.heads
    # The file's prior buffers were drawn at the input size it was trained at; eval mode uses the buffers, so
    # draw them again from the (size-free) embeddings at this network's size.
    with torch.no_grad():
        priors, on_featmap = priors_from_embeddings(
            heads.prior_embeddings.weight, heads.prior_ys, heads.sample_x_indexs, heads.img_w, heads.img_h
        )
        heads.priors.copy_(priors)
        heads.priors_on_featmap.copy_(on_featmap)
    # Frozen: no parameter asks autograd for anything, whatever context the forward runs in.
    teacher.requires_grad_(False)
    return teacher.to(device).eval()


class Trainer:
    """Trains ``build_model(preset)`` on ``train_set``; distils from ``teacher`` when one is given."""

    def __init__(
        self,
        preset: Preset,
        train_set: LaneDataset,
        val_set: CULaneDataset | None,
        settings: TrainSettings,
        teacher: nn.Module | None = None,
    ) -> None:
        self.preset, self.settings = preset, settings
        self.train_set = SeededAugmentation(train_set, settings.seed)
        self.val_set = val_set
        self.device = settings.device
        self.is_main = settings.rank == 0
        seed_everything(settings.seed)
        self.model = build_model(preset, settings.backbone.path)
        if settings.finetune_from is not None:
            load_pretrained(self.model, settings.finetune_from)  # matching names and shapes only
        self.model.to(self.device)
        self.criterion = CLRNetCriterion.from_preset(preset, settings.legacy_conflict, settings.lane_iou).to(
            self.device
        )
        self.teacher = teacher
        if teacher is not None and settings.teacher_channels_last:
            teacher.to(memory_format=torch.channels_last)  # in place; idempotent for a shared teacher
        self.distill_weights = dataclasses.replace(
            DistillationWeights.from_preset(preset), lane=settings.distill_lane_weight
        )
        train = preset.train
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=train.lr, weight_decay=train.weight_decay
        )
        per_rank = math.ceil(len(train_set) / settings.world_size)
        self.iters_per_epoch = math.ceil(per_rank / train.batch_size)
        self.total_iters = self.iters_per_epoch * train.epochs
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.total_iters)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=settings.amp)
        self.ema = ModelEMA(self.model, settings.ema_momentum) if settings.ema_momentum else None
        self.iteration = 0
        self.best_f1 = -1.0
        self.backbone_init = settings.backbone.description
        self.history: list[dict[str, float]] = []
        self.forward = self.model
        if settings.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if settings.compile:
            self.forward = torch.compile(self.forward)
        self.writer = SummaryWriter(str(settings.work_dir)) if self.is_main else None

    # -- checkpoints -------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Save the weights in the official layout plus everything needed to resume."""
        extra = {
            "preset": self.preset.name,
            "epoch": self.iteration // self.iters_per_epoch,
            "iteration": self.iteration,
            "optim": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_f1": self.best_f1,
            "rng": _rng_state(),
            "backbone_init": self.backbone_init,
        }
        if self.ema is not None:
            extra["ema"] = self.ema.state_dict()
        save_checkpoint(path, self.model, **extra)

    def resume(self, path: Path) -> None:
        """Restore weights, optimizer, schedule, scaler, EMA, counters and RNG from a :meth:`save` file."""
        checkpoint = load_checkpoint(self.model, path)
        missing = [key for key in ("optim", "scheduler", "iteration", "rng") if key not in checkpoint]
        if missing:
            raise CheckpointError(
                f"{path} cannot be resumed: it has no {', '.join(missing)} (use --finetune-from)"
            )
        self.optimizer.load_state_dict(checkpoint["optim"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if "scaler" in checkpoint:
            self.scaler.load_state_dict(checkpoint["scaler"])
        if self.ema is not None and "ema" in checkpoint:
            self.ema.load_state_dict(checkpoint["ema"])
        self.iteration = int(checkpoint["iteration"])
        self.best_f1 = float(checkpoint.get("best_f1", -1.0))
        self.backbone_init = str(checkpoint.get("backbone_init", self.backbone_init))
        _set_rng_state(checkpoint["rng"])

    # -- one step ----------------------------------------------------------------------------------------
    def train_step(self, batch: Batch) -> dict[str, float]:
        """Forward, loss, backward and optimizer step on one batch; returns the detached loss terms."""
        images = batch.images.to(self.device, non_blocking=True)
        targets = batch.targets.to(self.device, non_blocking=True)
        seg = batch.seg.to(self.device, non_blocking=True)
        self.model.train()
        with torch.autocast(self.device.type, enabled=self.settings.amp):
            output = self.forward(images)
            losses = self.criterion(output, targets, seg)
            if self.teacher is not None:
                teacher_output = self.teacher_outputs(images)
                geometry = (self.criterion.img_w, self.criterion.img_h, self.criterion.ori_w)
                losses.update(
                    distillation_losses(output, teacher_output, self.distill_weights, targets, geometry)
                )
        total = losses["loss"] + sum(value for key, value in losses.items() if key.startswith("distill_"))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.iteration += 1
        terms = {key: float(value.detach()) for key, value in losses.items()}
        terms["total_loss"] = float(total.detach())
        terms["lr"] = self.scheduler.get_last_lr()[0]
        return terms

    def teacher_outputs(self, images: torch.Tensor) -> dict:
        """The frozen teacher's train-style output dict for ``images``: no autograd graph, in the settings'
        precision (``teacher_amp``) and memory layout (``teacher_channels_last``)."""
        settings = self.settings
        amp = settings.amp if settings.teacher_amp is None else settings.teacher_amp
        if settings.teacher_channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast(self.device.type, enabled=amp):
            return self.teacher(images, return_dict=True)

    # -- loop --------------------------------------------------------------------------------------------
    def _loader(self, epoch: int, skip_batches: int) -> DataLoader:
        settings = self.settings
        return epoch_loader(
            self.train_set,
            self.preset.train.batch_size,
            epoch,
            skip_batches,
            settings.seed,
            settings.rank,
            settings.world_size,
            settings.workers,
            self.device.type == "cuda",
        )

    def fit(self) -> list[dict[str, float]]:
        """Train to the end of the schedule (or ``max_iters``); returns the per-iteration loss terms."""
        settings, train = self.settings, self.preset.train
        stop = min(self.total_iters, settings.max_iters or self.total_iters)
        start_epoch = self.iteration // self.iters_per_epoch
        for epoch in range(start_epoch, train.epochs):
            if self.iteration >= stop:
                break
            skip = self.iteration - epoch * self.iters_per_epoch
            bar = tqdm(
                self._loader(epoch, skip),
                desc=f"epoch {epoch + 1}/{train.epochs}",
                initial=skip,
                total=self.iters_per_epoch,
                disable=not self.is_main,
                dynamic_ncols=True,
            )
            tick = time.perf_counter()
            for batch in bar:
                terms = self.train_step(batch)
                now = time.perf_counter()
                terms["images_per_s"] = len(batch.images) * settings.world_size / (now - tick)
                tick = now
                self.history.append(terms)
                bar.set_postfix(loss=f"{terms['total_loss']:.3f}", img_s=f"{terms['images_per_s']:.1f}")
                self._log(terms)
                if self.iteration >= stop:
                    break
            bar.close()
            epoch_done = self.iteration % self.iters_per_epoch == 0
            if epoch_done and self._should_validate(epoch):
                self._validate()
            if self.is_main:
                self.save(settings.work_dir / "last.pth")
        if self.writer is not None:
            self.writer.flush()
        return self.history

    def _should_validate(self, epoch: int) -> bool:
        every = max(self.preset.train.eval_every, 1)
        last = epoch + 1 == self.preset.train.epochs
        return self.settings.validate and self.val_set is not None and ((epoch + 1) % every == 0 or last)

    def _log(self, terms: dict[str, float]) -> None:
        if self.writer is None or self.iteration % self.settings.log_every:
            return
        for key, value in terms.items():
            self.writer.add_scalar(f"train/{key}", value, self.iteration)

    def _validate(self) -> None:
        if not self.is_main:
            return
        model = self.ema.module if self.ema is not None else self.model
        metrics = validate(model, self.val_set, self.device, self.settings.workers)
        model.train()
        for key, value in metrics.items():
            self.writer.add_scalar(f"val/{key}", value, self.iteration)
        tqdm.write(
            f"validation at iteration {self.iteration}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        )
        if metrics["f1"] > self.best_f1:
            self.best_f1 = metrics["f1"]
            save_checkpoint(
                self.settings.work_dir / "best.pth",
                model,
                preset=self.preset.name,
                iteration=self.iteration,
                f1=self.best_f1,
                backbone_init=self.backbone_init,
            )
