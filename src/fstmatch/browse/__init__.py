"""Map explorer: browse every analysed frame's Shapley maps of a ``verify`` or ``demo`` run in a web page.

- :func:`write_explorer` writes the static page ``DIR/explorer/index.html`` (works from ``file://``);
- :func:`serve` serves ``DIR`` on 127.0.0.1 (``fstmatch browse DIR``), refusing any path outside it.
"""

from fstmatch.browse.build import write_explorer
from fstmatch.browse.server import resolve_request, serve

__all__ = ["resolve_request", "serve", "write_explorer"]
