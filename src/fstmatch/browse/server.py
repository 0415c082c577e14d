"""A read-only static file server for one run folder (``fstmatch browse``).

It serves regular files under its root and nothing else: no directory listings, no uploads, no
scripts run. :func:`resolve_request` is the whole access rule: a request path is percent-decoded,
refused when any segment is ``..`` (also when spelled ``%2e%2e``), holds a backslash or a NUL, and
refused when the file it names resolves (symlinks followed) outside the root.
"""

from __future__ import annotations

import functools
import http.server
import urllib.parse
from pathlib import Path
from typing import Any

#: What the page may load: its own files only (no CDN, no inline script).
HEADERS: dict[str, str] = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def resolve_request(root: str | Path, url: str) -> Path | None:
    """The file under ``root`` that the request target ``url`` names, or ``None`` when the request
    is refused (traversal, a path leaving ``root`` through a symlink, not a regular file)."""
    base = Path(root).resolve()
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path, errors="strict")
    if "\\" in path or "\x00" in path:
        return None
    parts = path.split("/")
    if any(p == ".." for p in parts):
        return None
    target = base.joinpath(*[p for p in parts if p and p != "."]).resolve()
    if target != base and base not in target.parents:
        return None
    if target.is_dir():
        target = target / "index.html"
    return target if target.is_file() else None


class _Handler(http.server.SimpleHTTPRequestHandler):
    """GET/HEAD of files under ``directory`` via :func:`resolve_request`; everything else refused."""

    server_version = "fstmatch-browse"
    sys_version = ""

    def __init__(self, *args: Any, directory: str, quiet: bool = True, **kwargs: Any) -> None:
        self.quiet = quiet
        super().__init__(*args, directory=directory, **kwargs)

    def send_head(self):  # type: ignore[no-untyped-def]
        if urllib.parse.urlsplit(self.path).path == "/" and resolve_request(self.directory, "/") is None:
            self.send_response(302)  # the run folder itself: its explorer
            self.send_header("Location", "/explorer/index.html")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        try:
            target = resolve_request(self.directory, self.path)
        except UnicodeDecodeError:
            target = None
        if target is None:
            self.send_error(404, "not found")
            return None
        try:
            f = open(target, "rb")  # noqa: SIM115 - handed to the base class, which closes it
        except OSError:
            self.send_error(404, "not found")
            return None
        size = target.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(target)))
        self.send_header("Content-Length", str(size))
        for k, v in HEADERS.items():
            self.send_header(k, v)
        self.end_headers()
        return f

    def list_directory(self, path):  # type: ignore[no-untyped-def]
        self.send_error(404, "not found")
        return None

    def log_message(self, format: str, *args: Any) -> None:
        if not self.quiet:
            super().log_message(format, *args)


def make_server(root: str | Path, host: str = "127.0.0.1", port: int = 8765, quiet: bool = True
                ) -> http.server.ThreadingHTTPServer:
    """A server for ``root`` bound to ``host:port`` (``port=0``: a free port); call ``serve_forever``."""
    handler = functools.partial(_Handler, directory=str(Path(root).resolve()), quiet=quiet)
    return http.server.ThreadingHTTPServer((host, port), handler)


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 8765, quiet: bool = True) -> None:
    """Serve ``root`` until interrupted."""
    with make_server(root, host, port, quiet) as httpd:
        httpd.serve_forever()
