"""The one map file format (fstmatch.explain.mapfile): every field round-trips with its dtype, grid
and concept maps, optional pixel maps, subsets and concatenation, and bad input is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fstmatch.errors import UserError
from fstmatch.explain.mapfile import (
    FORMAT_VERSION,
    MapSet,
    OldMapFormat,
    concat,
    image_digest,
    map_version,
    read_maps,
    write_maps,
)


def _maps(n: int = 3, shape: tuple[int, ...] = (4, 4), **kw) -> MapSet:
    rng = np.random.default_rng(n)
    base = dict(
        ids=[f"m/raw/v{i}/0000" for i in range(n)], values=rng.normal(size=(n, *shape)),
        stderr=rng.uniform(size=(n, *shape)), target=np.arange(n) % 2, v_full=rng.normal(size=n),
        v_empty=rng.normal(size=n), n_forward=np.full(n, 62), digest=[f"{i:016x}" for i in range(n)],
        image=rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), masks=rng.integers(0, 256, (n, 2, 8, 8)),
        info=[{"id": f"m/raw/v{i}/0000", "method": "m", "compression": "raw", "video": f"v{i}", "frame": 0}
              for i in range(n)],
        metrics={"logit": rng.normal(size=n), "qt": rng.normal(size=(n, 8))}, estimator="spline", budget=4,
        geometry={"convention": "deepfakebench", "canvas": 8, "face_width": None, "scale": 1.3},
        meta={"model": "det", "grid": 4},
    )
    return MapSet(**{**base, **kw})


def test_every_field_round_trips(tmp_path: Path) -> None:
    m = _maps()
    write_maps(tmp_path / "a.npz", m)
    r = read_maps(tmp_path / "a.npz")
    assert r.ids == m.ids and r.digest == m.digest and r.info == m.info
    for name in ("values", "stderr", "target", "v_full", "v_empty", "n_forward", "image", "masks"):
        a, b = getattr(r, name), getattr(m, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert r.values.dtype == np.float64 and r.image.dtype == np.uint8 and r.target.dtype == np.int64
    assert set(r.metrics) == {"logit", "qt"} and np.array_equal(r.metrics["qt"], m.metrics["qt"])
    assert (r.explainer, r.estimator, r.budget, r.geometry, r.meta) == ("shapley", "spline", 4, m.geometry, m.meta)
    assert r.grid == 4 and r.pixels is None and len(r) == 3
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:  # plain arrays, no pickles; format and version
        assert str(z["format"]) == "fstmatch-maps" and int(z["version"]) == FORMAT_VERSION == 2
        assert json.loads(str(z["meta"]))["explainer"] == "shapley"


def test_concept_maps_pixel_maps_and_no_stderr(tmp_path: Path) -> None:
    """Another explainer: 7 concepts, pixel maps (N, H, W) float32, no stderr, no v(full)."""
    pixels = np.random.default_rng(0).normal(size=(2, 8, 8))
    m = MapSet(ids=["a", "b"], values=np.ones((2, 7), np.float32), target=[1, 0], pixels=pixels, explainer="gradcam")
    write_maps(tmp_path / "g.npz", m)
    r = read_maps(tmp_path / "g.npz")
    assert r.explainer == "gradcam" and r.estimator is None and r.stderr is None and r.grid is None
    assert r.values.dtype == np.float32 and r.values.shape == (2, 7)
    assert r.pixels is not None and r.pixels.dtype == np.float32 and np.allclose(r.pixels, pixels)
    assert np.isnan(r.v_full).all() and r.n_forward.tolist() == [0, 0] and r.digest == ["", ""]


def test_subset_and_concat() -> None:
    m = _maps(4)
    part = m.subset([2, 0])
    assert part.ids == [m.ids[2], m.ids[0]] and np.array_equal(part.values, m.values[[2, 0]])
    assert np.array_equal(part.metrics["qt"], m.metrics["qt"][[2, 0]])
    other = _maps(1, metrics={}, stderr=None)
    both = concat([part, other])
    assert len(both) == 3 and both.stderr is None and both.image.shape == (3, 8, 8, 3)
    assert np.isnan(both.metrics["logit"][2]) and both.metrics["qt"].shape == (3, 8)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="other lengths: target 2"):
        MapSet(ids=["a", "b", "c"], values=np.zeros((3, 4, 4)), target=[0, 1])
    with pytest.raises(ValueError, match="image must be uint8"):
        MapSet(ids=["a"], values=np.zeros((1, 4, 4)), target=[0], image=np.zeros((1, 8, 8, 3)))


def test_unreadable_and_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot read map file"):
        read_maps(tmp_path / "bad.npz")
    np.savez(tmp_path / "old.npz", values=np.zeros((4, 4)), id=np.str_("x"))
    with pytest.raises(OldMapFormat, match="map format 1"):
        read_maps(tmp_path / "old.npz")
    assert map_version(tmp_path / "old.npz") == 1 and map_version(tmp_path / "bad.npz") is None
    assert map_version(tmp_path / "absent.npz") is None
    np.savez(tmp_path / "future.npz", format=np.array("fstmatch-maps"), version=np.int64(3))
    with pytest.raises(OldMapFormat, match="is of map format 3"):
        read_maps(tmp_path / "future.npz")


def test_image_digest_of_a_tensor_and_its_array_agree() -> None:
    import torch

    x = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert image_digest(x) == image_digest(x.numpy()) and len(image_digest(x)) == 16
    assert image_digest(x) != image_digest(x[:, :4])
