"""build_model: a preset name, YAML path or Preset -> LaneNet."""

from pathlib import Path

from clrkdnet_core.config import Preset, load_preset
from clrkdnet_core.models.detector import LaneNet


def build_model(preset: str | Path | Preset, pretrained_backbone: str | Path | None = None) -> LaneNet:
    """Build the network of ``preset`` (randomly initialised; load weights with ``load_checkpoint``).

    ``pretrained_backbone``: optional local ImageNet weights for the backbone (never downloaded).
    """
    return LaneNet(load_preset(preset), pretrained_backbone)
