"""Aligned faces from prepared crops: :func:`load_face` for one manifest row, :class:`FaceDataset`
for training and evaluation (docs/INTERFACES.md, "Data library")."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fstmatch.data.align import alignment_matrix, crop_to_frame, frame_to_crop, get_convention
from fstmatch.data.augment import FaceAugment
from fstmatch.data.geometry import Geometry
from fstmatch.data.manifest import Row
from fstmatch.errors import UserError


def read_rgb(path: str | Path) -> np.ndarray:
    """A PNG/JPEG as uint8 RGB ``(H, W, 3)``; a missing or unreadable file raises :class:`UserError`."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"cannot read image {path} (is the manifest's folder the right root?)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def png_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from a PNG header, without decoding the image."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        raise UserError(f"{path} is not a PNG file")
    return struct.unpack(">II", head[16:24])


def crop_landmarks(row: Row, root: str | Path, crop_size: int, landmarks_from: Row | None = None) -> np.ndarray:
    """Landmarks ``(68, 2)`` in the crop pixels of ``row`` (crop side ``crop_size`` px).

    With ``landmarks_from`` (another row of the same frame, e.g. its raw version), that row's
    landmarks are mapped to frame pixels through its box, then into this crop through this box.
    """
    if landmarks_from is None:
        return np.asarray(row["landmarks"], dtype=np.float64)
    if (landmarks_from["video"], int(landmarks_from["frame"])) != (row["video"], int(row["frame"])):
        raise UserError(f"landmarks_from row {landmarks_from['id']} is not the same frame as {row['id']}")
    other_size = png_size(Path(root) / landmarks_from["path"])[0]
    frame_pts = crop_to_frame(np.asarray(landmarks_from["landmarks"]), landmarks_from["box"], other_size)
    return frame_to_crop(frame_pts, row["box"], crop_size)


def _as3x3(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def _warp(image: np.ndarray, h: np.ndarray, canvas: int, interpolation: int) -> np.ndarray:
    kw: dict[str, Any] = dict(flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if np.allclose(h[2], [0.0, 0.0, 1.0]):
        return cv2.warpAffine(image, h[:2], (canvas, canvas), **kw)
    return cv2.warpPerspective(image, h, (canvas, canvas), **kw)


def read_masks(row: Row, root: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """Ground-truth masks of a crop as float32 ``(H, W, 2)`` (donor, trace) in [0, 1].

    Real rows without a mask file get zeros (a real frame has no donor or trace pixels); a fake
    without one raises :class:`UserError` (masks exist only for FST-Synth).
    """
    if row.get("mask_path") is None:
        if row["label"] == 0:
            return np.zeros((*shape, 2), np.float32)
        raise UserError(f"row {row['id']} has no ground-truth masks (with_masks needs FST-Synth data)")
    rgb = read_rgb(Path(root) / row["mask_path"])
    return rgb[..., :2].astype(np.float32) / 255.0


def aligned_face(
    row: Row,
    root: str | Path,
    *,
    geometry: Geometry | None = None,
    landmarks_from: Row | None = None,
    with_masks: bool = False,
    augment: FaceAugment | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`load_face` with optional augmentation (``augment`` and its ``rng`` for this item)."""
    root = Path(root)
    geometry = geometry or Geometry()
    conv = get_convention(geometry.convention)
    canvas, face_width, scale = geometry.side, geometry.face_width, geometry.scale
    crop = read_rgb(root / row["path"])
    landmarks = crop_landmarks(row, root, crop.shape[1], landmarks_from)
    if augment is not None:
        if rng is None:
            raise ValueError("augmentation needs an rng")
        scale = conv.jitter_scale(scale, augment.alignment_scale(rng), augment.cfg.scale_mean)
    h = _as3x3(alignment_matrix(landmarks, canvas, face_width, scale, conv))
    if augment is not None:
        h = augment.jitter(canvas, rng) @ h
    h_image, source = h, crop
    if augment is not None and augment.half_size(rng):
        small_w, small_h = max(1, crop.shape[1] // 2), max(1, crop.shape[0] // 2)
        source = cv2.resize(crop, (small_w, small_h), interpolation=cv2.INTER_AREA)
        sx, sy = crop.shape[1] / small_w, crop.shape[0] / small_h
        # small pixel -> full-crop pixel (pixel-centre convention), then the alignment
        h_image = h @ np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
    image = _warp(source, h_image, canvas, cv2.INTER_LINEAR)
    masks = None
    if with_masks:
        full = read_masks(row, root, crop.shape[:2])
        masks = np.ascontiguousarray(_warp(full, h, canvas, cv2.INTER_LINEAR).transpose(2, 0, 1))
    if augment is not None:
        image = augment.photometric(image, rng)
    return image, masks


def load_face(
    row: Row,
    root: str | Path,
    *,
    geometry: Geometry | None = None,
    landmarks_from: Row | None = None,
    with_masks: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The aligned face of one manifest row (docs/method.md §2), no augmentation.

    Args:
        row: a manifest row; ``root``: the manifest's folder (paths in rows are relative to it).
        geometry: the alignment (:class:`fstmatch.data.geometry.Geometry`: convention, canvas,
            face width, scale; ``None``: ``Geometry()``, the ``fstmatch`` convention's defaults).
        landmarks_from: align with the landmarks of another row of the same frame (hypothesis 3:
            the raw version's landmarks for its c23/c40 versions), mapped through both boxes.
        with_masks: also return the ground-truth masks warped by the same (bilinear) transform.

    Returns:
        ``(image, masks)``: uint8 ``(canvas, canvas, 3)`` RGB, and float32 ``(2, canvas, canvas)``
        (donor, trace) in [0, 1] or ``None`` when not asked.
    """
    return aligned_face(
        row, root, geometry=geometry, landmarks_from=landmarks_from, with_masks=with_masks,
    )


class FaceDataset(Dataset):
    """Aligned faces of manifest rows, with labels; optional augmentation and masks.

    Item ``i``: ``image`` float32 (3, canvas, canvas) in [0, 1]; ``label``, ``source``, ``target``
    int64 scalar tensors; ``id`` (str); ``index`` (= i); ``masks`` float32 (2, canvas, canvas)
    when ``with_masks``. ``augment`` comes from :func:`fstmatch.data.build_augment`. ``geometry``
    as in :func:`load_face`.

    ``cache_mb`` > 0 keeps the aligned faces (uint8) of the first items read, up to that many MiB
    per process, when there is no augmentation and no masks: such a face is the same every epoch,
    and decoding and aligning it costs more CPU than a small network's training step on it.
    """

    def __init__(
        self,
        rows: Sequence[Row],
        root: str | Path,
        *,
        geometry: Geometry | None = None,
        augment: FaceAugment | None = None,
        with_masks: bool = False,
        cache_mb: float = 0,
    ) -> None:
        if not rows:
            raise UserError("FaceDataset got no rows")
        self.geometry = geometry or Geometry()  # bad geometry fails here, not in a worker
        self.rows = list(rows)
        self.root = Path(root)
        self.canvas = self.geometry.side
        self.augment = augment
        self.with_masks = with_masks
        cacheable = augment is None and not with_masks and cache_mb > 0
        self._cache: dict[int, np.ndarray] = {}
        self._cache_left = int(cache_mb * 2**20) if cacheable else 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        rng = self.augment.rng(index) if self.augment is not None else None
        image = self._cache.get(index)
        masks = None
        if image is None:
            image, masks = aligned_face(
                row, self.root, geometry=self.geometry, with_masks=self.with_masks, augment=self.augment, rng=rng,
            )
            if image.nbytes <= self._cache_left:
                self._cache[index] = image
                self._cache_left -= image.nbytes
        item: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0),
            "label": torch.tensor(int(row["label"]), dtype=torch.int64),
            "source": torch.tensor(int(row["source"]), dtype=torch.int64),
            "target": torch.tensor(int(row["target"]), dtype=torch.int64),
            "id": row["id"],
            "index": index,
        }
        if masks is not None:
            item["masks"] = torch.from_numpy(masks)
        return item
