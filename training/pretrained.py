"""Which ImageNet weights a trained backbone starts from (``--pretrained-backbone``).

The official recipe starts every model from ImageNet weights. ``imagenet`` (the default) takes torchvision's
or the DLA zoo's file from torch's hub cache, downloads it where a network exists, and otherwise falls back to
a random initialisation that the log and the checkpoints state; ``none`` asks for random weights; any other
value is a local file in the torchvision ResNet or DLA-zoo layout.
"""

from dataclasses import dataclass
from pathlib import Path

from clrkdnet_core.errors import CheckpointError
from clrkdnet_core.models.backbones.imagenet import (
    cached_imagenet_weights,
    download_imagenet_weights,
    imagenet_cache_path,
)

IMAGENET = "imagenet"
RANDOM = "none"


@dataclass(frozen=True)
class BackboneInit:
    """The file the backbone loads (None: random weights) and a one-line account of it for logs and
    checkpoints."""

    path: Path | None
    description: str


RANDOM_INIT = BackboneInit(None, "random initialisation")


def resolve_backbone_init(choice: str, backbone: str, download: bool = True) -> BackboneInit:
    """The weights ``--pretrained-backbone choice`` means for ``backbone``; a missing local file raises."""
    if choice == RANDOM:
        return BackboneInit(None, "random initialisation (--pretrained-backbone none)")
    if choice != IMAGENET:
        path = Path(choice)
        if not path.is_file():
            raise CheckpointError(f"--pretrained-backbone {choice}: no such file")
        return BackboneInit(path, f"ImageNet weights from {path}")
    found = cached_imagenet_weights(backbone)
    if found is not None:
        return BackboneInit(found, f"ImageNet weights from {found}")
    cached = imagenet_cache_path(backbone)
    if download:
        try:
            path = download_imagenet_weights(backbone)
            return BackboneInit(path, f"ImageNet weights downloaded to {path}")
        except OSError as exc:
            reason = f"not in {cached} and the download failed ({exc})"
    else:
        reason = f"not in {cached}"
    return BackboneInit(
        None,
        f"random initialisation: no ImageNet weights for {backbone} ({reason}); pass "
        "--pretrained-backbone FILE or put the file there",
    )
