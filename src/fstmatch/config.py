"""Typed configs: dataclasses loaded from YAML presets, strict about keys, with ``k=v`` overrides.

One dataclass per experiment kind (synth, train, explain, demo…), defined next to the code that
uses it. This module only knows how to fill a dataclass from nested dicts:

>>> @dataclass
... class Opt:
...     lr: float = 1e-3
...     steps: int = 10
>>> load_config(Opt, overrides=["lr=0.1"])
Opt(lr=0.1, steps=10)

Unknown keys are rejected with the list of known ones (a typo never silently does nothing).
Presets are YAML files inside the package (``fstmatch/presets/<kind>/<name>.yaml``), found by
name, never by absolute path.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from fstmatch.errors import UserError

T = TypeVar("T")


def preset_names(kind: str) -> list[str]:
    """Names of the presets shipped for ``kind`` (e.g. ``"synth"`` -> ``["ffpp", "small", "tiny"]``)."""
    root = resources.files("fstmatch") / "presets" / kind
    if not root.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


#: Presets that were removed, by (kind, name): what replaced them.
RETIRED_PRESETS = {("demo", "small"): "the demo preset 'small' was replaced by 'laptop' (more identities, "
                                      "and detectors that detect): use --preset laptop"}


def load_preset(kind: str, name: str) -> dict[str, Any]:
    """The raw dict of a shipped preset; unknown names raise :class:`UserError` naming the choices."""
    names = preset_names(kind)
    if name not in names:
        retired = RETIRED_PRESETS.get((kind, name))
        raise UserError(retired or f"unknown {kind} preset {name!r}; choose from: {', '.join(names) or '(none)'}")
    text = (resources.files("fstmatch") / "presets" / kind / f"{name}.yaml").read_text("utf-8")
    return yaml.safe_load(text) or {}


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except yaml.YAMLError as e:
        raise UserError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping at the top level")
    return data


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1, 2]"]`` -> ``{"a": {"b": 1}, "c": [1, 2]}``; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"override {item!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {item!r} conflicts with another override of {part!r}")
        node[parts[-1]] = value
    return out


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``update`` wins."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and checking types."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    renamed = getattr(cls, "RENAMED", {})
    old = sorted(k for k in data if k in renamed and k not in fields)
    if old:
        prefix = f"{where}." if where else ""
        raise UserError("; ".join(f"config key {prefix}{k} was renamed {prefix}{renamed[k]}" for k in old))
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise UserError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
            f"known keys{' of ' + where if where else ''}: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(value, hints[name], key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise UserError(f"invalid config{' ' + where if where else ''}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples become lists) for JSON/YAML."""
    return _plain(dataclasses.asdict(cfg))


def load_config(
    cls: type[T],
    *,
    kind: str | None = None,
    preset: str | None = None,
    file: str | Path | None = None,
    overrides: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> T:
    """Defaults < preset ``kind/preset`` < YAML ``file`` < ``extra`` dict < ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if preset is not None:
        if kind is None:
            raise ValueError("a preset needs its kind")
        data = merge(data, load_preset(kind, preset))
    if file is not None:
        data = merge(data, load_yaml(file))
    if extra:
        data = merge(data, extra)
    data = merge(data, parse_overrides(overrides))
    return from_dict(cls, data)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise UserError(f"{key} must be one of {', '.join(map(repr, args))}, not {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise UserError(f"{key} must be a mapping, not {value!r}")
        return from_dict(tp, value, key)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{key} must be a list, not {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise UserError(f"{key} must have {len(args)} items, not {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        coerced = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(coerced) if origin is tuple else coerced
    if origin is dict:
        if not isinstance(value, Mapping):
            raise UserError(f"{key} must be a mapping, not {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{key} must be true or false, not {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise UserError(f"{key} must be an integer, not {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    return float(value)  # YAML reads 1e-5 (no dot) as a string
                except ValueError:
                    pass
            raise UserError(f"{key} must be a number, not {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{key} must be a string, not {value!r}")
        return value
    return value
