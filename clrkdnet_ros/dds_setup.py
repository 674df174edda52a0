"""The node's own DDS participant, configured for full-size camera frames before ``rclpy.init``.

Fast DDS's default transports (shared memory with 512 KiB segments, then UDP with the kernel's default
~208 KiB receive buffer) lose large best-effort samples: a 1640x590 bgr8 frame from a default-configured
camera never arrived. A profile on the *receiving* participant alone (``fastdds_large_frames.xml``: UDPv4
only, 4 MiB receive buffer) fixes that without touching the camera's process. Fast DDS reads
``FASTDDS_DEFAULT_PROFILES_FILE`` when the first participant is created, so the entry point sets it in its own
environment before ``rclpy.init``.

A user's own DDS configuration always wins: any of :data:`USER_VARIABLES` set, or another RMW than Fast DDS,
leaves the environment alone. The parameter :data:`PARAMETER` (``-p dds_profile:=false``, or a params file as
the launch file passes it) turns the profile off; it is read from the command line here because the parameters
proper only exist once the participant does.
"""

import os
import xml.etree.ElementTree as ElementTree
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

PROFILE = Path(__file__).with_name("fastdds_large_frames.xml")
PARAMETER = "dds_profile"
USER_VARIABLES = (
    "FASTDDS_DEFAULT_PROFILES_FILE",
    "FASTRTPS_DEFAULT_PROFILES_FILE",
    "FASTDDS_BUILTIN_TRANSPORTS",
    "CYCLONEDDS_URI",
)
RMEM_MAX_PATH = Path("/proc/sys/net/core/rmem_max")
_FAST_DDS_RMWS = ("rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")


@dataclass(frozen=True)
class DdsSetup:
    """What :func:`configure_dds` did: the one log line, start-up warnings, and the kernel's buffer cap."""

    applied: bool
    message: str
    warnings: tuple[str, ...] = ()
    rmem_max: int | None = None


def profile_receive_buffer(profile: Path = PROFILE) -> int:
    """The UDP receive buffer (bytes) the shipped profile asks for."""
    namespace = {"dds": "http://www.eprosima.com"}
    element = ElementTree.parse(profile).find(".//dds:receiveBufferSize", namespace)
    return int(element.text)


def read_rmem_max(path: Path = RMEM_MAX_PATH) -> int | None:
    """``net.core.rmem_max`` in bytes, or None where the kernel does not expose it (not Linux)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def rmem_max_warning(rmem_max: int | None, wanted: int) -> str | None:
    """The start-up warning when the kernel caps socket receive buffers below ``wanted`` bytes."""
    if rmem_max is None or rmem_max >= wanted:
        return None
    return (
        f"net.core.rmem_max is {rmem_max} bytes, below the {wanted} bytes the DDS profile asks for: the "
        f"kernel caps the receive buffer and large best-effort frames can be lost. Raise it with "
        f"`sudo sysctl -w net.core.rmem_max={wanted}`, and keep it across reboots with the line "
        f"`net.core.rmem_max={wanted}` in /etc/sysctl.d/60-clrkdnet.conf"
    )


def configure_dds(
    environ: MutableMapping[str, str], enabled: bool, rmem_max: int | None, profile: Path = PROFILE
) -> DdsSetup:
    """Point Fast DDS at ``profile`` in ``environ`` unless disabled or the user configured DDS."""
    rmw = environ.get("RMW_IMPLEMENTATION", "") or _FAST_DDS_RMWS[0]
    if not enabled:
        return DdsSetup(False, f"DDS: the large-frame profile is off ({PARAMETER}:=false)", rmem_max=rmem_max)
    if rmw not in _FAST_DDS_RMWS:
        hint = " (for large frames set CYCLONEDDS_URI as the README shows)" if "cyclone" in rmw else ""
        return DdsSetup(
            False, f"DDS: {rmw} is in use; its configuration is left alone{hint}", rmem_max=rmem_max
        )
    user = [name for name in USER_VARIABLES if environ.get(name)]
    if user:
        return DdsSetup(
            False,
            f"DDS: {', '.join(user)} is set; the user's configuration is left alone "
            f"({user[0]}={environ[user[0]]})",
            rmem_max=rmem_max,
        )
    environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    wanted = profile_receive_buffer(profile)
    warnings = [rmem_max_warning(rmem_max, wanted)]
    if (
        environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST"
        or environ.get("ROS_LOCALHOST_ONLY") == "1"
    ):
        # rmw_fastrtps then adds its own shared-memory and default UDP transports to every participant, and
        # the shared memory (512 KiB segments) is what two processes on one host use: large frames are lost.
        warnings.append(
            "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST makes rmw_fastrtps add its shared-memory transport, "
            "which loses large best-effort frames despite the profile; use a reliable camera, compressed "
            "input, or the default discovery range"
        )
    return DdsSetup(
        True,
        f"DDS: applied the large-frame Fast DDS profile (UDPv4 only, {wanted} bytes receive buffer): "
        f"{profile}",
        tuple(w for w in warnings if w),
        rmem_max,
    )


def profile_enabled(argv: Sequence[str]) -> bool:
    """The value of ``dds_profile`` in ``argv``'s ROS arguments (``-p`` or ``--params-file``); default True.

    Params files are read for any node's section: the process holds one node. A value that is not a boolean
    counts as unset here; the parameter's declaration then reports it.
    """
    value = True
    for flag, argument in _ros_arguments(argv):
        if flag in ("-p", "--param"):
            name, sep, text = argument.partition(":=")
            if sep and name.rsplit(":", 1)[-1] == PARAMETER:
                value = _as_bool(yaml.safe_load(text), value)
        elif flag == "--params-file":
            value = _as_bool(_from_params_file(Path(argument)), value)
    return value


def _ros_arguments(argv: Sequence[str]) -> list[tuple[str, str]]:
    """(flag, argument) pairs inside ``--ros-args ... [--]`` sections."""
    pairs, inside, index = [], False, 0
    while index < len(argv):
        token = argv[index]
        if token == "--ros-args":
            inside = True
        elif token == "--":
            inside = False
        elif inside and token in ("-p", "--param", "--params-file") and index + 1 < len(argv):
            pairs.append((token, argv[index + 1]))
            index += 1
        index += 1
    return pairs


def _from_params_file(path: Path) -> object:
    try:
        content = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None  # rclpy.init reports an unreadable file with one error line
    return _find_parameter(content)


def _find_parameter(section: object) -> object:
    """``dds_profile`` under any ``ros__parameters`` of a params file (node sections may nest namespaces)."""
    if not isinstance(section, dict):
        return None
    parameters = section.get("ros__parameters")
    if isinstance(parameters, dict) and PARAMETER in parameters:
        return parameters[PARAMETER]
    found = None
    for key, value in section.items():
        if key != "ros__parameters":
            found = _find_parameter(value) if found is None else found
    return found


def _as_bool(value: object, default: bool) -> bool:
    return value if isinstance(value, bool) else default


def apply_to_this_process(argv: Sequence[str]) -> DdsSetup:
    """:func:`configure_dds` on ``os.environ`` with this command line's ``dds_profile``."""
    return configure_dds(os.environ, profile_enabled(argv), read_rmem_max())
