#!/usr/bin/env bash
# `make demo`: a synthetic drive through the lane detector, results in demo_output/.
#
# For now the detector runs offline (python -m clrkdnet_core.predict) with a randomly initialised
# student, so the overlays show the pipeline working, not a trained model; the ROS 2 live replay
# replaces this step later (issue 6). Set DEMO_WEIGHTS to a trained checkpoint to see real lanes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=.venv/bin/python
preset="${DEMO_PRESET:-clrkdnet_resnet18_culane}"
work=build/demo
data="$work/synthetic"
weights="${DEMO_WEIGHTS:-$work/${preset}_random_init.pth}"
out=demo_output

# Generated once and reused: the same seed gives the same drive.
if [[ ! -f "$data/.complete" ]]; then
  rm -rf "$data"
  "$python" -m clrkdnet_core.data.synthetic --out "$data" --format culane --n 24 --seed 0 --sequence
  touch "$data/.complete"
fi

if [[ ! -f "$weights" ]]; then
  mkdir -p "$(dirname "$weights")"
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
"$python" -m clrkdnet_core.predict --preset "$preset" --weights "$weights" "$data" --out "$out"
echo "demo: overlays and lanes JSON in $out/"
