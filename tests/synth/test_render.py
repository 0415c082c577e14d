"""Rendering, manipulations and their ground truth, checked against the renderer itself and dlib."""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest

from fstmatch import ffpp
from fstmatch.config import load_config
from fstmatch.synth import SynthConfig, VideoJob, read_video, render_video
from fstmatch.synth.generate import scene, track

from ._reference import donor_reference


@pytest.fixture(scope="module")
def cfg() -> SynthConfig:
    return load_config(SynthConfig, kind="synth", preset="micro")


def _first_pair(root: Path) -> tuple[int, int]:
    a, b = ffpp.read_splits(root / "splits")["train"][0]
    return int(a), int(b)


def test_raw_decodes_bit_exact_to_rendered_frames(micro_synth: Path, cfg: SynthConfig) -> None:
    a, b = _first_pair(micro_synth)
    for job in [VideoJob(ffpp.REAL, a, a), *(VideoJob(m, a, b) for m in ffpp.METHODS)]:
        rendered = render_video(cfg, 0, job)["frames"]
        decoded = read_video(ffpp.video_path(micro_synth, job.method, "raw", job.name))
        assert np.array_equal(rendered, decoded), job


def test_same_seed_identical_other_seed_differs(cfg: SynthConfig) -> None:
    job = VideoJob("Deepfakes", 3, 5)
    first, again, other = (render_video(cfg, s, job) for s in (0, 0, 1))
    for key in first:
        assert np.array_equal(first[key], again[key]), key
    assert np.abs(first["frames"].astype(int) - other["frames"]).mean() > 5


def test_identities_differ_in_inner_face_and_context(cfg: SynthConfig) -> None:
    reals = [render_video(cfg, 0, VideoJob(ffpp.REAL, i, i))["frames"][0].astype(int) for i in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(reals[i] - reals[j]).mean() > 10


def _detector_and_predictor() -> tuple[dlib.fhog_object_detector, dlib.shape_predictor]:
    # face_recognition_models' __init__ imports pkg_resources: find its files by folder instead.
    folder = Path(os.path.dirname(find_spec("face_recognition_models").origin)) / "models"
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(folder / "shape_predictor_68_face_landmarks.dat"))


def test_dlib_finds_faces_and_agrees_with_landmarks(micro_synth: Path) -> None:
    """HOG detection on raw frames >= 95% (upsample 1: micro faces are ~60 px) and dlib's 68-point
    predictor lands near the ground truth (normalised by the inter-ocular distance)."""
    detector, predictor = _detector_and_predictor()
    found = total = 0
    errors = []
    for method in (ffpp.REAL, *ffpp.METHODS):
        for path in sorted(ffpp.video_dir(micro_synth, method, "raw").glob("*.mp4")):
            frames = read_video(path)
            truth = np.load(ffpp.gt_path(micro_synth, method, "raw", path.stem))["landmarks"]
            for t in range(0, len(frames), 3):
                boxes = detector(frames[t], 1)
                total += 1
                found += len(boxes) > 0
                if boxes:
                    shape = predictor(frames[t], boxes[0])
                    pred = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
                    iod = np.linalg.norm(truth[t, 36:42].mean(0) - truth[t, 42:48].mean(0))
                    errors.append(np.linalg.norm(pred - truth[t], axis=1).mean() / iod)
    assert found / total >= 0.95, f"dlib found {found} of {total} faces"
    assert np.mean(errors) < 0.15, f"mean landmark error {np.mean(errors):.3f} of the inter-ocular distance"


def test_masks_land_on_the_face(micro_synth: Path, cfg: SynthConfig) -> None:
    for method in ffpp.METHODS:
        for path in sorted(ffpp.gt_dir(micro_synth, method, "raw").glob("*.npz"))[:2]:
            with np.load(path) as gt:
                lm, donor, trace = gt["landmarks"], gt["donor_mask"], gt["trace_mask"]
            for t in range(cfg.frames):
                face = np.zeros((cfg.height, cfg.width), np.uint8)
                hull = cv2.convexHull(np.concatenate([lm[t, :17], lm[t, 17:27] - [0, 8]]).astype(np.int32))
                cv2.fillConvexPoly(face, hull, 1)
                face = cv2.dilate(face, np.ones((7, 7), np.uint8))
                assert (donor[t] & face).sum() >= 0.97 * donor[t].sum(), (method, path.stem, t)
                assert (trace[t] & face).sum() >= 0.9 * trace[t].sum(), (method, path.stem, t)
                assert ((lm[t] >= 0) & (lm[t] < [cfg.width, cfg.height])).all()


@pytest.mark.parametrize("method", ffpp.METHODS)
def test_donor_pixels_come_from_the_donor(cfg: SynthConfig, method: str) -> None:
    """Inside the donor mask a fake is closer to the donor's rendering (in A's geometry) than to A.

    Compared after removing each image's mean colour in the mask: Deepfakes and FaceShifter
    correct the donor's skin tone toward A's on purpose; what must come from B is the content."""
    a, b = 0, 1
    job = VideoJob(method, a, b)
    fake = render_video(cfg, 0, job)
    real = render_video(cfg, 0, VideoJob(ffpp.REAL, a, a))["frames"]
    poses_a, poses_b = track(cfg, 0, a), track(cfg, 0, b)
    to_donor = to_real = 0.0
    for t in range(cfg.frames):
        ref = donor_reference(scene(cfg, 0, job, t, poses_a[t], poses_b[t]), method).astype(np.float64)
        m = fake["donor_mask"][t] > 0
        f = fake["frames"][t].astype(np.float64)
        f_in, ref_in, real_in = f[m], ref[m], real[t][m].astype(np.float64)
        centred = [x - x.mean(axis=0) for x in (f_in, ref_in, real_in)]
        to_donor += np.abs(centred[0] - centred[1]).mean()
        to_real += np.abs(centred[0] - centred[2]).mean()
    assert to_donor < to_real, (to_donor, to_real)


def test_each_method_leaves_its_trace(cfg: SynthConfig) -> None:
    """Swaps replace most of the face; reenactments touch only the mouth (and eyes); FaceShifter's
    trace is fine detail (the missing noise pattern): the smallest coarse share among the swaps,
    FaceSwap's (colour mismatch) the largest."""
    from fstmatch.synth.manipulate import COARSE

    share, coarse = {}, {}
    for method in ffpp.METHODS:
        out = render_video(cfg, 0, VideoJob(method, 2, 3))
        share[method] = out["donor_mask"].mean()
        inside = out["donor_mask"] > 0
        coarse[method] = ((out["trace_kind"] & COARSE) > 0)[inside].mean()
    assert share["Face2Face"] < 0.5 * share["Deepfakes"]
    assert share["NeuralTextures"] < 0.5 * share["FaceSwap"]
    assert coarse["FaceShifter"] < coarse["Deepfakes"] < coarse["FaceSwap"], coarse
