from dataclasses import dataclass, field
from typing import Literal

import pytest

from fstmatch.config import from_dict, load_config, parse_overrides, to_dict
from fstmatch.errors import UserError


@dataclass
class Inner:
    depth: int = 2
    names: tuple[str, ...] = ("a",)


@dataclass
class Outer:
    lr: float = 1e-3
    mode: Literal["fast", "slow"] = "fast"
    inner: Inner = field(default_factory=Inner)
    tag: str | None = None


def test_defaults_and_overrides():
    cfg = load_config(Outer, overrides=["lr=0.5", "inner.depth=7", "inner.names=[x, y]", "tag=hello"])
    assert cfg == Outer(lr=0.5, inner=Inner(depth=7, names=("x", "y")), tag="hello")


def test_yaml_file_then_override(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("lr: 1e-5\nmode: slow\ninner: {depth: 3}\n")
    cfg = load_config(Outer, file=f, overrides=["inner.depth=4"])
    assert cfg.lr == pytest.approx(1e-5) and cfg.mode == "slow" and cfg.inner.depth == 4


def test_unknown_key_names_known_keys():
    with pytest.raises(UserError, match=r"unknown config key\(s\) inner.dpeth.*known keys of inner: depth, names"):
        from_dict(Outer, {"inner": {"dpeth": 3}})


def test_type_errors_are_user_errors():
    with pytest.raises(UserError, match="lr must be a number"):
        from_dict(Outer, {"lr": "fast"})
    with pytest.raises(UserError, match="mode must be one of"):
        from_dict(Outer, {"mode": "medium"})
    with pytest.raises(UserError, match="depth must be an integer"):
        from_dict(Outer, {"inner": {"depth": 2.5}})


def test_bad_override_syntax():
    with pytest.raises(UserError, match="key=value"):
        parse_overrides(["lr"])


def test_unknown_preset_names_choices():
    with pytest.raises(UserError, match="unknown nothing preset"):
        load_config(Outer, kind="nothing", preset="x")


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(Outer, file=tmp_path / "nope.yaml")


def test_to_dict_round_trip():
    cfg = Outer(inner=Inner(names=("p", "q")))
    assert from_dict(Outer, to_dict(cfg)) == cfg


@dataclass
class WithTuple:
    rgb: tuple[int, int, int] = (0, 0, 0)


def test_fixed_length_tuple():
    assert load_config(WithTuple, overrides=["rgb=[1, 2, 3]"]).rgb == (1, 2, 3)
    with pytest.raises(UserError, match="3 items"):
        load_config(WithTuple, overrides=["rgb=[1, 2]"])
