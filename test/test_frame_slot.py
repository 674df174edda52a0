"""The latest-frame slot and the inference worker (pure Python, no ROS)."""

import time

from clrkdnet_ros.frame_slot import FrameWorker, LatestFrameSlot


def test_slot_keeps_only_the_newest_item_and_counts_drops():
    slot = LatestFrameSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True and slot.put(3) is True
    assert (slot.take(timeout=0.1), slot.dropped) == (3, 2)
    assert slot.take(timeout=0.05) is None
    slot.close()
    assert slot.take() is None  # closed: returns at once


def test_worker_survives_exceptions_and_stops_promptly():
    slot = LatestFrameSlot()
    processed, errors = [], []

    def process(item):
        if item == "bad":
            raise ValueError("broken frame")
        processed.append(item)

    worker = FrameWorker(slot, process, errors.append)
    worker.start()
    for item in ("bad", "good"):
        slot.put(item)
        deadline = time.monotonic() + 5.0
        while len(processed) + len(errors) < ("bad", "good").index(item) + 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    start = time.monotonic()
    worker.stop(timeout=5.0)
    assert time.monotonic() - start < 1.0
    assert processed == ["good"] and [str(e) for e in errors] == ["broken frame"]
