"""`torchrun --nproc_per_node=2 -m neurotriage train` on CPU (gloo): both ranks end with identical weights."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_two_cpu_processes_end_with_identical_weights(prepared_tiny, tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "neurotriage", "train", str(prepared_tiny), "--out", str(out),
        "--width", "4", "--roi", "32", "--epochs", "2", "--batch-size", "1", "--workers", "0", "--lr", "1e-2",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads((out / "history.json").read_text())
    ranks = history["ranks"]
    assert ranks["world_size"] == 2 and len(ranks["weights_sha256"]) == 2
    assert ranks["weights_sha256"][0] == ranks["weights_sha256"][1]
    # Each rank took its own share: 3 training cases, 1 per rank per step -> 2 steps an epoch.
    assert len(history["cases"]["train"]) == 3 and len(history["epochs"]) == 2
