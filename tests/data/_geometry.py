"""Test helpers for alignment (moved out of fstmatch.data.align: only the tests use them)."""

from __future__ import annotations

import numpy as np


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points ``(N, 2)`` through an affine ``(2, 3)`` matrix."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]
