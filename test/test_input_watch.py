"""The input watch: frames that never arrive from a matched publisher (lost) against frames that stopped
(idle); the diagnostics of each."""

import time

from diagnostic_msgs.msg import DiagnosticStatus

from clrkdnet_ros.diagnostics import DetectorStats
from clrkdnet_ros.input_watch import FLOWING, IDLE, LOST, QUIET_S, assess_input, wall_time_of


def test_no_publisher_nothing_to_say():
    assert assess_input(0, 100.0, False, 0, 0).kind == FLOWING


def test_a_matched_publisher_none_of_whose_frames_arrive_is_lost_with_the_fixes():
    state = assess_input(1, QUIET_S + 1, False, 0, 0, "DDS profile not applied")
    assert state.kind == LOST
    assert state.message.startswith("1 image publisher(s) matched but no frame arrived for 4 s")
    for fix in ("dds_profile", "net.core.rmem_max", "image_qos", "image_transport:=compressed"):
        assert fix in state.message
    assert state.message.endswith("(DDS profile not applied)")
    assert assess_input(1, QUIET_S - 1, False, 0, 0).kind == FLOWING  # not yet


def test_frames_that_stopped_after_arriving_are_idle_not_lost():
    state = assess_input(1, QUIET_S + 7, True, 0, 0, "context")
    assert state == type(state)(IDLE, "no frames for 10 s")
    assert assess_input(1, 0.5, True, 30, 0).kind == FLOWING


def test_more_lost_than_received_is_lost_even_after_frames_arrived():
    state = assess_input(1, 0.1, True, received=2, lost=8)
    assert state.kind == LOST and state.message.startswith("DDS lost 8 of the last 10 frames")
    assert assess_input(1, QUIET_S + 1, True, received=0, lost=3).kind == LOST
    assert assess_input(1, 0.1, True, received=20, lost=1).kind == FLOWING


def test_wall_time_of_a_monotonic_instant():
    text = wall_time_of(time.monotonic() - 2.0)
    assert text.endswith(" UTC") and text[:4].isdigit() and len(text) == len("2026-12-07 04:51:02.123 UTC")


def test_idle_input_is_ok_in_the_diagnostics_and_lost_input_warns():
    stats = DetectorStats()
    idle = stats.status("n", "cpu", "active", {}, input_idle="no frames since 12:00:00.000 UTC")
    assert (idle.level, idle.message) == (DiagnosticStatus.OK, "idle: no frames since 12:00:00.000 UTC")
    lost = stats.status("n", "cpu", "active", {}, input_problem="frames missing")
    assert (lost.level, lost.message) == (DiagnosticStatus.WARN, "frames missing")
