"""Where the camera's pose in the ground frame comes from: the node's parameters, or tf2.

One rule: when ``camera_pose`` ([x, y, z, roll, pitch, yaw] of the camera body in ``ground_frame_id``) or
``camera_height`` (> 0, with ``camera_pitch``) is set, the parameters define the pose and tf2 is not
consulted. Otherwise the transform ``ground_frame_id`` <- the image's ``header.frame_id`` (the camera's
optical frame, as every camera driver stamps its images) is looked up with tf2, the way a robot's URDF and
robot_state_publisher describe where its cameras sit.

``tf2_ros`` is imported only when it is needed: it is not among the PyPI wheels of ROS 2, and without it the
node still runs (lanes in pixels, or the ground projection from the parameters).
"""

import math
import time
from dataclasses import dataclass
from functools import cache

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time

from clrkdnet_core.camera_model import CameraPose
from clrkdnet_core.errors import InputError
from clrkdnet_ros import parameters

# How long the inference thread waits for a dynamic transform at the image's stamp before it takes the latest
# one: the camera's mounting moves little between two tf messages, the frame's latency matters more.
TF_WAIT_S = 0.03
# A moving mount's newest transform this many seconds older than the image no longer says where the camera
# is (its publisher stopped, or the clocks differ).
TF_MAX_AGE_S = 1.0
# A new listener needs a moment to receive /tf_static from the publishers it discovers: a transform missing
# this soon after it started is not reported yet (the frame's lanes stay in pixels).
TF_STARTUP_S = 3.0
# An optical axis more than 30 degrees above the horizon cannot see the road ahead: the frame is most likely
# the camera's body frame (x forward, z up) instead of its optical frame (z forward, y down).
_MAX_UPWARD_AXIS = 0.5

TF2_MISSING = (
    "tf2_ros is not installed (python -c 'import tf2_ros' fails): set "
    "camera_pose:=[x, y, z, roll, pitch, yaw] (or camera_height and camera_pitch) for the ground projection, "
    "or install tf2_ros (make setup builds it from ../shared/ros2_tf); lanes are published in pixels only"
)


@cache
def tf2_available() -> bool:
    """Whether ``tf2_ros`` and ``tf2_msgs`` import here (installed, and their libraries load)."""
    try:
        import tf2_msgs.msg  # noqa: F401
        import tf2_ros  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


class PoseUnavailable(Exception):
    """No usable camera pose for this frame; the message names the frames and the fix. ``settling``: the
    listener has just started, the transform may still come (not worth a warning yet)."""

    def __init__(self, message: str, settling: bool = False) -> None:
        super().__init__(message)
        self.settling = settling


@dataclass(frozen=True)
class PoseParameters:
    """The pose parameters: ``camera_pose`` (None while unset), ``camera_height``, ``camera_pitch``."""

    camera_pose: tuple[float, ...] | None
    camera_height: float
    camera_pitch: float

    @classmethod
    def from_node(cls, node: Node) -> "PoseParameters":
        pose = parameters.optional_parameter(node, "camera_pose")
        return cls(
            tuple(float(v) for v in pose) if pose is not None and len(pose) else None,
            float(node.get_parameter("camera_height").value),
            float(node.get_parameter("camera_pitch").value),
        )

    @property
    def define_pose(self) -> bool:
        """True when the parameters give the pose (tf2 is then not consulted)."""
        return self.camera_pose is not None or self.camera_height > 0.0

    def pose(self) -> CameraPose | None:
        if self.camera_pose is not None:
            return CameraPose.from_xyz_rpy(*self.camera_pose)
        if self.camera_height > 0.0:
            return CameraPose.from_height_pitch(self.camera_height, self.camera_pitch)
        return None

    def describe(self) -> str:
        if self.camera_pose is not None:
            x, y, z, roll, pitch, yaw = self.camera_pose
            ignored = " (camera_height and camera_pitch are ignored)" if self.camera_height > 0.0 else ""
            return (
                f"the camera_pose parameter: x {x:.3f}, y {y:.3f}, z {z:.3f} m, roll "
                f"{math.degrees(roll):.2f}, pitch {math.degrees(pitch):.2f}, yaw {math.degrees(yaw):.2f} deg"
                f"{ignored}; tf2 is not consulted"
            )
        return (
            f"camera_height {self.camera_height:.3f} m and camera_pitch {self.camera_pitch:.4f} rad "
            f"({math.degrees(self.camera_pitch):.2f} deg); tf2 is not consulted"
        )


def pose_problem(pose: CameraPose, ground_frame: str, camera_frame: str) -> str | None:
    """Why a pose from tf2 cannot project onto the road, or None."""
    height = float(pose.translation[2])
    if height <= 0.0:
        return (
            f"the transform {ground_frame} <- {camera_frame} puts the camera {height:.2f} m above the road "
            f"(z <= 0): ground_frame_id must be a frame on the road (z = 0), such as base_footprint"
        )
    if pose.rotation[2, 2] > _MAX_UPWARD_AXIS:
        return (
            f"the transform {ground_frame} <- {camera_frame} points the camera's optical axis up at the sky: "
            f"is {camera_frame} the optical frame (x right, y down, z forward, e.g. camera_optical_frame)?"
        )
    return None


