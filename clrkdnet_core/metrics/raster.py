"""Lane masks drawn pixel for pixel as the official CULane tool draws them.

The tool calls ``cv::line(img, p[n], p[n+1], 1, width)`` on float points, which OpenCV converts to integer
pixels with ``cvRound`` (x86: half to even; NaN, infinities and values outside int32 give INT_MIN).

OpenCV 5 changed how a thick line reaching more than ``width`` pixels outside the image is rasterised (the
band's edges move by up to a pixel). The official tool was built against OpenCV 2-4, so such segments are
drawn here as OpenCV 4's ``ThickLine`` does: a convex polygon in 16-bit fixed point plus a filled circle at
each end, through ``cv2.fillConvexPoly`` and ``cv2.circle``, whose rasterisers did not change. All other
segments go through ``cv2.polylines``, which gives the pixels of the per-segment ``cv2.line`` calls in every
version. Thin lines (width 1) did not change.
"""

import math

import cv2
import numpy as np

_INT_MIN = -(2**31)
_XY_SHIFT = 16
_INT32_MAX = 2**31 - 1


def cv_round(points: np.ndarray) -> np.ndarray:
    """OpenCV's Point2f -> Point (x86 ``cvRound``): float32, half to even; NaN, inf, out of int32: INT_MIN."""
    with np.errstate(invalid="ignore"):
        rounded = np.rint(np.asarray(points, dtype=np.float32))
        valid = np.isfinite(rounded) & (rounded >= _INT_MIN) & (rounded < 2**31)
    return np.where(valid, rounded, _INT_MIN).astype(np.int64).astype(np.int32)


def draw_polyline(canvas: np.ndarray, pixels: np.ndarray, width: int) -> None:
    """Draw 1 along the integer (N, 2) polyline ``pixels`` (N >= 1) as consecutive ``cv::line`` calls do."""
    # A repeated point only redraws the same round cap, so dropping repeats leaves the mask unchanged.
    keep = np.ones(len(pixels), dtype=bool)
    keep[1:] = np.any(pixels[1:] != pixels[:-1], axis=1)
    pixels = pixels[keep]
    if len(pixels) == 1:
        pixels = np.repeat(pixels, 2, axis=0)  # cv::line(p, p) still draws the round caps
    classic = _needs_classic_thick_line(pixels, width, canvas.shape)
    if not classic.any():
        # An open polyline draws exactly the union of cv::line over consecutive pairs, caps included.
        cv2.polylines(canvas, [pixels.reshape(-1, 1, 2)], False, 1, thickness=width)
        return
    start = 0
    for index in np.flatnonzero(classic):
        if index > start:
            cv2.polylines(canvas, [pixels[start : index + 1].reshape(-1, 1, 2)], False, 1, thickness=width)
        _classic_thick_line(canvas, pixels[index], pixels[index + 1], width)
        start = index + 1
    if start < len(pixels) - 1:
        cv2.polylines(canvas, [pixels[start:].reshape(-1, 1, 2)], False, 1, thickness=width)


def _needs_classic_thick_line(pixels: np.ndarray, width: int, shape: tuple[int, int]) -> np.ndarray:
    """Segments OpenCV 5 may draw differently: thick, an end over ``width`` px outside, touching the image."""
    rows, cols = shape
    if width <= 1:
        return np.zeros(len(pixels) - 1, dtype=bool)
    xy = pixels.astype(np.int64)
    far = (xy[:, 0] < -width) | (xy[:, 0] >= cols + width) | (xy[:, 1] < -width) | (xy[:, 1] >= rows + width)
    low = np.minimum(xy[:-1], xy[1:]) - width
    high = np.maximum(xy[:-1], xy[1:]) + width
    touches = (high[:, 0] >= 0) & (low[:, 0] < cols) & (high[:, 1] >= 0) & (low[:, 1] < rows)
    return (far[:-1] | far[1:]) & touches


def _classic_thick_line(canvas: np.ndarray, p0: np.ndarray, p1: np.ndarray, width: int) -> None:
    """OpenCV 4's ``ThickLine`` (8-connected, shift 0, both caps) for one segment of integer end points.

    Where the polygon does not fit the int32 points of ``cv2.fillConvexPoly`` (an end ~32000 px or more away,
    e.g. the INT_MIN of a NaN sample) the installed ``cv2.line`` draws the segment instead.
    """
    one = 1 << _XY_SHIFT
    a = (int(p0[0]) << _XY_SHIFT, int(p0[1]) << _XY_SHIFT)
    b = (int(p1[0]) << _XY_SHIFT, int(p1[1]) << _XY_SHIFT)
    dx, dy = (a[0] - b[0]) / one, (b[1] - a[1]) / one
    length_sq = dx * dx + dy * dy
    half = width << (_XY_SHIFT - 1)
    if math.fabs(length_sq) > np.finfo(np.float64).eps:
        scale = (half + (width & 1) * one * 0.5) / math.sqrt(length_sq)
        offset_x, offset_y = int(np.rint(dy * scale)), int(np.rint(dx * scale))
        corners = np.array(
            [
                (a[0] + offset_x, a[1] + offset_y),
                (a[0] - offset_x, a[1] - offset_y),
                (b[0] - offset_x, b[1] - offset_y),
                (b[0] + offset_x, b[1] + offset_y),
            ],
            dtype=np.int64,
        )
        if np.abs(corners).max() > _INT32_MAX:
            cv2.line(canvas, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), 1, thickness=width)
            return
        cv2.fillConvexPoly(canvas, corners.astype(np.int32), 1, cv2.LINE_8, _XY_SHIFT)
    radius = (half + (one >> 1)) >> _XY_SHIFT
    for end in (p0, p1):
        cv2.circle(canvas, (int(end[0]), int(end[1])), radius, 1, -1)
