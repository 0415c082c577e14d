"""The house's layering: a stage imports only from stages below it, so there is no import cycle and
no arrow running back up (docs/INTERFACES.md, "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

import fstmatch

#: Lowest first. A module of layer i may import fstmatch modules of layers < i only.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("utils", "config", "metrics"),
    ("ffpp",),
    ("synth", "data", "models"),
    ("train", "explain"),
    ("hypotheses",),
    ("report", "browse"),
    ("pipeline",),
    ("cli",),
    ("__main__",),
)
ROOT = Path(fstmatch.__file__).parent


def _stage(parts: tuple[str, ...]) -> str:
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        found |= {n.split(".")[1] for n in names if n.startswith("fstmatch.")}
    return found


def test_every_stage_imports_only_from_below():
    rank = {stage: i for i, layer in enumerate(LAYERS) for stage in layer}
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        stage = _stage(path.relative_to(ROOT).parts)
        if stage == "__init__":
            continue
        assert stage in rank, f"{path}: stage {stage!r} has no layer; add it to LAYERS"
        bad += [f"{path.relative_to(ROOT)} imports fstmatch.{t}" for t in _imports(path)
                if t != stage and rank.get(t, -1) >= rank[stage]]
    assert not bad, "imports that run back up or sideways:\n" + "\n".join(bad)
