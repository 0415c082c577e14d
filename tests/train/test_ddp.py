"""The DDP path on CPU: gloo, 2 ranks under torchrun, only rank 0 writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fstmatch.utils.io import read_jsonl


@pytest.mark.slow  # ~25 s: torchrun plus two fresh interpreters importing torch on 2 cores
def test_torchrun_two_ranks_gloo(tiny_manifest: Path, tmp_path: Path):
    run = tmp_path / "ddp"
    env = {**os.environ, "FSTMATCH_NO_REEXEC": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fstmatch", "train", "--data", str(tiny_manifest), "--model", "det", "--out", str(run),
           "--preset", "demo-tiny", "--no-progress", "--set", "device=cpu", "--set", "batch_size=8",
           "--set", "epochs=1", "--set", "log_every=1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:  # never leave ranks behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert out.count("wrote ") == 1  # rank 0 only
    log = read_jsonl(run / "log.jsonl")
    assert log[0]["world_size"] == 2
    assert log[0]["steps_per_epoch"] == 72 // 2 // 8  # each rank gets half of every epoch
    assert sum(1 for r in log if r.get("event") == "start") == 1  # one writer
    assert log[-1] == {"event": "done", "step": 4}
    steps = [r for r in log if "loss" in r]
    assert len(steps) == 4 and all(r["img_per_s"] > 0 for r in steps)
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 4
