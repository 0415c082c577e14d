"""``benchmarks/truth_under_compression.py`` on hand-made map files: a detector whose c40 maps leave
the trace cells, against exact lifts and top shares."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fstmatch.explain.mapfile import MapSet, write_maps

from ._benchmarks import load_benchmark

def _bench():
    return load_benchmark("truth_under_compression")


def _write(folder: Path, comp: str, values: np.ndarray, masks: np.ndarray | None) -> None:
    info = [{"id": f"Deepfakes/{comp}/000_001/{k}", "method": "Deepfakes", "compression": comp,
             "video": "000_001", "frame": k} for k in range(len(values))]
    write_maps(folder / f"det__{comp}.npz", MapSet(ids=[i["id"] for i in info], values=values,
                                                     target=np.ones(len(values), np.int64), masks=masks, info=info))


def test_lift_and_top_share_follow_the_raw_frames_trace(tmp_path: Path) -> None:
    maps = tmp_path / "demo" / "verify" / "maps"
    maps.mkdir(parents=True)
    masks = np.zeros((2, 2, 8, 8), np.uint8)
    masks[:, 1, :4, :4] = 255  # trace = the top-left cell of a 2x2 grid: a quarter of the face
    on_trace = np.array([[[1.0, 0.0], [0.0, 0.0]]] * 2)
    off_trace = np.array([[[0.0, 1.0], [0.0, 0.0]]] * 2)
    _write(maps, "raw", on_trace, masks)
    _write(maps, "c40", np.stack([on_trace[0], off_trace[0]]), None)  # half the c40 maps left the trace
    out = tmp_path / "t.json"
    assert _bench().main([str(tmp_path / "demo"), "--out", str(out)]) == 0
    per_seed = json.loads(out.read_text())["per_seed"]["demo"]["det"]
    assert per_seed["raw"]["lift"] == pytest.approx(4.0)  # all mass on a quarter of the area
    assert per_seed["c40"]["lift"] == pytest.approx(2.0)
    assert per_seed["raw"]["top_share"] == 1.0 and per_seed["c40"]["top_share"] == 0.5
    assert "c23" not in per_seed


def test_a_folder_without_maps_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no verify/maps"):
        _bench().main([str(tmp_path)])
