"""An rclpy node in its own context whose callbacks run in a background thread while the caller waits.

The bag replay, the benchmarks and the tests each need one (a subscriber that collects answers while they
publish). Tearing it down has one safe order, kept here: stop the spin loop and join its thread, then shut the
executor down, destroy the node and shut the context down. An executor shut down from another thread while
its spin thread still waits in rclpy destroys the wait set's guard condition under that wait; and a thread
still inside rclpy when the interpreter exits aborts the process ("terminate called without an active
exception": pthread_exit cannot unwind through pybind11's frames).
"""

from __future__ import annotations

import threading
from types import TracebackType

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, SingleThreadedExecutor

# How long one spin_once may wait before the loop looks at its stop flag: the longest close() waits for an
# idle thread.
_WAKE_S = 0.05
# A callback still running after this long is left to finish on its own (the thread is a daemon).
_JOIN_TIMEOUT_S = 10.0


class SpinningNode:
    """``node`` in a private context, spun by ``executor_type`` in a daemon thread until :meth:`close`.

    with SpinningNode("lane_bag_replay") as spinning:
        spinning.node.create_subscription(LaneArray, "/lanes", on_lanes, 10)
        ...  # publish and wait; on_lanes runs in the spin thread
    """

    def __init__(self, name: str, executor_type: type[Executor] = SingleThreadedExecutor) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = executor_type(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=f"spin {name}", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=_WAKE_S)

    def close(self) -> None:
        """Stop the spin thread, then the executor, the node and the context; safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(_JOIN_TIMEOUT_S)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> SpinningNode:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
