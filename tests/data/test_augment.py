"""The photometric augmentation is the reference's relative to the face, whatever the canvas."""

from __future__ import annotations

import numpy as np
import pytest

from fstmatch.data.augment import AugmentConfig, build_augment

OFF = {name: 0.0 for name in ("tone_blend", "hsv", "gamma", "minmax", "motion_blur", "gaussian_blur", "down_up",
                               "gaussian_noise", "lowfreq_noise", "jpeg")}


def _fine_energy_kept(reference_canvas: int, canvas: int, **on: float) -> float:
    """Share of a texture's pixel-scale energy (its deviation from a 3x3 mean) the augmentation keeps."""
    import cv2

    img = np.random.default_rng(0).integers(40, 216, size=(canvas, canvas, 3)).astype(np.uint8)
    aug = build_augment(AugmentConfig(enabled=True, reference_canvas=reference_canvas, **{**OFF, **on}), seed=3)
    out = aug.photometric(img, np.random.default_rng(1)).astype(np.float32)

    def fine(x: np.ndarray) -> float:
        return float(np.square(x - cv2.blur(x, (3, 3))).mean())

    return fine(out) / fine(img.astype(np.float32))


@pytest.mark.parametrize("degradation", ["gaussian_blur", "motion_blur", "jpeg"])
def test_small_canvases_are_degraded_at_the_reference_face_size(degradation: str) -> None:
    at_canvas = _fine_energy_kept(0, 64, **{degradation: 1.0})  # the old behaviour: 224-px kernels on 64 px
    at_reference = _fine_energy_kept(224, 64, **{degradation: 1.0})
    assert at_reference > 1.15 * at_canvas  # deterministic draws: 1.24x (JPEG) to 13x (3x3 Gaussian)
    # at the reference size itself nothing is resized: both settings draw the same degradation
    assert _fine_energy_kept(0, 224, **{degradation: 1.0}) == pytest.approx(
        _fine_energy_kept(224, 224, **{degradation: 1.0}))


def test_nothing_on_leaves_the_face_exactly_as_it_was() -> None:
    assert _fine_energy_kept(224, 64) == _fine_energy_kept(0, 64) == 1.0


def test_reference_canvas_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="reference_canvas"):
        AugmentConfig(reference_canvas=-1)
