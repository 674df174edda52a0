#!/usr/bin/env bash
# Installs the ROS 2 command line (ros2 launch/run/topic/param/lifecycle/..., launch_testing) into the venv
# from the wheels in ../shared/ros2_cli, and builds the composition_interfaces package launch_ros imports.
# They are development and test tools: without the folder this prints why it skips and succeeds, and
# everything else still installs and passes (the tests that need the tools skip with that reason).
#
#   scripts/install_ros2_cli.sh [VENV] [ROS2_CLI_DIR] [BUILD_DIR] [INSTALL_PREFIX]
#
# ROS2_CLI_DIR defaults to the shared/ folder beside the repository (see ../shared/ros2_cli/README.md).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(realpath -m "${1:-$repo/.venv}")"
cli_dir="$(realpath -m "${2:-$repo/../shared/ros2_cli}")"
build_dir="$(realpath -m "${3:-$repo/build/composition_interfaces}")"
prefix="$(realpath -m "${4:-$repo/install}")"
python="$venv/bin/python"

if [[ ! -d "$cli_dir/wheels" ]]; then
  # A sourced ROS 2 install provides the same tools and interfaces.
  if "$python" -c "import ros2cli, launch_ros, composition_interfaces.srv" 2>/dev/null; then
    echo "no wheels in $cli_dir/wheels: using the ROS 2 command line this machine already has"
  else
    echo "skipping the ROS 2 command line: no wheels in $cli_dir/wheels (the ros2 CLI tests will skip)"
  fi
  exit 0
fi

"$python" -m pip install --no-deps "$cli_dir"/wheels/*.whl
# Their dependencies that are on PyPI (lark, PyYAML and packaging come with requirements.txt).
"$python" -m pip install osrf-pycommon argcomplete psutil
"$repo/scripts/build_msgs.sh" "$venv" "$build_dir" "$prefix" "$cli_dir/interfaces/composition_interfaces"
