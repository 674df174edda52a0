"""Multi-process training: ``torchrun --nproc_per_node 2 training/train.py`` on the CPU (gloo) trains, only
rank 0 writes checkpoints and logs, and a resumed run continues where the first one stopped."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clrkdnet_core.checkpoint import read_checkpoint
from clrkdnet_core.data.synthetic import generate_dataset

REPO = Path(__file__).resolve().parents[1]


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(REPO / "training" / "train.py"), *args]
    # one thread per rank: the two ranks share the machine's cores
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # a session of its own, so a hung run is ended with its ranks (killing torchrun alone orphans them)
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.slow
def test_two_cpu_ranks_train_and_a_resumed_run_continues(tmp_path):
    data = generate_dataset(tmp_path / "data", "culane", 6, seed=3, progress=False)  # 4 train images
    work = tmp_path / "work"
    common = [
        "--preset", str(REPO / "models" / "clrkdnet_resnet18_synthetic.yaml"), "--data-root", str(data),
        "--work-dir", str(work), "--batch-size", "1", "--epochs", "2", "--no-validate", "--workers", "0",
        "--device", "cpu", "--log-every", "1", "--pretrained-backbone", "none",
    ]  # fmt: skip
    first = _torchrun(*common, "--max-iters", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    # 4 images over 2 ranks at batch 1: an epoch is 2 iterations per rank
    assert read_checkpoint(work / "last.pth")["iteration"] == 2
    assert first.stdout.count("backbone resnet18: random initialisation") == 1  # rank 0 only
    assert sum(p.name.startswith("events.out") for p in work.iterdir()) == 1
    assert sorted(p.name for p in work.iterdir() if not p.name.startswith("events.out")) == ["last.pth"]

    resumed = _torchrun(*common, "--max-iters", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    saved = read_checkpoint(work / "last.pth")
    assert (saved["iteration"], saved["epoch"]) == (3, 1)
    assert saved["backbone_init"] == "random initialisation (--pretrained-backbone none)"
    assert "epoch 2/2" in resumed.stderr and "epoch 1/2" not in resumed.stderr
