"""A ``rosbags`` typestore that knows the standard ROS 2 messages and ``clrkdnet_msgs``."""

from functools import cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from clrkdnet_core.errors import DatasetError

LANE_ARRAY = "clrkdnet_msgs/msg/LaneArray"
EGO_LANE = "clrkdnet_msgs/msg/EgoLane"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
ODOMETRY = "nav_msgs/msg/Odometry"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"

# In a source checkout the definitions are in msg/msg/; an installed package has them in its share folder.
_SOURCE_MSG_DIR = Path(__file__).resolve().parents[2] / "msg" / "msg"


def msg_definitions_dir() -> Path:
    """Folder holding ``Lane.msg``, ``LaneArray.msg`` and ``EgoLane.msg``."""
    if _SOURCE_MSG_DIR.is_dir():
        return _SOURCE_MSG_DIR
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        share = Path(get_package_share_directory("clrkdnet_ros")) / "msg"
    except (ImportError, LookupError, OSError, PackageNotFoundError) as exc:
        raise DatasetError(
            f"cannot find the clrkdnet_msgs definitions ({_SOURCE_MSG_DIR} or share/clrkdnet_ros/msg)"
        ) from exc
    return share


@cache
def lane_typestore() -> Typestore:
    """ROS 2 Kilted's standard types (the same for every distro this project reads) plus ``clrkdnet_msgs``
    (every ``.msg`` of the package: Lane, LaneArray, EgoLane)."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted(msg_definitions_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"clrkdnet_msgs/msg/{path.stem}"))
    typestore.register(types)
    return typestore
