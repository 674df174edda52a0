#!/usr/bin/env bash
# `make demo`: a synthetic drive replayed live into the ROS 2 lane_detector node; report in demo_output/.
#
#   1. a synthetic CULane-layout drive of DEMO_FRAMES consecutive frames at 30 frames per second, with a lane
#      change and a curve, and its truth (made once, reused),
#   2. a rosbag2 bag of it (jpeg images, the camera's real camera_info, /tf_static with its mounting, odom, GT
#      lanes with their true ids and the true ego lane; made once, reused),
#   3. `python -m clrkdnet_ros.bag replay`: starts the node (tracking on, the ground projection from the bag's
#      camera_info and transform), plays the bag at 30 Hz over DDS, records the node's lanes and ego lane and
#      writes report.json (with its "tracking" block: ID switches, ego lane errors against the truth),
#      frames.csv, plots (the ego offset over the drive) and an overlay video (track ids, the ego lane's
#      centre line and state) to demo_output/.
#
# The model is the shipped demo student, models/clrkdnet_resnet18_synthetic.pth with its preset YAML (made by
# training/reproduce_synthetic.py); DEMO_WEIGHTS and DEMO_PRESET pick another one. DEMO_DEVICE and DEMO_FRAMES
# as named; DEMO_WORK (build/demo) and DEMO_OUT (demo_output) move its folders. The node runs at its defaults
# (backend auto: the fastest installed backend here) and the demo prints which one it ran;
# DEMO_COMPARE_BACKENDS=1 first times every CPU backend (python -m clrkdnet_core.backends).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=.venv/bin/python
preset="${DEMO_PRESET:-$PWD/models/clrkdnet_resnet18_synthetic.yaml}"
weights="${DEMO_WEIGHTS:-$PWD/models/clrkdnet_resnet18_synthetic.pth}"
device="${DEMO_DEVICE:-auto}"
frames="${DEMO_FRAMES:-300}"
work="${DEMO_WORK:-build/demo}"
# "tracking_": drives made before the truth, the lane change and the curve existed are not reused.
data="$work/tracking_drive_$frames"
bag="$work/tracking_drive_${frames}_bag"
out="${DEMO_OUT:-demo_output}"

if [[ ! -f "$data/.complete" ]]; then
  rm -rf "$data" "$bag"
  # 30 frames per second as the bag is played: odometry and stamps agree. The lane change starts at 3 s and the
  # curve at 5 s, so a 300-frame (10 s) demo shows both.
  "$python" -m clrkdnet_core.data.synthetic --out "$data" --format culane --n "$frames" --seed 7 \
    --sequence --split 0 0 1 --fps 30 --lane-change 3 --curve 5 --curve-duration 4
  touch "$data/.complete"
fi

if [[ ! -f "$bag/metadata.yaml" ]]; then
  rm -rf "$bag"
  "$python" -m clrkdnet_ros.bag make --from synthetic "$data" --out "$bag" --compressed --rate 30
fi

if [[ "${DEMO_COMPARE_BACKENDS:-0}" == 1 ]]; then
  # Which CPU backend is fastest on this machine (image -> lanes), and what backend auto picks.
  "$python" -m clrkdnet_core.backends --preset "$preset" --weights "$weights" --iterations 10
fi

rm -rf "$out"
"$python" -m clrkdnet_ros.bag replay "$bag" --preset "$preset" --weights "$weights" --device "$device" --out "$out"
# The node's start-up line names the backend and precision it ran (auto's choice, see README to force fp32).
echo "node backend: $(grep -m1 -o 'on [a-z0-9:]* ([a-z]* backend, [a-z0-9]*)' "$out/node.log" || echo unknown)"
grep -m1 -o 'backend auto: .*' "$out/node.log" || true
