"""From the network's (B, 192, 78) output to lanes: score threshold, lane NMS and polyline decoding."""

from clrkdnet_core.postprocess.decode import decode_predictions
from clrkdnet_core.postprocess.nms import lane_nms, lane_nms_batched

__all__ = ["decode_predictions", "lane_nms", "lane_nms_batched"]
