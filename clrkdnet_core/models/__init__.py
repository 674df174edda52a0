"""CLRNet / CLRKDNet networks."""

from clrkdnet_core.models.build import build_model
from clrkdnet_core.models.detector import LaneNet

__all__ = ["LaneNet", "build_model"]
