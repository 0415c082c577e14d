"""Pool workers end with their parent (``fstmatch.utils.procs.die_with_parent``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PARENT = textwrap.dedent("""
    import concurrent.futures as cf, multiprocessing as mp, os, sys, time
    from fstmatch.utils.procs import die_with_parent

    def work(path):
        with open(path + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(path + ".tmp", path)
        time.sleep(120)

    if __name__ == "__main__":
        init = die_with_parent if sys.argv[2] == "on" else None
        with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=init) as pool:
            pool.submit(work, sys.argv[1])
            time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has ended (nobody may reap it in a container)


def _worker_after_parent_killed(tmp_path: Path, mode: str) -> int:
    script, pidfile = tmp_path / "parent.py", tmp_path / f"worker-{mode}.pid"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(pidfile), mode])
    deadline = time.monotonic() + 60
    while not pidfile.exists():
        assert time.monotonic() < deadline and parent.poll() is None, "the pool's worker never started"
        time.sleep(0.1)
    worker = int(pidfile.read_text())
    parent.send_signal(signal.SIGTERM)
    parent.wait(timeout=10)
    return worker


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_pool_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    worker = _worker_after_parent_killed(tmp_path, "on")
    deadline = time.monotonic() + 10
    while _alive(worker):
        assert time.monotonic() < deadline, "the worker outlived its parent"
        time.sleep(0.1)
    # without it, the worker goes on (what a `kill` of a study used to leave behind)
    orphan = _worker_after_parent_killed(tmp_path, "off")
    try:
        time.sleep(1)
        assert _alive(orphan)
    finally:
        os.kill(orphan, signal.SIGKILL)
