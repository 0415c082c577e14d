"""Reports of verify and demo runs: Markdown and self-contained HTML from a summary dict."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fstmatch.report.content import format_verify, hypothesis_blocks
from fstmatch.report.render import Block, to_html, to_markdown
from fstmatch.utils.io import atomic_write_text


def write_report(out_dir: str | Path, blocks: Sequence[Block], title: str, name: str = "report") -> tuple[Path, Path]:
    """Write ``DIR/<name>.md`` (figures by relative path) and ``DIR/<name>.html`` (figures inline)."""
    out = Path(out_dir)
    md, page = out / f"{name}.md", out / f"{name}.html"
    atomic_write_text(md, to_markdown(blocks))
    atomic_write_text(page, to_html(blocks, out, title))
    return md, page


__all__ = ["format_verify", "hypothesis_blocks", "to_html", "to_markdown", "write_report"]
