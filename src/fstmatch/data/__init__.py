"""FF++ videos to face crops and a manifest (:func:`prepare`), and aligned, labelled faces from them
(:class:`FaceDataset`). See docs/data.md.

Names are imported on first use: ``prepare``'s worker processes and the CLI need neither torch nor
albumentations (seconds of import time), the dataset does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "align": ("align_face", "alignment_matrix", "fit_similarity", "five_points", "get_convention", "inter_ocular",
              "template_points"),
    "augment": ("AugmentConfig", "FaceAugment", "build_augment"),
    "dataset": ("FaceDataset", "load_face"),
    "geometry": ("Geometry",),
    "manifest": ("filter_rows", "h2_sets", "holdout_frames", "read_manifest", "row_id"),
    "preprocess": ("prepare",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [
    "AugmentConfig", "FaceAugment", "FaceDataset", "Geometry", "align_face", "alignment_matrix", "build_augment",
    "filter_rows", "fit_similarity", "five_points", "get_convention", "h2_sets", "holdout_frames", "inter_ocular",
    "load_face", "prepare", "read_manifest", "row_id", "template_points",
]
assert sorted(__all__) == sorted(_MODULE_OF)

if TYPE_CHECKING:
    from fstmatch.data.align import (
        align_face,
        alignment_matrix,
        fit_similarity,
        five_points,
        get_convention,
        inter_ocular,
        template_points,
    )
    from fstmatch.data.augment import AugmentConfig, FaceAugment, build_augment
    from fstmatch.data.dataset import FaceDataset, load_face
    from fstmatch.data.geometry import Geometry
    from fstmatch.data.manifest import filter_rows, h2_sets, holdout_frames, read_manifest, row_id
    from fstmatch.data.preprocess import prepare


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'fstmatch.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fstmatch.data.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
