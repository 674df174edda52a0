#!/usr/bin/env bash
# `make demo`: a synthetic drive replayed live into the ROS 2 lane_detector node; report in demo_output/.
#
#   1. a synthetic CULane-layout drive of DEMO_FRAMES consecutive frames (made once, reused),
#   2. a rosbag2 bag of it (jpeg images, camera_info, GT lanes; made once, reused),
#   3. `python -m clrkdnet_ros.bag replay`: starts the node, plays the bag at 30 Hz over DDS, records the
#      node's lanes and writes report.json, frames.csv, plots and an overlay video to demo_output/.
#
# The model is the shipped demo student, models/clrkdnet_resnet18_synthetic.pth with its preset YAML (made by
# training/reproduce_synthetic.py); DEMO_WEIGHTS and DEMO_PRESET pick another one. DEMO_DEVICE and DEMO_FRAMES
# as named; DEMO_WORK (build/demo) and DEMO_OUT (demo_output) move its folders. First it prints which CPU backend
# is fastest here (python -m clrkdnet_core.backends; DEMO_COMPARE_BACKENDS=0 skips that).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=.venv/bin/python
preset="${DEMO_PRESET:-$PWD/models/clrkdnet_resnet18_synthetic.yaml}"
weights="${DEMO_WEIGHTS:-$PWD/models/clrkdnet_resnet18_synthetic.pth}"
device="${DEMO_DEVICE:-auto}"
frames="${DEMO_FRAMES:-300}"
work="${DEMO_WORK:-build/demo}"
data="$work/drive_$frames"
bag="$work/drive_${frames}_bag"
out="${DEMO_OUT:-demo_output}"

if [[ ! -f "$data/.complete" ]]; then
  rm -rf "$data" "$bag"
  "$python" -m clrkdnet_core.data.synthetic --out "$data" --format culane --n "$frames" --seed 7 \
    --sequence --split 0 0 1
  touch "$data/.complete"
fi

if [[ ! -f "$bag/metadata.yaml" ]]; then
  rm -rf "$bag"
  "$python" -m clrkdnet_ros.bag make --from synthetic "$data" --out "$bag" --compressed --rate 30
fi

if [[ "${DEMO_COMPARE_BACKENDS:-1}" == 1 ]]; then
  # Which CPU backend is fastest on this machine (image -> lanes); the node below runs the default torch fp32.
  "$python" -m clrkdnet_core.backends --preset "$preset" --weights "$weights" --iterations 10
fi

rm -rf "$out"
"$python" -m clrkdnet_ros.bag replay "$bag" --preset "$preset" --weights "$weights" --device "$device" --out "$out"
