"""The camera subscription's reliability: fixed, or following the publishers (``image_qos: auto``)."""

import time

import pytest

pytestmark = pytest.mark.ros


def _follow_until(subscription, reliability, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while subscription.reliability != reliability:
        assert time.monotonic() < deadline, f"still {subscription.reliability}, not {reliability}"
        subscription.follow()
        time.sleep(0.1)


def test_auto_follows_the_publishers_as_they_come_and_go(ros_node):
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from clrkdnet_ros.image_subscription import ImageSubscription

    subscription = ImageSubscription(ros_node, "auto", False, lambda msg: None, lambda: None)
    assert subscription.topic == "/image" and not subscription.is_open
    subscription.open()
    assert subscription.reliability == ReliabilityPolicy.BEST_EFFORT  # nobody publishes: accept everyone
    reliable = ros_node.create_publisher(
        Image, "image", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    )
    _follow_until(subscription, ReliabilityPolicy.RELIABLE)
    assert (
        subscription.qos_profile.reliability == ReliabilityPolicy.RELIABLE
        and subscription.qos_profile.depth == 1
    )
    best_effort = ros_node.create_publisher(Image, "image", qos_profile_sensor_data)
    _follow_until(subscription, ReliabilityPolicy.BEST_EFFORT)  # one best-effort publisher is enough
    ros_node.destroy_publisher(best_effort)
    _follow_until(subscription, ReliabilityPolicy.RELIABLE)
    ros_node.destroy_publisher(reliable)
    subscription.close()
    assert (
        not subscription.is_open and subscription.publisher_count() == 0 and subscription.qos_profile is None
    )


def test_a_fixed_choice_never_changes(ros_node):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage

    from clrkdnet_ros.image_subscription import ImageSubscription

    subscription = ImageSubscription(ros_node, "sensor_data", True, lambda msg: None, lambda: None)
    assert subscription.topic == "/image/compressed"
    subscription.open()
    ros_node.create_publisher(CompressedImage, "image/compressed", QoSProfile(depth=1))  # reliable
    time.sleep(0.5)
    assert subscription.follow() is False
    assert subscription.reliability == ReliabilityPolicy.BEST_EFFORT
