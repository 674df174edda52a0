"""ImageNet weights of the backbones: where torchvision and the DLA model zoo publish them, where torch's
hub cache keeps them, and a loader that is strict about every backbone weight.

The official models start from these files (``pretrained=True`` in every CLRNet / CLRKDNet config). The
loader ignores only the ImageNet classifier (``fc.*``) and the BatchNorm ``num_batches_tracked`` counters that
files of older PyTorch versions lack: anything else missing, extra or mis-shaped is an error, so a ResNet-34
file never half-loads into a ResNet-18.
"""

import os
import re
import urllib.request
from pathlib import Path

import torch
from torch import nn

from clrkdnet_core.checkpoint import _mismatches, read_checkpoint
from clrkdnet_core.errors import CheckpointError
from clrkdnet_core.hashing import file_sha256

# torchvision's IMAGENET1K_V1 files (the ones CLRNet's torchvision version downloads) and the DLA zoo's.
IMAGENET_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    "dla34": "http://dl.yf.io/dla/models/imagenet/dla34-ba72cf86.pth",
}
# The same ImageNet weights under torchvision's earlier names (the ones CLRNet's README era downloaded).
_EARLIER_NAMES = {
    "resnet18": "resnet18-5c106cde.pth",
    "resnet34": "resnet34-333f7ec4.pth",
    "resnet50": "resnet50-19c8e357.pth",
    "resnet101": "resnet101-5d3b4d8f.pth",
}
_CLASSIFIER = "fc."
_COUNTER = "num_batches_tracked"
_HASH_PREFIX = re.compile(r"-([a-f0-9]+)\.")  # torch.hub's naming: <name>-<sha256 prefix>.pth
_DOWNLOAD_TIMEOUT_S = 30


def imagenet_cache_path(backbone: str) -> Path:
    """Where torch keeps ``backbone``'s ImageNet file: ``$TORCH_HOME/hub/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(IMAGENET_URLS[backbone]).name


def cached_imagenet_weights(backbone: str) -> Path | None:
    """``backbone``'s ImageNet file in the hub cache, under its current or an earlier torchvision name."""
    current = imagenet_cache_path(backbone)
    earlier = _EARLIER_NAMES.get(backbone)
    candidates = [current] + ([current.with_name(earlier)] if earlier else [])
    return next((path for path in candidates if path.is_file()), None)


def download_imagenet_weights(backbone: str) -> Path:
    """Fetch ``backbone``'s ImageNet file into the hub cache (checked against the hash in its name).

    Raises OSError (urllib's URLError is one) when there is no network or the file is corrupt.
    """
    path = imagenet_cache_path(backbone)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with urllib.request.urlopen(IMAGENET_URLS[backbone], timeout=_DOWNLOAD_TIMEOUT_S) as response:
            tmp.write_bytes(response.read())
        expected = _HASH_PREFIX.search(path.name).group(1)
        if not file_sha256(tmp).startswith(expected):
            raise OSError(f"downloaded {path.name} does not match its sha256 prefix {expected}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_imagenet_weights(module: nn.Module, path: str | Path, backbone: str) -> None:
    """Load an ImageNet file (torchvision ResNet or DLA-zoo layout) into ``module``, strictly.

    Raises one CheckpointError naming the missing, unexpected or mis-shaped entries.
    """
    state = {k: v for k, v in read_checkpoint(path)["net"].items() if not k.startswith(_CLASSIFIER)}
    own = module.state_dict()
    if not own.keys() & state.keys():
        raise CheckpointError(f"{path} has no weights that fit the {backbone} backbone")
    expected = {k: v for k, v in own.items() if k in state or not k.endswith(_COUNTER)}
    problems = _mismatches(expected, state)
    if problems:
        raise CheckpointError(f"{path} is not {backbone} ImageNet weights: " + "; ".join(problems))
    module.load_state_dict(state, strict=False)  # only the counters may be absent
