"""Train a CLRNet teacher or a CLRKDNet student, optionally distilled from a teacher.

    python training/train.py --preset clrnet_resnet18_culane --data-root data/CULane --work-dir work_dirs/r18
    python training/train.py --preset clrkdnet_resnet18_culane --data-root data/CULane \\
        --distill --teacher-preset clrnet_resnet101_culane --teacher-weights culane_r101.pth
    torchrun --nproc_per_node 4 training/train.py --preset ...   (DDP, one process per GPU)
"""

import sys
from pathlib import Path

# `python training/train.py` puts training/ on sys.path, not the repository root that holds the packages.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import os

import torch
import torch.distributed as dist

from clrkdnet_core.cli import run_cli
from clrkdnet_core.config import load_preset
from clrkdnet_core.errors import PresetError
from training.data import build_eval_dataset, build_train_dataset
from training.options import build_parser, preset_overrides
from training.pretrained import BackboneInit, resolve_backbone_init
from training.trainer import Trainer, TrainSettings, build_teacher


def resolve_device(name: str, local_rank: int) -> torch.device:
    """``auto`` is the GPU of this process's local rank when CUDA is available, else the CPU."""
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PresetError(f"--device {name}: CUDA is not available on this machine")
    return device


def main(argv: list[str] | None = None) -> int:
    """Parse the options, check the data and the teacher, then train."""
    parser = build_parser()
    args = parser.parse_args(argv)
    preset = load_preset(args.preset).with_overrides(preset_overrides(args))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(args.device, int(os.environ.get("LOCAL_RANK", "0")))
    if args.distill and args.teacher_weights is None:
        parser.error("--distill needs --teacher-weights (the teacher's checkpoint)")
    teacher_name = args.teacher_preset or preset.train.teacher
    if args.distill and teacher_name is None:
        parser.error(f"--distill needs --teacher-preset: preset {preset.name} names no teacher")
    weights = (preset.train.att_weight, preset.train.logit_weight, preset.train.prior_weight)
    if args.distill and not any(weights):
        raise PresetError(f"preset {preset.name} has no distillation weights (train.att/logit/prior_weight)")
    # Everything the user can get wrong is checked here, before the first iteration.
    train_set = build_train_dataset(preset, args.data_root)
    validate = not args.no_validate and preset.dataset == "culane"
    val_set = build_eval_dataset(preset, args.data_root, args.val_split) if validate else None
    teacher = None
    if args.distill:
        teacher = build_teacher(load_preset(teacher_name), args.teacher_weights, device, student=preset)
    if args.resume is not None:
        backbone = BackboneInit(None, "resumed")  # the checkpoint's weights and account replace it
    else:
        # Only rank 0 downloads: DDP copies rank 0's weights to every rank when it wraps the model.
        backbone = resolve_backbone_init(args.pretrained_backbone, preset.model.backbone, download=rank == 0)
        if rank == 0:
            print(f"backbone {preset.model.backbone}: {backbone.description}", flush=True)
    if world_size > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    work_dir = args.work_dir or Path("work_dirs") / preset.name
    settings = TrainSettings(
        work_dir=work_dir,
        device=device,
        seed=args.seed,
        workers=args.workers,
        amp=device.type == "cuda" if args.amp is None else args.amp,
        compile=args.compile,
        ema_momentum=args.ema,
        validate=validate,
        max_iters=args.max_iters,
        log_every=args.log_every,
        legacy_conflict=args.assigner_legacy_conflict,
        lane_iou=args.lane_iou,
        finetune_from=args.finetune_from,
        rank=rank,
        world_size=world_size,
        backbone=backbone,
    )
    trainer = Trainer(preset, train_set, val_set, settings, teacher)
    if args.resume is not None:
        trainer.resume(work_dir / "last.pth" if args.resume == "last" else Path(args.resume))
    trainer.fit()
    if world_size > 1:
        dist.barrier()  # rank 0 may still be writing last.pth: leave together
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
