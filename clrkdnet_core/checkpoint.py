"""Reading and writing model weights in the official CLRNet / CLRKDNet checkpoint layout.

Official files are ``torch.save({"net": state_dict, ...})`` of a data-parallel model, so every key starts with
``module.``. We write the same layout (plus ``preset`` and whatever the trainer adds) so the official code can
read our files too, and we load strictly: a checkpoint that does not fit the network is an error, never a
silently half-loaded model.
"""

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from clrkdnet_core.errors import CheckpointError

_PREFIX = "module."
_SHOWN = 10  # entries listed per kind in a mismatch message


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file safely (tensors and plain containers only) as a dict.

    A bare state_dict is returned as ``{"net": state_dict}``; ``module.`` prefixes are removed from the
    ``net`` keys.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such file: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses arbitrary Python objects and names the first one it met
        foreign = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if foreign:
            raise CheckpointError(
                f"{path} holds Python objects ({foreign.group(1)}), not only tensors; refusing to unpickle it"
            ) from exc
        raise CheckpointError(f"cannot read {path}: truncated or not a PyTorch checkpoint") from exc
    except Exception as exc:
        # unpickling arbitrary bytes fails with whatever they lead to: KeyError, IndexError, struct.error, ...
        reason = f"{type(exc).__name__}: {str(exc).split('. ')[0]}"
        raise CheckpointError(
            f"cannot read {path}: truncated or not a PyTorch checkpoint ({reason})"
        ) from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a checkpoint: it holds a {type(data).__name__}, not a dict")
    if "net" in data or "state_dict" in data:
        state = data.get("net", data.get("state_dict"))
        extra = {key: value for key, value in data.items() if key not in ("net", "state_dict")}
    else:
        state, extra = data, {}
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path} holds no model weights (expected a 'net' dict of tensors or a state_dict)"
        )
    state = {key.removeprefix(_PREFIX): value for key, value in state.items()}
    return {"net": state, **extra}


def load_checkpoint(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load the weights in ``path`` into ``model`` strictly; return the other entries (epoch, optim, ...).

    Accepts official files (``{"net": ...}`` with ``module.`` keys), bare state_dicts and our own files.
    Missing, unexpected or mis-shaped entries raise one :class:`CheckpointError` naming them.
    """
    checkpoint = read_checkpoint(path)
    state = checkpoint.pop("net")
    problems = _mismatches(model.state_dict(), state)
    if problems:
        header = f"{path} does not match the network"
        model_preset = getattr(getattr(model, "preset", None), "name", None)
        saved_preset = checkpoint.get("preset")
        if saved_preset and model_preset and saved_preset != model_preset:
            header += f" (saved for preset {saved_preset!r}, the network is {model_preset!r})"
        raise CheckpointError(header + ": " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    return checkpoint


def save_checkpoint(path: str | Path, model: nn.Module, **extra: Any) -> Path:
    """Write ``{"net": {"module." + key: tensor}, "preset": name, **extra}`` atomically (temp + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {"net": {_PREFIX + key: value for key, value in model.state_dict().items()}}
    preset = getattr(model, "preset", None)
    if preset is not None:
        payload["preset"] = preset.name
    payload.update(extra)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_pretrained(module: nn.Module, path: str | Path) -> None:
    """Load ImageNet weights into a backbone non-strictly: entries of matching name and shape only.

    Raises CheckpointError when nothing matches (a file of another architecture).
    """
    state = read_checkpoint(path)["net"]
    own = module.state_dict()
    usable = {key: value for key, value in state.items() if key in own and own[key].shape == value.shape}
    if not usable:
        raise CheckpointError(f"{path} has no weights that fit this backbone")
    module.load_state_dict(usable, strict=False)


def _mismatches(expected: dict[str, Tensor], found: dict[str, Tensor]) -> list[str]:
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    misshaped = [
        f"{key} {tuple(found[key].shape)} != {tuple(value.shape)}"
        for key, value in expected.items()
        if key in found and found[key].shape != value.shape
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if keys:
            shown = ", ".join(keys[:_SHOWN]) + (", ..." if len(keys) > _SHOWN else "")
            problems.append(f"{len(keys)} {label} ({shown})")
    return problems
