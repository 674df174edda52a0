"""The node's ``calibration`` parameter: a folder or dataset root goes to the core as is, a bag is read here.

Bags are the ROS layer's business (the core imports no bag reader), so their camera frames are decoded by
:class:`clrkdnet_ros.bag.bagfile.LaneBag` and handed to the core as images in memory, evenly spaced over the
bag and no more than the core uses.
"""

from pathlib import Path

import numpy as np

from clrkdnet_core.calibration import MAX_CALIBRATION_IMAGES, CalibrationSource

BAG_SUFFIXES = (".db3", ".mcap")


def calibration_source(value: str) -> CalibrationSource | None:
    """None for an empty parameter, a bag's frames for a bag (folder with metadata.yaml or .db3/.mcap file),
    else the path."""
    if not value:
        return None
    path = Path(value)
    if (path / "metadata.yaml").is_file() or path.suffix in BAG_SUFFIXES:
        return bag_frames(path)
    return value


def bag_frames(path: Path, limit: int = MAX_CALIBRATION_IMAGES) -> list[np.ndarray]:
    """At most ``limit`` camera frames of the bag at ``path``, evenly spaced in recording order."""
    from clrkdnet_ros.bag.bagfile import LaneBag

    with LaneBag(path) as bag:
        step = max(1, bag.image_connection.msgcount // limit)
        return [frame.image for frame in bag.frames() if frame.index % step == 0][:limit]
