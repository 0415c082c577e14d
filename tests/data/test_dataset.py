"""Aligned faces from the micro prepared set: items, eye positions, landmark transfer, masks, augmentation."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from fstmatch import ffpp
from fstmatch.data import (
    AugmentConfig,
    FaceDataset,
    Geometry,
    align_face,
    alignment_matrix,
    build_augment,
    filter_rows,
    load_face,
    read_manifest,
    template_points,
)
from fstmatch.data.align import eye_centres, frame_to_crop
from fstmatch.data.dataset import crop_landmarks, png_size, read_rgb
from fstmatch.errors import UserError

from ._geometry import apply_affine

NO_PHOTOMETRIC = {k: 0.0 for k in ("half_size", "tone_blend", "hsv", "gamma", "minmax", "motion_blur",
                                   "gaussian_blur", "down_up", "gaussian_noise", "lowfreq_noise", "jpeg")}


@pytest.fixture(scope="module")
def rows(micro_prepared):
    return read_manifest(micro_prepared)


def _gt_in_crop(row, synth_root, prep_root) -> np.ndarray:
    with np.load(ffpp.gt_path(synth_root, row["method"], row["compression"], row["video"])) as gt:
        frame_lm = gt["landmarks"][row["frame"]]
    return frame_to_crop(frame_lm, row["box"], png_size(prep_root / row["path"])[0])


def test_items_have_the_contracted_types(rows, micro_prepared):
    ds = FaceDataset(rows, micro_prepared, with_masks=True)
    assert len(ds) == len(rows)
    item = ds[7]
    assert item["image"].shape == (3, 224, 224) and item["image"].dtype == torch.float32
    assert item["image"].min() >= 0.0 and item["image"].max() <= 1.0 and item["image"].std() > 0.05
    for key in ("label", "source", "target"):
        assert item[key].dtype == torch.int64 and int(item[key]) == rows[7][key]
    assert item["id"] == rows[7]["id"] and item["index"] == 7
    assert item["masks"].shape == (2, 224, 224) and item["masks"].dtype == torch.float32
    batch = next(iter(torch.utils.data.DataLoader(FaceDataset(rows[:6], micro_prepared, geometry=Geometry(canvas=96)), batch_size=3)))
    assert batch["image"].shape == (3, 3, 96, 96) and batch["label"].shape == (3,) and len(batch["id"]) == 3


def test_cached_faces_are_the_decoded_ones_within_the_budget(rows, micro_prepared, monkeypatch):
    from fstmatch.data import dataset as dataset_module

    geometry = Geometry(canvas=32)  # 3 KiB a face
    plain = FaceDataset(rows[:6], micro_prepared, geometry=geometry)
    cached = FaceDataset(rows[:6], micro_prepared, geometry=geometry, cache_mb=4 * 32 * 32 * 3 / 2**20)
    first = [cached[i]["image"] for i in range(6)]
    reads = {"n": 0}
    decode = dataset_module.aligned_face

    def counting(*args, **kwargs):
        reads["n"] += 1
        return decode(*args, **kwargs)

    monkeypatch.setattr(dataset_module, "aligned_face", counting)
    again = [cached[i]["image"] for i in range(6)]
    assert reads["n"] == 2  # four faces fit the budget; the last two are decoded again
    for i in range(6):
        assert torch.equal(first[i], plain[i]["image"]) and torch.equal(again[i], first[i])
    augmented = FaceDataset(rows[:2], micro_prepared, geometry=geometry, cache_mb=64,
                            augment=build_augment(AugmentConfig(enabled=True), seed=0))
    masked = FaceDataset(rows[:2], micro_prepared, geometry=geometry, cache_mb=64, with_masks=True)
    augmented[0], masked[0]
    assert not augmented._cache and not masked._cache  # a random or masked item is never kept


def test_load_face_is_align_face_on_the_crop(rows, micro_prepared):
    row = rows[40]
    image, masks = load_face(row, micro_prepared, geometry=Geometry(canvas=160, scale=1.0))
    crop = read_rgb(micro_prepared / row["path"])
    np.testing.assert_array_equal(image, align_face(crop, np.array(row["landmarks"]), 160, round(160 * 80 / 224), 1.0))
    assert masks is None


def test_aligned_eyes_land_on_the_template(rows, micro_synth, micro_prepared):
    """True eye centres, pushed through the alignment the dataset uses, vs the template's eyes (px at 224).

    Two parts: the five-point fit itself (true landmarks in, since synthetic faces do not have the
    template's proportions) and dlib's landmark error on top (a frame pixel of micro's 128 px frames
    is about 3 canvas pixels). Measured on flat faces with the earlier template (2026-11-25): fit
    3.9 px median, with dlib 5.7 median, 9.6 p90; with the reference-exact template (issue 13): 2.83,
    4.23, 8.19. On issue 10's shaded faces, yaw up to 30 degrees (earlier template): fit 4.2, with dlib
    7.2 median, 18.3 p90 (dlib's landmarks err more on turned heads; median excess over the fit 3.0);
    both together (2026-12-01): fit 3.02, with dlib 5.90 median, 16.51 p90.
    """
    tmpl = template_points(224, 80, 0.9)[:2]
    fit_only, errors = [], []
    for row in rows:
        truth = _gt_in_crop(row, micro_synth, micro_prepared)
        m_true = alignment_matrix(truth, 224, 80, 0.9)
        fit_only.append(np.linalg.norm(apply_affine(m_true, eye_centres(truth)) - tmpl, axis=1).max())
        m = alignment_matrix(np.array(row["landmarks"]), 224, 80, 0.9)
        errors.append(np.linalg.norm(apply_affine(m, eye_centres(truth)) - tmpl, axis=1).max())
    fit_only, errors = np.array(fit_only), np.array(errors)
    print(f"\nworse-eye error, px at 224: fit alone median {np.median(fit_only):.2f}; "
          f"with dlib landmarks median {np.median(errors):.2f}, p90 {np.percentile(errors, 90):.2f}")
    assert np.median(fit_only) < 5.0
    assert np.median(errors) < 8.5 and np.median(errors - fit_only) < 4.0
    assert np.percentile(errors, 90) < 22.0


def test_landmarks_from_another_compression_map_through_both_boxes(rows, micro_synth, micro_prepared):
    by_id = {r["id"]: r for r in rows}
    row = next(r for r in rows if r["compression"] == "c40" and r["method"] == "Face2Face")
    raw = by_id[row["id"].replace("/c40/", "/raw/")]
    size = png_size(micro_prepared / row["path"])[0]
    np.testing.assert_allclose(crop_landmarks(row, micro_prepared, size, landmarks_from=row), row["landmarks"])
    moved = crop_landmarks(row, micro_prepared, size, landmarks_from=raw)
    truth = _gt_in_crop(row, micro_synth, micro_prepared)
    assert np.abs(np.array(raw["box"]) - row["box"]).max() > 0 or raw["landmarks"] != row["landmarks"]
    # the raw frame's landmarks are as good in the c40 crop as they were in their own
    assert np.linalg.norm(moved - truth, axis=1).mean() < 0.15 * np.linalg.norm(truth[36:42].mean(0) - truth[42:48].mean(0))
    img_own, _ = load_face(row, micro_prepared)
    img_raw_lm, _ = load_face(row, micro_prepared, landmarks_from=raw)
    assert img_own.shape == img_raw_lm.shape
    other = next(r for r in rows if r["video"] != row["video"])
    with pytest.raises(UserError, match="not the same frame"):
        load_face(row, micro_prepared, landmarks_from=other)


def test_masks_follow_the_alignment(rows, micro_synth, micro_prepared):
    fake = next(r for r in rows if r["method"] == "FaceSwap" and r["compression"] == "c23")
    _image, masks = load_face(fake, micro_prepared, with_masks=True)
    assert masks.shape == (2, 224, 224) and masks.min() >= 0.0 and masks.max() <= 1.0
    donor = masks[0] > 0.5
    assert 0.05 < donor.mean() < 0.8
    # the swapped face is in the middle of the aligned canvas: the template's nose tip is donor
    nx, ny = template_points(224, 80, 0.9)[2].round().astype(int)
    assert donor[ny, nx]
    # same transform as the ground truth mask warped independently from the frame
    with np.load(ffpp.gt_path(micro_synth, "FaceSwap", "c23", fake["video"])) as gt:
        frame_mask = gt["donor_mask"][fake["frame"]].astype(np.float32)
    x0, y0 = fake["box"][:2]
    m = alignment_matrix(np.array(fake["landmarks"]), 224, 80, 0.9)
    m[:, 2] -= m[:, :2] @ np.array([x0, y0], dtype=float)  # frame -> crop is a shift at native size
    expected = cv2.warpAffine(frame_mask, m, (224, 224), flags=cv2.INTER_LINEAR)
    assert np.abs(expected - masks[0]).mean() < 0.01
    real = next(r for r in rows if r["label"] == 0)
    assert not load_face(real, micro_prepared, with_masks=True)[1].any()
    with pytest.raises(UserError, match="no ground-truth masks"):
        load_face(dict(fake, mask_path=None), micro_prepared, with_masks=True)


def test_augmentation_is_seeded_and_moves_masks_with_the_image(rows, micro_prepared):
    fakes = filter_rows(rows, methods="Deepfakes", compressions="raw")[:3]
    cfg = AugmentConfig(enabled=True)
    torch.manual_seed(0)
    a = FaceDataset(fakes, micro_prepared, augment=build_augment(cfg, seed=1))[0]["image"]
    torch.manual_seed(0)
    b = FaceDataset(fakes, micro_prepared, augment=build_augment(cfg, seed=1))[0]["image"]
    c = FaceDataset(fakes, micro_prepared, augment=build_augment(cfg, seed=2))[0]["image"]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert build_augment(AugmentConfig(enabled=False)) is None
    # a pure flip: image and masks are the mirrored unaugmented ones
    flip_only = dataclasses.replace(cfg, scale_std=0.0, translate=0.0, rotate=0.0, flip=1.0, **NO_PHOTOMETRIC)
    plain = FaceDataset(fakes, micro_prepared, with_masks=True)[1]
    flipped = FaceDataset(fakes, micro_prepared, with_masks=True, augment=build_augment(flip_only))[1]
    assert torch.allclose(flipped["image"], plain["image"].flip(-1), atol=1.5 / 255)
    # warpAffine quantises source coordinates to 1/32 px: edge values may differ by that much
    assert torch.allclose(flipped["masks"], plain["masks"].flip(-1), atol=1 / 32 + 1e-3)
    # rotation and shift: masks still match the image (donor pixels move with the face)
    moved = dataclasses.replace(flip_only, flip=0.0, rotate=30.0, translate=25.0, scale_std=0.1)
    item = FaceDataset(fakes, micro_prepared, with_masks=True, augment=build_augment(moved, seed=5))[1]
    assert not torch.allclose(item["masks"], plain["masks"], atol=0.1)
    assert abs(float(item["masks"][0].sum()) / float(plain["masks"][0].sum()) - 1) < 0.6


def test_every_augmentation_at_once_gives_valid_images(rows, micro_prepared):
    always = AugmentConfig(enabled=True, perspective=1.0, flip=1.0, **{k: 1.0 for k in NO_PHOTOMETRIC})
    ds = FaceDataset(rows[:4], micro_prepared, augment=build_augment(always, seed=0), geometry=Geometry(canvas=128))
    for i in range(len(ds)):
        image = ds[i]["image"]
        assert image.shape == (3, 128, 128) and torch.isfinite(image).all() and image.std() > 0.01


def test_augment_config_rejects_bad_probabilities():
    with pytest.raises(ValueError, match="probability"):
        AugmentConfig(jpeg=1.5)
