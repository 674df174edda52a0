"""The node's DDS set-up, the no-frames reasoning and the input counters, without starting DDS."""

import time
from pathlib import Path

import pytest

from clrkdnet_ros import dds_setup

ROOT = Path(__file__).resolve().parent.parent
WANTED = 4 * 1024 * 1024


def test_the_shipped_profile_asks_for_a_4_mib_udp_receive_buffer():
    # Installed with the package: test_packaging.py checks the installed copy.
    assert dds_setup.PROFILE.is_file()
    assert dds_setup.profile_receive_buffer() == WANTED


def test_the_profile_is_applied_to_a_default_environment():
    environ = {"ROS_DOMAIN_ID": "3"}
    setup = dds_setup.configure_dds(environ, enabled=True, rmem_max=WANTED)
    assert setup.applied and setup.warnings == ()
    assert environ["FASTDDS_DEFAULT_PROFILES_FILE"] == str(dds_setup.PROFILE)
    assert str(dds_setup.PROFILE) in setup.message


@pytest.mark.parametrize("variable", dds_setup.USER_VARIABLES)
def test_a_users_own_configuration_is_left_alone_and_named(variable):
    environ = {variable: "/home/me/my_dds.xml"}
    setup = dds_setup.configure_dds(environ, enabled=True, rmem_max=1)
    assert not setup.applied
    assert environ == {variable: "/home/me/my_dds.xml"}
    assert f"{variable} is set" in setup.message and "left alone" in setup.message
    assert setup.warnings == ()  # the user's profile decides the buffers, not ours


def test_another_rmw_is_left_alone_and_cyclone_gets_the_readme_hint():
    environ = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    setup = dds_setup.configure_dds(environ, enabled=True, rmem_max=None)
    assert not setup.applied and "FASTDDS_DEFAULT_PROFILES_FILE" not in environ
    assert "rmw_cyclonedds_cpp" in setup.message and "CYCLONEDDS_URI" in setup.message


def test_the_parameter_turns_it_off():
    environ: dict[str, str] = {}
    setup = dds_setup.configure_dds(environ, enabled=False, rmem_max=None)
    assert not setup.applied and environ == {}
    assert "dds_profile:=false" in setup.message


def test_a_low_rmem_max_gives_one_warning_with_the_exact_commands():
    setup = dds_setup.configure_dds({}, enabled=True, rmem_max=212992)
    (warning,) = setup.warnings
    assert "net.core.rmem_max is 212992 bytes" in warning
    assert f"sudo sysctl -w net.core.rmem_max={WANTED}" in warning
    assert f"net.core.rmem_max={WANTED}` in /etc/sysctl.d/" in warning
    assert dds_setup.rmem_max_warning(WANTED, WANTED) is None
    assert dds_setup.rmem_max_warning(None, WANTED) is None  # not Linux: nothing to say


def test_localhost_discovery_is_warned_about():
    setup = dds_setup.configure_dds({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}, True, WANTED)
    assert setup.applied and len(setup.warnings) == 1 and "shared-memory" in setup.warnings[0]


def test_rmem_max_is_read_from_proc(tmp_path):
    (tmp_path / "rmem_max").write_text("4194304\n")
    assert dds_setup.read_rmem_max(tmp_path / "rmem_max") == 4194304
    assert dds_setup.read_rmem_max(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], True),
        (["prog", "--ros-args", "-p", "weights:=a.pth"], True),
        (["prog", "--ros-args", "-p", "dds_profile:=false"], False),
        (["prog", "--ros-args", "--param", "lane_detector:dds_profile:=False"], False),
        (["prog", "--ros-args", "-p", "dds_profile:=false", "-p", "dds_profile:=true"], True),
        (["prog", "-p", "dds_profile:=false"], True),  # not a ROS argument
        (["prog", "--ros-args", "-p", "dds_profile:=maybe"], True),  # the declaration reports the type
    ],
)
def test_the_parameter_is_read_from_the_command_line(argv, expected):
    assert dds_setup.profile_enabled(argv) is expected


def test_the_parameter_is_read_from_params_files_in_order(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("/**:\n  ros__parameters:\n    dds_profile: false\n")
    launch = tmp_path / "launch.yaml"  # launch_ros nests node sections by namespace
    launch.write_text("/front:\n  lane_detector:\n    ros__parameters:\n      dds_profile: true\n")
    assert dds_setup.profile_enabled(["p", "--ros-args", "--params-file", str(config)]) is False
    args = ["p", "--ros-args", "--params-file", str(config), "--params-file", str(launch)]
    assert dds_setup.profile_enabled(args) is True
    assert dds_setup.profile_enabled(["p", "--ros-args", "--params-file", str(tmp_path / "no.yaml")]) is True


def test_the_launch_file_passes_the_argument_as_the_parameter():
    launch = (ROOT / "launch" / "lane_detect.launch.py").read_text()
    assert '"dds_profile": ParameterValue(LaunchConfiguration("dds_profile"), value_type=bool)' in launch


# ---- no silent nothing -------------------------------------------------------------------------------------


def test_stats_count_lost_frames_and_put_the_problem_in_the_status():
    from diagnostic_msgs.msg import DiagnosticStatus

    from clrkdnet_ros.diagnostics import DetectorStats

    stats = DetectorStats()
    assert stats.last_frame is None
    stats.frame_received(dropped_previous=False)
    stats.frames_lost(3)
    assert stats.recent_input() == (1, 3)
    assert stats.last_frame is not None and stats.last_frame <= time.monotonic()
    status = stats.status("n", "cpu", "active", {}, input_problem="frames missing")
    assert (status.level, status.message) == (DiagnosticStatus.WARN, "frames missing")
    values = {kv.key: kv.value for kv in status.values}
    assert values["frames lost in transport"] == "3"
    assert stats.status("n", "cpu", "active", {}).level == DiagnosticStatus.OK