class Tf2Lookup:
    """A tf2 ``Buffer`` fed by a ``TransformListener`` on ``node``; raises ImportError without tf2_ros."""

    def __init__(self, node: Node) -> None:
        import tf2_ros

        self._tf2 = tf2_ros
        self._buffer = tf2_ros.Buffer()
        # No thread of its own: the node's executor delivers /tf and /tf_static; the inference thread reads.
        self._listener = tf2_ros.TransformListener(self._buffer, node)
        self._started = time.monotonic()

    def pose(self, ground_frame: str, camera_frame: str, stamp: Time) -> CameraPose:
        """The camera's pose at ``stamp``: static transforms at once; a dynamic one waited for up to
        :data:`TF_WAIT_S`, then the latest unless it is :data:`TF_MAX_AGE_S` older than the image. Raises
        :class:`PoseUnavailable`."""
        tf2 = self._tf2
        try:
            try:
                transform = self._buffer.lookup_transform(ground_frame, camera_frame, stamp)
            except tf2.ExtrapolationException:  # a moving mount whose tf message is not here yet (or is old)
                try:
                    transform = self._buffer.lookup_transform(
                        ground_frame, camera_frame, stamp, timeout=Duration(seconds=TF_WAIT_S)
                    )
                except tf2.ExtrapolationException:
                    transform = self._buffer.lookup_transform(ground_frame, camera_frame, Time())
                    age_s = (stamp.nanoseconds - Time.from_msg(transform.header.stamp).nanoseconds) * 1e-9
                    if age_s > TF_MAX_AGE_S:
                        raise PoseUnavailable(
                            f"the newest transform {ground_frame} <- {camera_frame} is {age_s:.2f} s older "
                            "than the image (has its publisher stopped? do tf and the camera stamp with one "
                            "clock?); lanes are published in pixels only"
                        ) from None
        except tf2.TransformException as exc:
            raise PoseUnavailable(
                f"no transform {ground_frame} <- {camera_frame} from tf2 ({type(exc).__name__}: {exc}); "
                "publish it (robot_state_publisher, a static transform) or set camera_pose; lanes are "
                "published in pixels only",
                settling=time.monotonic() - self._started < TF_STARTUP_S,
            ) from None
        t, q = transform.transform.translation, transform.transform.rotation
        try:
            pose = CameraPose.from_transform((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))
        except InputError as exc:
            raise PoseUnavailable(
                f"the transform {ground_frame} <- {camera_frame} is invalid: {exc}"
            ) from None
        problem = pose_problem(pose, ground_frame, camera_frame)
        if problem is not None:
            raise PoseUnavailable(f"{problem}; lanes are published in pixels only")
        return pose

    def clear(self) -> None:
        """Forget every transform (the stamps jumped back: a bag started again)."""
        self._buffer.clear()

    def close(self) -> None:
        self._listener.unregister()


class CameraPoseSource:
    """The camera's pose for each frame, by the one rule of the module docstring.

    The parameters are read for every frame, so a run-time change applies to the next one. The tf2 listener
    exists only while the node is active and the parameters do not define the pose (a listener decodes every
    /tf message in Python); :meth:`follow`, called from the node's executor, creates or destroys it.
    """

    def __init__(self, node: Node) -> None:
        self._node = node
        self._tf: Tf2Lookup | None = None
        self._tf2_missing = False
        self._open = False
        self._parameters: PoseParameters | None = None  # as :meth:`follow` last saw them
        self._pose_cache: tuple[PoseParameters, CameraPose | None] | None = None  # the inference thread's

    def open(self) -> str:
        """Start (at activate); returns the line saying which source is used."""
        self._open = True
        return self.follow(force=True) or ""

    def close(self) -> None:
        """Stop (at deactivate): the tf2 listener is destroyed."""
        self._open = False
        if self._tf is not None:
            self._tf.close()
        self._tf = None

    def follow(self, force: bool = False) -> str | None:
        """Match the source to the current parameters; the line describing it when it changed."""
        parameters = PoseParameters.from_node(self._node)
        if not force and parameters == self._parameters:
            return None
        self._parameters = parameters
        ground_frame = self._node.get_parameter("ground_frame_id").value
        if parameters.define_pose:
            if self._tf is not None:
                self._tf.close()
                self._tf = None
            return f"camera pose: from {parameters.describe()}"
        if self._tf is None and self._open and not self._tf2_missing:
            try:
                self._tf = Tf2Lookup(self._node)
            except ImportError:
                self._tf2_missing = True
        if self._tf is None:
            return f"camera pose: none: no camera_pose or camera_height is set and {TF2_MISSING}"
        return f"camera pose: from tf2, the transform {ground_frame} <- each image's frame_id"

    @property
    def description(self) -> str:
        """The current source in a few words (diagnostics)."""
        if self._parameters is not None and self._parameters.define_pose:
            if self._parameters.camera_pose is not None:
                return "camera_pose parameter"
            return "camera_height/camera_pitch parameters"
        return "tf2 transform" if self._tf is not None else "none"

    def pose(self, ground_frame: str, camera_frame: str, stamp: Time) -> CameraPose | None:
        """The pose for one frame; None without a source. Raises :class:`PoseUnavailable` (tf2)."""
        parameters = PoseParameters.from_node(self._node)
        if parameters.define_pose:
            if self._pose_cache is None or self._pose_cache[0] != parameters:
                self._pose_cache = (parameters, parameters.pose())
            return self._pose_cache[1]
        tf = self._tf
        if tf is None:
            return None
        if not camera_frame:
            raise PoseUnavailable(
                "the image has no header.frame_id, so tf2 cannot place the camera; set camera_pose"
            )
        return tf.pose(ground_frame, camera_frame, stamp)

    def time_jumped_back(self) -> None:
        tf = self._tf
        if tf is not None:
            tf.clear()
