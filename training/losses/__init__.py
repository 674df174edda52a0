"""Loss functions of CLRNet (focal, LineIoU) and CLRerNet (LaneIoU)."""

from training.losses.focal import focal_loss
from training.losses.lane_iou import lane_iou, lane_iou_loss
from training.losses.line_iou import line_iou, line_iou_loss

__all__ = ["focal_loss", "lane_iou", "lane_iou_loss", "line_iou", "line_iou_loss"]
