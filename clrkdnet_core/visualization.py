"""Lane overlays on BGR images (debug images, predict output); torch-free, so the node imports it freely."""

from collections.abc import Sequence

import cv2
import numpy as np

from clrkdnet_core.image import check_image
from clrkdnet_core.lane import Lane

# BGR, distinct at a glance; lanes take them left to right.
PALETTE = (
    (0, 0, 255),
    (0, 255, 0),
    (255, 0, 0),
    (0, 255, 255),
    (255, 0, 255),
    (255, 255, 0),
    (0, 128, 255),
    (255, 0, 128),
)


def draw_lanes(
    image: np.ndarray,
    lanes: Sequence[Lane],
    *,
    thickness: int | None = None,
    show_scores: bool = True,
    color: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """A copy of a BGR image with ``lanes`` drawn as polylines, coloured left to right, scores at their base.

    ``thickness`` defaults to 4 px on a 1640-wide image, scaled with the width; ``color`` (BGR) draws every
    lane in one colour instead of the palette (e.g. ground truth against predictions).
    """
    canvas = check_image(image).copy()
    if thickness is None:
        thickness = max(1, round(4 * canvas.shape[1] / 1640))
    drawable = sorted((lane for lane in lanes if len(lane) >= 2), key=lambda lane: float(lane.xs[-1]))
    font_scale = max(0.4, canvas.shape[1] / 2000)
    for index, lane in enumerate(drawable):
        colour = color or PALETTE[index % len(PALETTE)]
        # Far-off points (x beyond the image is legal) must not overflow OpenCV's int32 coordinates.
        limit = 16 * max(canvas.shape)
        points = np.round(np.clip(lane.points, -limit, limit)).astype(np.int32)
        cv2.polylines(
            canvas, [points], isClosed=False, color=colour, thickness=thickness, lineType=cv2.LINE_AA
        )
        if show_scores:
            x, y = points[-1]
            x = int(np.clip(x, 0, canvas.shape[1] - 1))
            y = int(np.clip(y - 2 * thickness, 10, canvas.shape[0] - 1))
            cv2.putText(
                canvas,
                f"{lane.score:.2f}",
                (x, y),
                cv2.FONT_HERSHEY_SIMPLEX,
                font_scale,
                colour,
                1,
                cv2.LINE_AA,
            )
    return canvas
