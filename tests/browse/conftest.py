"""A tiny verify output (toy manifest with ground-truth masks, untrained width-4 models, grid 4)
for the explorer's tests, and its static explorer."""

from __future__ import annotations

from pathlib import Path

import pytest

from hypotheses.conftest import toy_checkpoints, toy_manifest  # noqa: F401 - fixtures reused as they are

GRID = 4


@pytest.fixture(scope="session")
def verify_out(toy_manifest: Path, toy_checkpoints: dict[str, str], tmp_path_factory) -> Path:  # noqa: F811
    from fstmatch.config import from_dict
    from fstmatch.hypotheses.config import VerifyConfig
    from fstmatch.hypotheses.verify import verify

    cfg = from_dict(VerifyConfig, {
        "manifest": str(toy_manifest), "checkpoints": toy_checkpoints,
        "images": {"per_method": 4, "canvas": 32, "holdout": 1},
        "shapley": {"grid": GRID, "budget": 4, "batch_size": 64},
        "noise_draws": 4, "figures_per_method": 0, "device": "cpu",
    })
    out = tmp_path_factory.mktemp("verify-out")
    verify(cfg, out, progress=False)
    return out


@pytest.fixture(scope="session")
def explorer(verify_out: Path) -> Path:
    """``verify_out/explorer/index.html``, written by :func:`fstmatch.browse.write_explorer`."""
    from fstmatch.browse import write_explorer

    return write_explorer(verify_out, progress=False)
