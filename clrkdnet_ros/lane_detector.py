"""The ``lane_detector`` lifecycle node: camera images in, ``clrkdnet_msgs/LaneArray`` and visualisation out.

Run it with ``ros2 run clrkdnet_ros lane_detector --ros-args -p weights:=model.pth`` (or the launch file), or
without a ROS workspace as ``python -m clrkdnet_ros.lane_detector --ros-args -p weights:=model.pth``.

Lifecycle: *configure* loads the model (a missing or mismatched checkpoint fails here with one error line),
*activate* subscribes to the camera and enables the publishers, *deactivate* unsubscribes and stops the
inference thread, *cleanup* frees the model. With ``auto_start`` (default) the node configures and activates
itself.

Topics (relative, so ``__ns``/launch namespaces and remapping work):

* in: ``image`` (``sensor_msgs/Image``) or, with ``image_transport:=compressed``, ``image/compressed``
  (resolved after remapping, as image_transport does), and optionally ``camera_info`` and ``odom``
  (``nav_msgs/Odometry``: speed and yaw rate for the tracker's prediction); ``/tf`` and ``/tf_static`` when
  tf2 gives the camera's pose (:mod:`clrkdnet_ros.camera_pose`).
* out: ``lanes``; with the ground projection (``camera_info`` and a camera pose) ``ego_lane``
  (``clrkdnet_msgs/EgoLane``), ``ego_left_path`` and ``ego_right_path`` (``nav_msgs/Path``); ``lane_markers``,
  ``~/debug/image``, ``~/debug/processing_time_ms``, ``~/debug/pipeline_latency_ms``, ``/diagnostics``
  (with the camera mounting check); service ``~/enable`` (``std_srvs/SetBool``). Markers, paths and the debug
  image are built only while someone subscribes.

Per frame: detect -> camera model (intrinsics from ``camera_info``, pose from the parameters or tf2) ->
:class:`~clrkdnet_core.perception.LanePerception` (tracks with stable ids, ``tracking:=false`` for per-frame
indices) -> messages. Image stamps that go back (a bag started again) start the tracks afresh.

Before ``rclpy.init``, :func:`main` gives the node's own DDS participant the package's profile for full-size
frames unless the user configured DDS (:mod:`clrkdnet_ros.dds_setup`; ``dds_profile:=false`` turns it off).
"""

import math
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import rclpy
from clrkdnet_msgs.msg import EgoLane, LaneArray
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_policy_name_from_kind,
)
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Float64, Header
from std_srvs.srv import SetBool
from visualization_msgs.msg import MarkerArray

from clrkdnet_core.cli import run_cli
from clrkdnet_core.config import load_preset
from clrkdnet_core.errors import ClrkdnetError, InputError
from clrkdnet_core.lane import Lane
from clrkdnet_core.lane_positions import EGO_LEFT, EGO_RIGHT
from clrkdnet_core.mounting_check import MountingPitchCheck
from clrkdnet_core.perception import FramePerception, LanePerception
from clrkdnet_core.predict import draw_tracks
from clrkdnet_core.weights import resolve_weights
from clrkdnet_ros import dds_setup, parameters
from clrkdnet_ros.camera_pose import CameraPoseSource, PoseUnavailable
from clrkdnet_ros.conversions import ego_lane_to_msg, frame_to_msg
from clrkdnet_ros.diagnostics import Condition, DetectorStats, mounting_status
from clrkdnet_ros.ego_paths import ego_paths, sample_curve
from clrkdnet_ros.frame_slot import FrameWorker, LatestFrameSlot
from clrkdnet_ros.ground_projection import CameraModel, CameraModelCache
from clrkdnet_ros.image_codec import bgr_to_image, decode_frame
from clrkdnet_ros.image_subscription import (
    FIXED_RELIABILITY,
    QOS_OVERRIDES,
    RELIABILITY_NAMES,
    ImageSubscription,
    latest_only_qos,
)
from clrkdnet_ros.input_watch import IDLE, LOST, assess_input, wall_time_of
from clrkdnet_ros.markers import lanes_to_markers
from clrkdnet_ros.odometry import OdometryInput
from clrkdnet_ros.ros_logging import forward_core_logs

if TYPE_CHECKING:
    from clrkdnet_core.inference import LaneDetector

