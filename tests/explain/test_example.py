"""examples/explain_your_model.py runs as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "explain_your_model.py"), "--out",
                          str(tmp_path / "parts.png")], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "grid map (2, 8, 8) pixels (2, 64, 64)" in out.stdout
    assert "facial parts (2, 8)" in out.stdout and "probability map (2, 4, 4)" in out.stdout
    assert (tmp_path / "parts.png").read_bytes()[:4] == b"\x89PNG"
