#!/usr/bin/env bash
# Builds the tf2 Python stack (tf2_msgs, tf2, tf2_py, tf2_ros, tf2_geometry_msgs) from ../shared/ros2_tf into
# the install prefix, so that the node can take its camera's pose from tf2 on a machine without a ROS install.
# It is a development and test tool: without the folder this prints why it skips and succeeds; the node then
# needs camera_pose or camera_height for the ground projection, and the tf2 tests skip with that reason.
#
#   scripts/install_tf2.sh [VENV] [ROS2_TF_DIR] [BUILD_DIR] [INSTALL_PREFIX]
#
# ROS2_TF_DIR defaults to the shared/ folder beside the repository (see ../shared/ros2_tf/README.md).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(realpath -m "${1:-$repo/.venv}")"
tf_dir="$(realpath -m "${2:-$repo/../shared/ros2_tf}")"
build_dir="$(realpath -m "${3:-$repo/build/tf2}")"
prefix="$(realpath -m "${4:-$repo/install}")"
python="$venv/bin/python"

if [[ ! -x "$tf_dir/build_tf2.sh" ]]; then
  # A sourced ROS 2 install provides tf2_ros itself.
  if "$python" -c "import tf2_ros" 2>/dev/null; then
    echo "no $tf_dir/build_tf2.sh: using the tf2_ros this machine already has"
  else
    echo "skipping tf2: no $tf_dir/build_tf2.sh (set camera_pose or camera_height; the tf2 tests will skip)"
  fi
  exit 0
fi

"$tf_dir/build_tf2.sh" "$venv" "$prefix" "$tf_dir/src" "$build_dir"