try:  # Iron and newer
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

RCLError = rclpy_implementation.RCLError
LOG_THROTTLE_S = 5.0
# The no-frames warning repeats less often: it stays true for as long as the camera is misconfigured.
_STARVATION_LOG_S = 10.0
# Period of the diagnostics timer, which also runs the input watch.
_WATCH_PERIOD_S = 1.0
# Marker lifetime bounds (s): twice the frame period, clamped (see _marker_lifetime_s).
MARKER_LIFETIME_RANGE_S = (0.2, 5.0)
_OUTPUT_QOS = QoSProfile(
    depth=5, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE
)
_LATEST_ONLY_QOS = latest_only_qos(ReliabilityPolicy.RELIABLE)
# Best effort matches reliable and best-effort odometry publishers; a few messages of history are plenty, only
# the newest is used.
_ODOMETRY_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)


class LaneDetectorNode(LifecycleNode):
    """Lane detection on the newest camera frame; see the module docstring for topics and lifecycle."""

    def __init__(self, dds: dds_setup.DdsSetup | None = None, **kwargs: Any) -> None:
        """``dds``: what the entry point did to DDS before ``rclpy.init`` (None: it did not run)."""
        super().__init__("lane_detector", **kwargs)
        self._dds = dds or dds_setup.DdsSetup(
            False, "DDS: left as the caller configured it", rmem_max=dds_setup.read_rmem_max()
        )
        self._stats = DetectorStats()
        self._detector = None
        self._detector_lock = threading.Lock()
        self._camera_info: CameraInfo | None = None
        self._camera_models = CameraModelCache()  # used by the inference thread only
        self._processing_enabled = True
        self._active = False
        self._slot: LatestFrameSlot | None = None
        self._worker: FrameWorker | None = None
        self._matched_since: float | None = None
        self._input_problem: str | None = None
        self._input_idle: str | None = None  # frames arrived, then stopped: said once at INFO
        self._dds_reported = False
        self._camera_info_sub = None
        self._outputs: dict[str, Any] = {}
        self._previous_frame_time: float | None = None
        # The inference thread's: the perception with and without tracking (both kept, so that switching
        # tracking back on never reuses a track id), which one runs, the mounting check, the newest stamp.
        self._perceptions = {True: LanePerception(tracking=True), False: LanePerception(tracking=False)}
        self._mounting = MountingPitchCheck()
        self._last_stamp_s: float | None = None
        self._poses = CameraPoseSource(self)
        self._odometry = OdometryInput()
        self._odometry_sub = None
        logger = self.get_logger()
        # Problems that last for many frames: one warning when they start, a reminder every 30 s.
        self._pose_problem = Condition(logger.warning, logger.info, "camera pose available again")
        self._camera_problem = Condition(logger.warning, logger.info, "camera_info usable again")
        # Its end is not said: stale odometry and odometry forgotten after a bag loop look alike here.
        self._odometry_problem = Condition(logger.warning, logger.info)
        self._bad_odometry = Condition(logger.warning, logger.info)
        self._mounting_problem = Condition(
            logger.warning, logger.info, "camera pitch agrees with the lanes again"
        )

        # Registered first so that it also checks the values given at start-up.
        self.add_on_set_parameters_callback(self._on_set_parameters)
        parameters.declare_parameters(self)
        self._tracking = self.get_parameter("tracking").value
        # One for the node's lifetime: rclpy keeps the QoS overrides it declared for the first subscription.
        self._image_sub = ImageSubscription(
            self,
            self.get_parameter("image_qos").value,
            self.get_parameter("image_transport").value == "compressed",
            self._on_image,
            lambda: SubscriptionEventCallbacks(
                incompatible_qos=self._on_incompatible_qos, message_lost=self._on_message_lost
            ),
        )

        self._enable_srv = self.create_service(SetBool, "~/enable", self._on_enable)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(_WATCH_PERIOD_S, self._on_timer)

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._detector = self._create_detector()
        except (ClrkdnetError, OSError) as exc:
            self.get_logger().error(f"cannot load the model: {exc}")
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # rclpy would turn it into a silent ERROR transition
            self.get_logger().error(f"cannot load the model: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        outputs = {
            "lanes": (LaneArray, "lanes", _OUTPUT_QOS),
            "markers": (MarkerArray, "lane_markers", _LATEST_ONLY_QOS),
            "ego_lane": (EgoLane, "ego_lane", _OUTPUT_QOS),
            "ego_left_path": (PathMsg, "ego_left_path", _OUTPUT_QOS),
            "ego_right_path": (PathMsg, "ego_right_path", _OUTPUT_QOS),
            "debug_image": (Image, "~/debug/image", _LATEST_ONLY_QOS),
            "processing_time": (Float64, "~/debug/processing_time_ms", _OUTPUT_QOS),
            "pipeline_latency": (Float64, "~/debug/pipeline_latency_ms", _OUTPUT_QOS),
        }
        self._outputs = {
            key: self.create_lifecycle_publisher(msg_type, topic, qos, qos_overriding_options=QOS_OVERRIDES)
            for key, (msg_type, topic, qos) in outputs.items()
        }
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the publishers before the first frame can arrive
        self._active = True
        self.get_logger().info(self._poses.open())
        if self._processing_enabled:
            self._start_processing()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self.stop_processing()
        self._poses.close()
        self._reset_tracking()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._reset_tracking()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self.stop_processing()
        self._poses.close()
        self._release()
        return super().on_shutdown(state)

    def destroy_node(self) -> None:
        """Close the tf2 listener first: its subscriptions would otherwise be destroyed behind its back."""
        self._poses.close()
        super().destroy_node()

    def _reset_tracking(self) -> None:
        """Forget the tracks, odometry and stamps (the inference thread is stopped when this runs)."""
        for perception in self._perceptions.values():
            perception.reset()
        self._odometry.reset()
        self._last_stamp_s = None

    def _create_detector(self) -> "LaneDetector":
        parameters.check_choices(self)
        weights = self.get_parameter("weights").value
        if not weights:
            raise InputError(
                "parameter 'weights' is not set; pass --ros-args -p weights:=/path/to/checkpoint.pth"
            )
        weights = resolve_weights(weights)  # a path, or an official file name in the weights cache
        # Imported here (torch is slow to import) so that wrong parameters fail within a second.
        from clrkdnet_core.inference import LaneDetector
        from clrkdnet_ros.calibration import calibration_source

        preset = load_preset(self.get_parameter("preset").value)
        crop_ratio = parameters.optional_parameter(self, "crop_ratio")
        if crop_ratio is not None:
            preset = preset.with_overrides(
                {"geometry.cut_height": round(crop_ratio * preset.geometry.ori_img_h)}
            )
        # LaneDetector falls back to the CPU (with a warning, see _forward_core_logs) when CUDA is missing.
        detector = LaneDetector.from_preset(
            preset,
            weights,
            device=self.get_parameter("device").value,
            backend=self.get_parameter("backend").value,
            precision=self.get_parameter("precision").value,
            calibration=calibration_source(self.get_parameter("calibration").value),
        )
        # Thresholds left unset take the preset's values; writing them back shows them in `ros2 param get`.
        overrides = {
            keyword: parameters.optional_parameter(self, name)
            for name, keyword in parameters.THRESHOLDS.items()
            if parameters.optional_parameter(self, name) is not None
        }
        detector.set_thresholds(**overrides)
        self.set_parameters(
            [
                Parameter(name, value=getattr(preset.test, keyword))
                for name, keyword in parameters.THRESHOLDS.items()
                if keyword not in overrides
            ]
        )
        self.get_logger().info(
            f"loaded {preset.name} from {weights} on {detector.device} ({detector.backend} backend, "
            f"{detector.precision}), "
            f"cut {preset.geometry.crop_ratio:.3f} of the image height"
        )
        return detector

    def _release(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        on_gpu = self._detector is not None and self._detector.device.type == "cuda"
        self._detector = None
        self._camera_info = None
        if on_gpu:
            import torch

            torch.cuda.empty_cache()  # hand the network's memory back while the node is unconfigured

    # ---- subscriptions and the inference thread ------------------------------------------------------------

    def _start_processing(self) -> None:
        self._slot = LatestFrameSlot()
        self._worker = FrameWorker(self._slot, self._process, self._on_processing_error)
        self._worker.start()
        self._image_sub.open()
        self._matched_since = None
        camera_info_reliability = FIXED_RELIABILITY.get(
            self.get_parameter("image_qos").value, ReliabilityPolicy.BEST_EFFORT
        )
        self._camera_info_sub = self.create_subscription(
            CameraInfo,
            "camera_info",
            self._on_camera_info,
            latest_only_qos(camera_info_reliability),
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos),
        )
        self._odometry_sub = self.create_subscription(Odometry, "odom", self._on_odometry, _ODOMETRY_QOS)
        if not self._dds_reported:  # once, and only when frames are awaited: start-up errors stay one line
            self._dds_reported = True
            self.get_logger().info(self._dds.message)
            for warning in self._dds.warnings:
                self.get_logger().warning(warning)
        self.get_logger().info(f"waiting for images on {self._image_sub.topic}")

    def stop_processing(self) -> None:
        """Stop taking frames: remove the subscriptions and end the inference thread (the frame in progress
        finishes). Lifecycle transitions and ``~/enable`` use it; call it before ``destroy_node``."""
        self._image_sub.close()
        if self._camera_info_sub is not None:
            self.destroy_subscription(self._camera_info_sub)
        self._camera_info_sub = None
        if self._odometry_sub is not None:
            self.destroy_subscription(self._odometry_sub)
        self._odometry_sub = None
        self._input_problem = self._input_idle = None
        if self._worker is not None:
            self._worker.stop()
        self._slot = self._worker = None

    def _on_image(self, msg: Image | CompressedImage) -> None:
        slot = self._slot
        if slot is not None:
            self._stats.frame_received(dropped_previous=slot.put(msg))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_odometry(self, msg: Odometry) -> None:
        problem = self._odometry.update(msg, self.get_clock().now().nanoseconds * 1e-9)
        if problem is not None:
            self._bad_odometry.report(problem)

    def _process(self, msg: Image | CompressedImage) -> None:
        start = time.perf_counter()
        detector = self._detector
        if detector is None:
            return
        # A JPEG is decoded at the reduced scale the network needs (lanes stay in the camera's pixels), except
        # for the debug image, which shows the full frame.
        debug = self._outputs["debug_image"].get_subscription_count() > 0
        try:
            frame = decode_frame(msg, None if debug else detector.reduced_decode_scale)
        except InputError as exc:
            self._stats.bad_frame()
            self.get_logger().warning(f"skipping frame: {exc}", throttle_duration_sec=LOG_THROTTLE_S)
            return
        image = frame.image
        with self._detector_lock:
            detector = self._detector
            if detector is None:
                return
            lanes = detector.detect(image, frame.size)
        width, height = frame.size
        stamp = Time.from_msg(msg.header.stamp)
        ground_frame = self.get_parameter("ground_frame_id").value
        camera = self._camera_model(ground_frame, msg.header.frame_id, stamp, width, height)
        perceived = self._perceive(lanes, (width, height), stamp.nanoseconds * 1e-9, camera)
        lane_array = frame_to_msg(
            perceived, msg.header, width, height, ground_frame if camera.projector is not None else ""
        )
        self._outputs["lanes"].publish(lane_array)
        if perceived.ego is not None:
            ground_header = Header(stamp=msg.header.stamp, frame_id=ground_frame)
            self._outputs["ego_lane"].publish(ego_lane_to_msg(perceived.ego, ground_header))
            if any(
                self._outputs[key].get_subscription_count() > 0 for key in ("ego_left_path", "ego_right_path")
            ):
                left, right = ego_paths(perceived.ego, ground_header)
                self._outputs["ego_left_path"].publish(left)
                self._outputs["ego_right_path"].publish(right)
            self._check_mounting(perceived, camera)
        lifetime_s = self._marker_lifetime_s(start)  # every frame: the period is between frames, not markers
        if self._outputs["markers"].get_subscription_count() > 0:
            centre = None
            if perceived.ego is not None and perceived.ego.center_line is not None:
                centre_xy = sample_curve(perceived.ego.center_line)
                centre = np.column_stack([centre_xy, np.zeros(len(centre_xy))])
            markers = lanes_to_markers(lane_array, camera.intrinsics, lifetime_s, centre)
            self._outputs["markers"].publish(markers)
        if debug:
            # Each lane in its track's colour with its id at its base, as predict --track draws them.
            drawn = draw_tracks(image, perceived.lanes)
            self._outputs["debug_image"].publish(bgr_to_image(drawn, msg.header))

        processing_ms = (time.perf_counter() - start) * 1e3
        latency_ms = (self.get_clock().now() - Time.from_msg(msg.header.stamp)).nanoseconds / 1e6
        self._outputs["processing_time"].publish(Float64(data=processing_ms))
        self._outputs["pipeline_latency"].publish(Float64(data=latency_ms))
        self._stats.frame_processed(processing_ms, latency_ms)

    def _camera_model(
        self, ground_frame: str, camera_frame: str, stamp: Time, width: int, height: int
    ) -> CameraModel:
        """Intrinsics and ground projector of this frame; problems are logged (lanes then stay in pixels)."""
        info = self._camera_info
        camera = self._camera_models.get(info, width, height, None)
        self._camera_problem.report(camera.problem)
        if camera.intrinsics is None:
            return camera  # no ground projection without camera_info: the pose does not matter yet
        try:
            pose = self._poses.pose(ground_frame, camera_frame, stamp)
            self._pose_problem.report(None)
        except PoseUnavailable as exc:
            pose = None
            self._pose_problem.report(None if exc.settling else str(exc))
        return self._camera_models.get(info, width, height, pose)

    def _perceive(
        self, lanes: list[Lane], image_size: tuple[int, int], stamp_s: float, camera: CameraModel
    ) -> FramePerception:
        """Tracks (or per-frame lanes) and the ego lane's state of this frame."""
        tracking = self.get_parameter("tracking").value
        perception = self._perceptions[tracking]
        if tracking != self._tracking:
            self._tracking = tracking
            perception.reset()  # tracks of before the switch are stale; ids still never come back
            self.get_logger().info(f"tracking {'on' if tracking else 'off'}: lanes start afresh")
        previous_s, self._last_stamp_s = self._last_stamp_s, stamp_s
        if previous_s is not None and stamp_s < previous_s:
            self.get_logger().info(
                f"image stamps went back by {previous_s - stamp_s:.3f} s (a bag started again?): "
                "lane tracks, odometry and tf2's buffer start afresh"
            )
            perception.reset()
            self._odometry.reset()
            self._poses.time_jumped_back()
            previous_s = None
        # The tracker predicts across the whole interval since the previous processed image: its mean motion.
        motion, problem = self._odometry.motion_at(stamp_s, since_s=previous_s)
        self._odometry_problem.report(problem)
        return perception.update(lanes, image_size, stamp_s, camera.projector, motion)

    def _check_mounting(self, perceived: FramePerception, camera: CameraModel) -> None:
        """Feed this frame's measured ego boundaries to the pitch check; warn while it disagrees."""
        boundaries = {
            lane.position: lane.lane.points
            for lane in perceived.lanes
            if lane.measured and lane.position in (EGO_LEFT, EGO_RIGHT)
        }
        check = self._mounting
        check.update(
            boundaries.get(EGO_LEFT), boundaries.get(EGO_RIGHT), camera.intrinsics, camera.projector.pose
        )
        problem = None
        if check.mismatch:
            problem = (
                f"the lanes show a camera pitch of {math.degrees(check.estimate):.2f} deg ({check.samples} "
                f"samples), the {self._poses.description} gives "
                f"{math.degrees(check.configured_pitch):.2f} deg: is the camera mounted as configured?"
            )
        self._mounting_problem.report(problem)

    def _marker_lifetime_s(self, now: float) -> float:
        """Twice the time since the previous frame: markers vanish when frames stop, but never flicker."""
        previous, self._previous_frame_time = self._previous_frame_time, now
        if previous is None:
            return MARKER_LIFETIME_RANGE_S[1]
        return min(max(2.0 * (now - previous), MARKER_LIFETIME_RANGE_S[0]), MARKER_LIFETIME_RANGE_S[1])

    def _on_processing_error(self, exc: BaseException) -> None:
        self._stats.inference_error()
        self.get_logger().error(
            f"processing a frame failed: {type(exc).__name__}: {exc}", throttle_duration_sec=LOG_THROTTLE_S
        )

    def _on_message_lost(self, event: Any) -> None:
        self._stats.frames_lost(event.total_count_change)

    def _on_incompatible_qos(self, event: Any) -> None:
        policy = qos_policy_name_from_kind(event.last_policy_kind)
        hint = (
            " (a best-effort publisher needs image_qos:=sensor_data or auto)"
            if policy == "RELIABILITY"
            else ""
        )
        self.get_logger().warning(
            f"a publisher offers QoS incompatible with this subscription (policy {policy}); "
            f"its messages are not received{hint}"
        )

    # ---- services, parameters and diagnostics --------------------------------------------------------------

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data == self._processing_enabled:
            response.success, response.message = (
                True,
                f"already {'enabled' if self._processing_enabled else 'disabled'}",
            )
            return response
        self._processing_enabled = request.data
        if self._active:
            if self._processing_enabled:
                self._start_processing()
            else:
                self.stop_processing()
        response.success = True
        response.message = (
            "enabled" if self._processing_enabled else "disabled: the image subscription is removed"
        )
        return response

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        thresholds = {}
        for change in changes:
            reason = parameters.invalid_reason(change)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
            # Declared without a value, a threshold takes the preset's. (rclpy itself refuses to unset a
            # statically typed parameter later.)
            if change.name in parameters.THRESHOLDS and change.type_ != Parameter.Type.NOT_SET:
                thresholds[parameters.THRESHOLDS[change.name]] = change.value
        if thresholds and self._detector is not None:
            try:
                with self._detector_lock:
                    self._detector.set_thresholds(**thresholds)
            except ClrkdnetError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _on_timer(self) -> None:
        if self._image_sub.is_open:
            if self._image_sub.follow():
                self._matched_since = None
                reliability = RELIABILITY_NAMES[self._image_sub.reliability]
                self.get_logger().info(
                    f"image publishers changed: subscribing {reliability} to {self._image_sub.topic} "
                    "(image_qos auto)"
                )
            self._watch_input()
        if self._active:
            change = self._poses.follow()  # a run-time change of camera_pose / camera_height
            if change is not None:
                self.get_logger().info(change)
        self._publish_diagnostics()

    def _watch_input(self) -> None:
        """Warn (throttled) while a matched publisher's frames are lost; one INFO line when frames stop after
        arriving (idle, see :mod:`clrkdnet_ros.input_watch`); one when they flow again."""
        now = time.monotonic()
        publishers = self._image_sub.publisher_count()
        if publishers == 0:
            self._matched_since = None
        elif self._matched_since is None:
            self._matched_since = now
        received, lost = self._stats.recent_input()
        last_frame = self._stats.last_frame
        last = max(t for t in (last_frame, self._matched_since, 0.0) if t is not None)
        # This runs once a second: a publisher may have matched (and sent) up to a period before it was seen.
        arrived = (
            last_frame is not None
            and self._matched_since is not None
            and last_frame >= self._matched_since - _WATCH_PERIOD_S
        )
        context = (
            f"DDS profile {'applied' if self._dds.applied else 'not applied'}, "
            f"net.core.rmem_max {self._dds.rmem_max if self._dds.rmem_max is not None else 'unknown'}"
        )
        state = assess_input(publishers, now - last, arrived, received, lost, context)
        topic = self._image_sub.topic
        if state.kind == LOST:
            self.get_logger().warning(f"{topic}: {state.message}", throttle_duration_sec=_STARVATION_LOG_S)
        elif state.kind == IDLE and self._input_idle is None:
            self.get_logger().info(
                f"no frames from {topic} for {now - last:.0f} s; last one at {wall_time_of(last_frame)}"
            )
        elif state.kind not in (IDLE, LOST) and (self._input_problem or self._input_idle) and received > 0:
            self.get_logger().info(f"frames arrive on {topic} again")
        self._input_problem = state.message if state.kind == LOST else None
        if state.kind == IDLE:
            self._input_idle = self._input_idle or f"no frames since {wall_time_of(last_frame)}"
        elif received > 0 or publishers == 0:
            self._input_idle = None

    def _publish_diagnostics(self) -> None:
        detector = self._detector
        if not self._active:
            state = "inactive" if detector is not None else "unconfigured"
        else:
            state = "active" if self._processing_enabled else "disabled"
        extra = {
            "preset": self.get_parameter("preset").value,
            "backend": detector.backend if detector is not None else self.get_parameter("backend").value,
            "precision": (
                detector.precision if detector is not None else self.get_parameter("precision").value
            ),
            "backend choice": detector.choice.reason if detector is not None else "not loaded",
            "device": str(detector.device) if detector is not None else self.get_parameter("device").value,
            "image reliability": RELIABILITY_NAMES.get(self._image_sub.reliability, "not subscribed"),
            "DDS profile": "applied" if self._dds.applied else "not applied",
            "net.core.rmem_max (bytes)": str(self._dds.rmem_max)
            if self._dds.rmem_max is not None
            else "unknown",
            "tracking": "on" if self.get_parameter("tracking").value else "off",
            "camera pose source": self._poses.description,
            "camera pose problem": self._pose_problem.problem or "none",
            "camera_info problem": self._camera_problem.problem or "none",
            "odometry": f"{self._odometry.received} received, {self._odometry.rejected} rejected (NaN)",
            "odometry problem": self._odometry_problem.problem or "none",
        }
        status = self._stats.status(
            f"{self.get_fully_qualified_name()}: lane detection",
            extra["device"],
            state,
            extra,
            self._input_problem,
            self._input_idle,
        )
        check = self._mounting
        mounting = mounting_status(
            f"{self.get_fully_qualified_name()}: camera mounting",
            check.estimate,
            check.configured_pitch,
            check.samples,
            check.mismatch,
            self._poses.description,
        )
        msg = DiagnosticArray(status=[status, mounting])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(msg)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ros2 run clrkdnet_ros lane_detector`` and ``python -m``.

    Exit codes: 0 after a normal shutdown, 1 when auto-start cannot load the model (logged as one ROS error
    line), 2 with one ``error:`` line for a parameter of the wrong type or out of its range.
    """
    return run_cli(_run, argv)


class _InterruptOnce:
    """SIGINT stops the node once; a SIGINT after that is ignored, for the rest of the process.

    Ctrl-C in a terminal signals the whole foreground process group, and ``ros2 launch`` then sends its own
    SIGINT to the node: the second one came during the clean-up ("interrupted", exit 130, launch reporting
    "process has died"), in an atexit callback (a ``KeyboardInterrupt`` traceback from torch's library
    finalizer) or in the interpreter's teardown (killed by the default handler). After the clean-up SIGINT
    is ignored outright (_run). A clean-up that hangs is still ended by SIGTERM (rclpy's handler) or
    SIGKILL, as launch escalates.
    """

    def __init__(self) -> None:
        self.stopping = False

    def handle(self, signum: int, frame: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        raise KeyboardInterrupt


def _run(argv: list[str] | None) -> int:
    # OpenMP threads that spin while idle take the CPU from the camera driver and the DDS threads (the demo's
    # node kept up with fewer frames with them spinning). Set before torch loads; a caller's value wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Before rclpy.init: Fast DDS reads its profile when the participant is created.
    dds = dds_setup.apply_to_this_process(sys.argv if argv is None else argv)
    # Before rclpy.init too: rclpy's own SIGINT handler (which stops spin) calls the one found at init.
    interrupts = _InterruptOnce()
    signal.signal(signal.SIGINT, interrupts.handle)
    try:
        rclpy.init(args=argv)
    except RCLError as exc:  # malformed --ros-args or an unreadable --params-file
        reason = str(exc).split(", at ")[0].removeprefix("failed to initialize rcl: ")
        raise InputError(f"invalid ROS arguments: {reason}") from None
    node = None
    try:
        node = LaneDetectorNode(dds)
        forward_core_logs(node.get_logger())
        if node.get_parameter("auto_start").value:
            for transition in (node.trigger_configure, node.trigger_activate):
                if transition() != TransitionCallbackReturn.SUCCESS:
                    return 1
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        interrupts.stopping = True
        if node is not None:
            node.stop_processing()
            node.destroy_node()
        rclpy.try_shutdown()  # restores the handler found at init: ours
        # Only the interpreter's exit is left (atexit callbacks, then a second or more of tearing down torch
        # and the runtimes, where Python resets a handler of its own to the default, killing the process).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
