"""SpinningNode: callbacks run in its thread while the caller waits; close() leaves no thread inside rclpy."""

import subprocess
import sys
import threading
import time

import pytest

pytestmark = pytest.mark.ros


def test_callbacks_run_while_the_caller_waits_and_close_joins_the_thread():
    from std_msgs.msg import String

    from clrkdnet_ros.spinning_node import SpinningNode

    received = threading.Event()
    with SpinningNode("test_spinning_node") as spinning:
        spinning.node.create_subscription(String, "spinning_node_test", lambda msg: received.set(), 10)
        publisher = spinning.node.create_publisher(String, "spinning_node_test", 10)
        deadline = time.monotonic() + 10.0
        while not received.is_set() and time.monotonic() < deadline:
            publisher.publish(String(data="hello"))
            received.wait(0.1)
        assert received.is_set(), "the subscription's callback never ran"
        thread = spinning._thread
    assert not thread.is_alive()
    assert not spinning.context.ok()
    spinning.close()  # twice is harmless


def test_a_process_that_closes_it_exits_cleanly():
    """A thread left inside rclpy at interpreter exit aborts the process ('terminate called without an active
    exception', exit -6): closing first must leave exit code 0 and nothing on stderr, every time."""
    script = (
        "from clrkdnet_ros.spinning_node import SpinningNode\n"
        "for i in range(3):\n"
        "    with SpinningNode(f'exit_check_{i}') as spinning:\n"
        "        spinning.node.create_timer(0.001, lambda: None)\n"
        "        import time; time.sleep(0.3)\n"
    )
    for _ in range(3):
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and not result.stderr.strip(), (result.returncode, result.stderr)
