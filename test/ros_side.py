"""The test process's ROS side for the tests that run the node as a real process over DDS."""

import os
import threading
import time
from collections.abc import Callable
from typing import Any

RESEND_S = 5.0  # a first request without an answer after this long is sent again


class Inbox:
    """Messages received on one topic, with a wait for one matching a predicate."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, Any]] = []  # (receive time, message)
        self._condition = threading.Condition()

    def __call__(self, msg: Any) -> None:
        with self._condition:
            self.messages.append((time.time(), msg))
            self._condition.notify_all()

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float) -> Any:
        with self._condition:
            found = self._condition.wait_for(
                lambda: next((m for _, m in self.messages if predicate(m)), None), timeout
            )
            return found

    def since(self, start: float) -> list[tuple[float, Any]]:
        with self._condition:
            return [(t, m) for t, m in self.messages if t >= start]


class RosSide:
    """The test's own node, spun in a background thread so callbacks run while the test waits."""

    def __init__(self) -> None:
        from rclpy.executors import MultiThreadedExecutor

        from clrkdnet_ros.spinning_node import SpinningNode

        self._spinning = SpinningNode(f"lane_detector_test_{os.getpid()}", MultiThreadedExecutor)
        self.context, self.node = self._spinning.context, self._spinning.node
        self._frame = 0
        self._clients: dict[tuple[Any, str], Any] = {}
        self._answered: set[Any] = set()  # clients that got an answer: their responses reach this node
        from diagnostic_msgs.msg import DiagnosticArray

        self.diagnostics = self.inbox(DiagnosticArray, "/diagnostics")

    def close(self) -> None:
        self._spinning.close()

    def inbox(self, msg_type: Any, topic: str, qos: Any = 10) -> Inbox:
        inbox = Inbox()
        self.node.create_subscription(msg_type, topic, inbox, qos)
        return inbox

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 60.0) -> Any:
        # Clients are kept for the node's lifetime: destroying an entity while the executor thread waits on
        # it can wedge that executor, after which nothing reaches this test node any more.
        client = self._clients.get((srv_type, name))
        if client is None:
            client = self._clients[(srv_type, name)] = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
        deadline = time.monotonic() + timeout
        while True:
            future = client.call_async(request)
            resend_at = time.monotonic() + RESEND_S
            while not future.done() and time.monotonic() < min(resend_at, deadline):
                time.sleep(0.02)
            if future.done():
                self._answered.add(client)
                return future.result()
            assert time.monotonic() < deadline, f"no answer from {name}"
            # wait_for_service only sees the server's request reader: until the server has discovered this
            # client's response reader, Fast DDS drops the answer ("failed to send response (timeout)") and
            # the future never completes. That race exists before a client's first answer only; later ones
            # are not sent twice.
            assert client not in self._answered, f"no answer from {name}"
            client.remove_pending_request(future)

    def stamp(self, msg: Any) -> Any:
        """Give ``msg`` a fresh stamp and a unique frame id, so its answer can be told apart."""
        self._frame += 1
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = f"test_camera_{self._frame}"
        return msg


def diagnostics_status(
    ros: RosSide, node_name: str, after: float, until: Callable[[Any], bool] = lambda status: True
) -> Any:
    """The first /diagnostics status of the node ``node_name`` received after ``after`` (time.time()) that
    satisfies ``until``; diagnostics come at 1 Hz, so counters may need a report or two to catch up."""
    name = f"{node_name}: lane detection"
    deadline = time.monotonic() + 30.0
    seen = None
    while time.monotonic() < deadline:
        for _, msg in ros.diagnostics.since(after):
            for status in msg.status:
                if status.name == name:
                    seen = status
                    if until(status):
                        return status
        time.sleep(0.2)
    raise AssertionError(f"no matching diagnostics from {name}; last: {seen}")


def status_values(status: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def diagnostics_values(
    ros: RosSide, node_name: str, after: float, until: Callable[[dict[str, str]], bool] = lambda values: True
) -> dict[str, str]:
    """Key/values of the first status (see :func:`diagnostics_status`) whose values satisfy ``until``."""
    return status_values(
        diagnostics_status(ros, node_name, after, lambda status: until(status_values(status)))
    )
