#!/usr/bin/env bash
# `make demo`: a synthetic drive replayed live into the ROS 2 lane_detector node; report in demo_output/.
#
#   1. a synthetic CULane-layout drive of DEMO_FRAMES consecutive frames (made once, reused),
#   2. a rosbag2 bag of it (jpeg images, camera_info, GT lanes; made once, reused),
#   3. `python -m clrkdnet_ros.bag replay`: starts the node, plays the bag at 30 Hz over DDS, records the
#      node's lanes and writes report.json, frames.csv, plots and an overlay video to demo_output/.
#
# DEMO_WEIGHTS picks the model (default: a randomly initialised student, which shows the pipeline working,
# not lanes: no trained model is shipped in the repository). DEMO_PRESET, DEMO_DEVICE, DEMO_FRAMES as named.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=.venv/bin/python
preset="${DEMO_PRESET:-clrkdnet_resnet18_culane}"
device="${DEMO_DEVICE:-auto}"
frames="${DEMO_FRAMES:-300}"
work=build/demo
data="$work/drive_$frames"
bag="$work/drive_${frames}_bag"
out=demo_output

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

weights="${DEMO_WEIGHTS:-$work/${preset}_random_init.pth}"
if [[ -z "${DEMO_WEIGHTS:-}" && ! -f "$weights" ]]; then
  echo "demo: no DEMO_WEIGHTS given; using a randomly initialised $preset (expect no lanes)"
  "$python" - "$preset" "$weights" <<'PY'
import sys

import torch

from clrkdnet_core import build_model
from clrkdnet_core.checkpoint import save_checkpoint

preset, path = sys.argv[1:]
torch.manual_seed(0)
save_checkpoint(path, build_model(preset), preset=preset)
PY
fi

rm -rf "$out"
"$python" -m clrkdnet_ros.bag replay "$bag" --preset "$preset" --weights "$weights" --device "$device" --out "$out"
