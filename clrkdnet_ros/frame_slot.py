"""Latest-frame hand-off between the subscription callback and the inference thread.

A camera at 30 Hz and a network at 5 Hz must not build a queue: every output would be older than the last. The
callback only drops the newest message into a one-slot buffer (overwriting an unprocessed one counts as a
dropped frame) and a worker thread takes whatever is newest when it becomes free.
"""

import threading
from collections.abc import Callable
from typing import Any


class LatestFrameSlot:
    """A thread-safe buffer that holds at most one item: the newest."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: Any = None
        self._closed = False
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Store ``item`` over any item nobody took; returns True when one was replaced (a dropped frame)."""
        with self._condition:
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
            self._item = item
            self._condition.notify()
            return replaced

    def take(self, timeout: float | None = None) -> Any:
        """Wait for an item and remove it; returns None on timeout or once the slot is closed."""
        with self._condition:
            self._condition.wait_for(lambda: self._item is not None or self._closed, timeout)
            if self._closed:
                return None
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake up and release every waiting :meth:`take`; later takes return None at once."""
        with self._condition:
            self._closed = True
            self._item = None
            self._condition.notify_all()


class FrameWorker:
    """A thread that feeds the newest item of a :class:`LatestFrameSlot` to ``process``, one at a time.

    ``process`` runs off the executor thread, so a slow inference never delays subscription callbacks, timers
    or services. Exceptions raised by ``process`` are passed to ``on_error`` and the worker carries on with
    the next frame.
    """

    def __init__(
        self,
        slot: LatestFrameSlot,
        process: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        name: str = "lane_inference",
    ) -> None:
        self._slot = slot
        self._process = process
        self._on_error = on_error
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Close the slot and wait for the frame in progress (if any) to finish."""
        self._slot.close()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._slot.take()
            if item is None:
                return
            try:
                self._process(item)
            except Exception as exc:  # a bad frame must never end the worker
                self._on_error(exc)
