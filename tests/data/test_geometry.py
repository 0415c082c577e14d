"""``Geometry``: one value for a run's face alignment, defaults filled in, bad values refused."""

from __future__ import annotations

import pytest

from fstmatch.data import Geometry
from fstmatch.errors import UserError


def test_defaults_are_filled_in_so_equal_alignments_compare_equal() -> None:
    assert Geometry() == Geometry("fstmatch", 224, None, 0.9)
    assert Geometry("deepfakebench").to_dict() == {"convention": "deepfakebench", "canvas": 256, "face_width": None,
                                                   "scale": 1.3}
    g = Geometry("deepfakebench", canvas=32)
    assert g.side == 32 and g.scale == 1.3 and str(g) == "deepfakebench 32 px, scale 1.3"
    assert Geometry.from_dict(g.to_dict()) == g and hash(g) == hash(Geometry.from_dict(g.to_dict()))
    # an old record without a convention meant fstmatch; other keys are ignored
    assert Geometry.from_dict({"canvas": 32, "scale": None, "augment": True}) == Geometry(canvas=32)
    assert Geometry.from_dict(None) == Geometry()


def test_of_a_config_section() -> None:
    from fstmatch.hypotheses.config import ImagesConfig
    from fstmatch.train.config import InputConfig

    assert Geometry.of(InputConfig(convention="deepfakebench", canvas=64)) == Geometry("deepfakebench", 64)
    assert ImagesConfig(canvas=32, face_width=12).geometry() == Geometry(canvas=32, face_width=12)


def test_bad_geometry_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown alignment convention 'dlib'"):
        Geometry("dlib")
    with pytest.raises(UserError, match="face_width applies to the fstmatch alignment convention only"):
        Geometry("deepfakebench", face_width=80)
    with pytest.raises(UserError, match="scale must be > 0"):
        Geometry(scale=0)
    with pytest.raises(UserError, match="canvas must be a positive integer"):
        Geometry(canvas=0)
    with pytest.raises(AttributeError):
        Geometry().canvas = 3  # type: ignore[misc]  # frozen
