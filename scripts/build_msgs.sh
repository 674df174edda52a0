#!/usr/bin/env bash
# Builds an interface package (by default clrkdnet_msgs in msg/) against the ROS 2 PyPI wheels in the
# venv and installs it into an ament prefix inside the repo. No ROS install or sourced setup file is needed.
#
#   scripts/build_msgs.sh [VENV] [BUILD_DIR] [INSTALL_PREFIX] [PACKAGE_DIR]
#
# On a real ROS 2 install use colcon instead (see README.md); msg/CMakeLists.txt is a plain
# ament_cmake file and is built unchanged in both cases. scripts/install_ros2_cli.sh builds
# composition_interfaces with it too.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(realpath -m "${1:-$repo/.venv}")"
build_dir="$(realpath -m "${2:-$repo/build/msgs}")"
prefix="$(realpath -m "${3:-$repo/install}")"
source_dir="$(realpath -m "${4:-$repo/msg}")"

generator=()
if command -v ninja >/dev/null; then
  generator=(-G Ninja)
fi

# The wheels install their CMake configs and ament index into the venv prefix; the typesupport
# discovery in rosidl's CMake code reads the ament index through AMENT_PREFIX_PATH.
export AMENT_PREFIX_PATH="$venv"

# The RPATHs let the generated libraries and Python extensions find each other wherever the
# prefix is loaded from; the venv's own ROS libraries come from the link path.
cmake -S "$source_dir" -B "$build_dir" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$venv" \
  -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DPython3_EXECUTABLE="$venv/bin/python" \
  -DPython3_FIND_VIRTUALENV=ONLY \
  -DBUILD_TESTING=OFF \
  -DCMAKE_INSTALL_RPATH='$ORIGIN;$ORIGIN/../../..' \
  -DCMAKE_INSTALL_RPATH_USE_LINK_PATH=ON \
  -DCMAKE_PROJECT_INCLUDE="$repo/scripts/cmake/drop_missing_imported_includes.cmake"
cmake --build "$build_dir" --parallel "$(nproc)"
cmake --install "$build_dir"
