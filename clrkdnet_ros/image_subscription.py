"""The node's camera subscription: keep last 1, with a fixed reliability or one that follows the publishers.

``image_qos: auto`` subscribes reliable while every matched publisher is reliable and best effort otherwise,
as rviz2 and ``ros2 bag record`` do: a reliable reader gets every frame of a reliable camera (a best-effort
one does not, for full-size frames, see ``dds_setup``), and only a best-effort reader matches a best-effort
camera. :meth:`ImageSubscription.follow` re-evaluates that as publishers come and go, re-creating the
subscription.
"""

from collections.abc import Callable
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image

FIXED_RELIABILITY = {
    "sensor_data": ReliabilityPolicy.BEST_EFFORT,
    "reliable": ReliabilityPolicy.RELIABLE,
    "system_default": ReliabilityPolicy.SYSTEM_DEFAULT,
}
RELIABILITY_NAMES = {
    ReliabilityPolicy.RELIABLE: "reliable",
    ReliabilityPolicy.BEST_EFFORT: "best effort",
    ReliabilityPolicy.SYSTEM_DEFAULT: "system default",
}
# Standard ROS 2 QoS overrides: read-only parameters
# ``qos_overrides.<topic>.publisher|subscription.<policy>``, given at start-up.
QOS_OVERRIDES = QoSOverridingOptions.with_default_policies()
# rclpy re-applies the reliability it declared for the first subscription to every later one on the topic, so
# a subscription that follows its publishers takes the overrides of history and depth only once it is re-made.
_FOLLOWING_QOS_OVERRIDES = QoSOverridingOptions(policy_kinds=(QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH))


def latest_only_qos(reliability: ReliabilityPolicy) -> QoSProfile:
    """Keep last 1, volatile: only the newest frame matters."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=reliability,
        durability=DurabilityPolicy.VOLATILE,
    )


class ImageSubscription:
    """The ``image`` (or ``image/compressed``) subscription of ``node``, opened and closed with processing.

    ``choice`` is the ``image_qos`` parameter; with ``auto``, a reliability given through the standard QoS
    overrides fixes it like the other choices do.
    """

    def __init__(
        self,
        node: Node,
        choice: str,
        compressed: bool,
        callback: Callable[[Any], None],
        event_callbacks: Callable[[], Any],
    ) -> None:
        self._node = node
        self._choice = choice
        self._callback = callback
        self._event_callbacks = event_callbacks  # a fresh SubscriptionEventCallbacks per subscription
        # Like image_transport: the compressed topic follows the (remapped) raw topic name.
        self.topic = node.resolve_topic_name("image") + ("/compressed" if compressed else "")
        self._msg_type = CompressedImage if compressed else Image
        self._subscription = None
        self.reliability: ReliabilityPolicy | None = None
        self._overridden: bool | None = None  # by qos_overrides; known once first subscribed

    @property
    def is_open(self) -> bool:
        return self._subscription is not None

    def publisher_count(self) -> int:
        """Publishers matched with the subscription (0 while closed)."""
        return self._subscription.get_publisher_count() if self._subscription is not None else 0

    def open(self) -> None:
        self._subscribe(self._wanted())

    def close(self) -> None:
        if self._subscription is not None:
            self._node.destroy_subscription(self._subscription)
        self._subscription = None
        self.reliability = None

    @property
    def qos_profile(self) -> QoSProfile | None:
        """The subscription's QoS after the standard overrides (None while closed)."""
        return self._subscription.qos_profile if self._subscription is not None else None

    def follow(self) -> bool:
        """With ``auto``: re-subscribe when the publishers call for another reliability; True if it did."""
        if self._subscription is None or self._choice != "auto" or self._overridden:
            return False
        wanted = self._wanted()
        if wanted == self.reliability:
            return False
        self._node.destroy_subscription(self._subscription)
        self._subscribe(wanted)
        return True

    def _wanted(self) -> ReliabilityPolicy:
        if self._choice != "auto":
            return FIXED_RELIABILITY[self._choice]
        if self._overridden:
            return self.reliability
        publishers = self._node.get_publishers_info_by_topic(self.topic)
        if publishers and all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers):
            return ReliabilityPolicy.RELIABLE
        return ReliabilityPolicy.BEST_EFFORT

    def _subscribe(self, reliability: ReliabilityPolicy) -> None:
        following = self._choice == "auto" and self._overridden is False
        self._subscription = self._node.create_subscription(
            self._msg_type,
            self.topic,
            self._callback,
            latest_only_qos(reliability),
            event_callbacks=self._event_callbacks(),
            qos_overriding_options=_FOLLOWING_QOS_OVERRIDES if following else QOS_OVERRIDES,
        )
        if self._overridden is None:
            self._overridden = self._subscription.qos_profile.reliability != reliability
        self.reliability = self._subscription.qos_profile.reliability
