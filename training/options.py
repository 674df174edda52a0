"""Command-line options of ``training/train.py`` and the preset overrides they imply.

Preset values are overridden, in increasing priority, by a YAML file (``--config``, nested sections like
the preset files), ``--set section.key=value`` pairs and the shortcuts ``--epochs``, ``--batch-size``,
``--lr``. The official CLRKDNet flag spellings (``--distillation``, ``--teacher_model_cfg``, ...) are
accepted as aliases.
"""

import argparse
from pathlib import Path
from typing import Any

import yaml

from clrkdnet_core.errors import PresetError
from training.pretrained import IMAGENET

DEFAULT_EMA_MOMENTUM = 1e-4  # CLRerNet's EMA setting: ema = (1 - m) * ema + m * weights


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the training CLI."""
    parser = argparse.ArgumentParser(
        prog="training/train.py", description="Train a CLRNet teacher or a CLRKDNet student."
    )
    parser.add_argument("--preset", required=True, help="preset name or YAML path of the model to train")
    parser.add_argument("--data-root", required=True, type=Path, help="dataset root (CULane/TuSimple layout)")
    parser.add_argument(
        "--work-dir", "--work_dirs", type=Path, help="output folder (default work_dirs/<preset>)"
    )
    distill = parser.add_argument_group("distillation")
    distill.add_argument("--distill", "--distillation", action="store_true", help="distil from a teacher")
    distill.add_argument(
        "--teacher-preset",
        "--teacher_model_cfg",
        help="teacher preset (default: the student preset's teacher)",
    )
    distill.add_argument("--teacher-weights", "--teacher_model_path", type=Path, help="teacher checkpoint")
    init = parser.add_argument_group("initialisation")
    init.add_argument(
        "--resume",
        "--resume_from",
        nargs="?",
        const="last",
        help="continue a run from a checkpoint (no value: <work-dir>/last.pth)",
    )
    init.add_argument("--finetune-from", "--finetune_from", type=Path, help="load matching weights only")
    init.add_argument(
        "--pretrained-backbone",
        default=IMAGENET,
        metavar="imagenet|none|FILE",
        help="backbone start: torchvision's / the DLA zoo's ImageNet weights from torch's hub cache or "
        "downloaded (default, as the official recipe; random when neither works, said in the log), random "
        "weights, or a local ImageNet file (torchvision ResNet or DLA-zoo layout, fc.* ignored)",
    )
    init.add_argument("--seed", type=int, default=0)
    recipe = parser.add_argument_group("recipe (preset overrides)")
    recipe.add_argument("--epochs", type=int)
    recipe.add_argument("--batch-size", type=int)
    recipe.add_argument("--lr", type=float)
    recipe.add_argument("--config", type=Path, help="YAML file of preset overrides")
    recipe.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one preset value, e.g. a loss weight: train.{cls,xyt,iou,seg}_weight, the "
        "distillation terms' train.{att,logit,prior}_weight (defaults: the official configs', see README)",
    )
    recipe.add_argument(
        "--assigner-legacy-conflict",
        action="store_true",
        help="keep the reference assigner's column-0 conflict resolution",
    )
    recipe.add_argument("--lane-iou", action="store_true", help="CLRerNet LaneIoU as loss and assigner cost")
    run = parser.add_argument_group("execution")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--workers", type=int, default=4, help="data loader processes per GPU")
    run.add_argument(
        "--amp", action=argparse.BooleanOptionalAction, default=None, help="mixed precision (default: on GPU)"
    )
    run.add_argument("--compile", action="store_true", help="torch.compile the network")
    run.add_argument(
        "--ema",
        nargs="?",
        type=float,
        const=DEFAULT_EMA_MOMENTUM,
        metavar="MOMENTUM",
        help=f"keep EMA weights for validation and best.pth (default momentum {DEFAULT_EMA_MOMENTUM})",
    )
    run.add_argument("--eval-every", type=int, help="validate every N epochs (default: the preset's)")
    run.add_argument("--no-validate", action="store_true", help="skip validation")
    run.add_argument("--val-split", default="val", help="list used for validation (default val)")
    run.add_argument("--max-iters", type=int, help="stop after this many iterations (smoke tests)")
    run.add_argument("--log-every", type=int, default=10, help="TensorBoard scalars every N iterations")
    return parser


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def preset_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted-key overrides (``{"train.lr": 1e-3}``) from ``--config``, ``--set`` and the shortcuts."""
    overrides: dict[str, Any] = {}
    if args.config is not None:
        try:
            data = yaml.safe_load(args.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise PresetError(f"cannot read override file {args.config}: {exc}") from exc
        if not isinstance(data, dict):
            raise PresetError(f"override file {args.config} must contain a mapping")
        overrides.update(_flatten(data))
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PresetError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    shortcuts = {"train.epochs": args.epochs, "train.batch_size": args.batch_size, "train.lr": args.lr}
    overrides.update({key: value for key, value in shortcuts.items() if value is not None})
    if args.eval_every is not None:
        overrides["train.eval_every"] = args.eval_every
    return overrides
