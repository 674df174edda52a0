"""CLRNet / CLRKDNet lane detection in plain PyTorch (no ROS imports).

The three public entry points are imported lazily so that light tools (metrics, data writers) do not pay for
importing torch and the networks.
"""

from typing import TYPE_CHECKING

__all__ = ["LaneDetector", "build_model", "load_checkpoint"]

if TYPE_CHECKING:
    from clrkdnet_core.checkpoint import load_checkpoint
    from clrkdnet_core.inference import LaneDetector
    from clrkdnet_core.models import build_model


def __getattr__(name: str):
    if name == "build_model":
        from clrkdnet_core.models import build_model

        return build_model
    if name == "load_checkpoint":
        from clrkdnet_core.checkpoint import load_checkpoint

        return load_checkpoint
    if name == "LaneDetector":
        from clrkdnet_core.inference import LaneDetector

        return LaneDetector
    raise AttributeError(f"module 'clrkdnet_core' has no attribute {name!r}")
