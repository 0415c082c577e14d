"""fstmatch.metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fstmatch.errors import UserError
from fstmatch.metrics import detection_metrics, equal_error_rate, identity_accuracy


def test_frame_metrics_by_hand() -> None:
    # negatives 0.3, 0.6; positives 0.5, 0.7, 0.9.
    # AUC: of 6 (pos, neg) pairs only (0.5, 0.6) is misordered -> 5/6.
    # ROC (fpr, tpr): (0,0) (0,1/3) (0,2/3) (1/2,2/3) (1/2,1) (1,1); FNR stays 1/3 while FPR goes
    # 0 -> 1/2, so FPR = FNR at 1/3.  AP: precision 1, 1, 3/4 at recall 1/3, 2/3, 1 -> 11/12.
    # acc at 0.5: 0.6 (real) is called fake, the rest are right -> 4/5.
    labels = [0, 1, 0, 1, 1]
    scores = [0.3, 0.5, 0.6, 0.7, 0.9]
    m = detection_metrics(labels, scores)
    assert m == pytest.approx(
        {"n": 5, "n_real": 2, "n_fake": 3, "auc": 5 / 6, "eer": 1 / 3, "ap": 11 / 12, "acc": 4 / 5}
    )


def test_eer_exactly_at_a_roc_point_and_perfect_separation() -> None:
    assert equal_error_rate(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9])) == pytest.approx(0.5)
    m = detection_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))
    assert (m["auc"], m["eer"], m["ap"], m["acc"]) == (1.0, 0.0, 1.0, 1.0)
    inverted = detection_metrics([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9])
    assert (inverted["auc"], inverted["eer"], inverted["acc"]) == (0.0, 1.0, 0.0)


def test_video_auc_uses_mean_score_per_composite_id() -> None:
    # Two real and two fake videos; the fakes share the name "000" with a real one across
    # methods, so ids carry method/compression. Per-video means: real 0.2, 0.7; fake 0.6, 0.9.
    ids = [
        "real/c23/000",
        "real/c23/000",
        "real/c23/001",
        "real/c23/001",
        "Deepfakes/c23/000_001",
        "Deepfakes/c23/000_001",
        "FaceSwap/c23/000_001",
        "FaceSwap/c23/000_001",
    ]
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    scores = torch.tensor([0.1, 0.3, 0.8, 0.6, 0.2, 1.0, 0.9, 0.9])
    m = detection_metrics(torch.tensor(labels), scores, video_ids=ids)
    # video pairs (fake, real): (0.6, 0.2) ok, (0.6, 0.7) wrong, (0.9, *) ok -> 3/4
    assert m["video_auc"] == pytest.approx(0.75) and m["n_videos"] == 4
    with pytest.raises(UserError, match="mix real and fake frames"):
        detection_metrics(labels, scores, video_ids=["000"] * 8)


def test_single_class_is_nan_with_a_note() -> None:
    m = detection_metrics([1, 1, 1], [0.2, 0.7, 0.9], video_ids=["a", "b", "b"])
    assert (
        math.isnan(m["auc"]) and math.isnan(m["eer"]) and math.isnan(m["ap"]) and math.isnan(m["video_auc"])
    )
    assert m["acc"] == pytest.approx(2 / 3)
    assert m["note"] == "only fake frames: AUC, EER and AP are undefined (NaN)"
    assert "note" not in detection_metrics([0, 1], [0.2, 0.7])


def test_bad_inputs_are_user_errors() -> None:
    with pytest.raises(UserError, match="probabilities of fake"):
        detection_metrics([0, 1], [-2.0, 3.0])
    with pytest.raises(UserError, match="differ in length"):
        detection_metrics([0, 1], [0.5])
    with pytest.raises(UserError, match="0 \\(real\\) or 1 \\(fake\\)"):
        detection_metrics([0, 2], [0.5, 0.5])
    with pytest.raises(UserError, match="empty"):
        detection_metrics([], [])
    with pytest.raises(UserError, match="NaN"):
        detection_metrics([0, 1], [0.5, float("nan")])


def test_identity_accuracy_from_logits_or_predictions() -> None:
    logits = torch.tensor([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 5.0], [1.0, 3.0, 2.0]])
    assert identity_accuracy([1, 0, 1, 1], logits) == pytest.approx(3 / 4)
    assert identity_accuracy(np.array([4, 7]), np.array([4, 5])) == pytest.approx(1 / 2)
    with pytest.raises(UserError, match="differ in length"):
        identity_accuracy([1], [1, 2])
