"""The browse server's access rule, without a browser: only regular files under the root, never
anything reached through ``..`` (plain or percent-encoded), backslashes, NULs or outside symlinks."""

from __future__ import annotations

import http.client
import threading
from pathlib import Path

import pytest

from fstmatch.browse.server import make_server, resolve_request


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """``tmp/run`` (the served root) beside ``tmp/secret.txt``, with links into and out of the root."""
    (tmp_path / "secret.txt").write_text("secret")
    root = tmp_path / "run"
    (root / "explorer" / "data").mkdir(parents=True)
    (root / "explorer" / "index.html").write_text("<!doctype html>page")
    (root / "explorer" / "data" / "index.js").write_text("FSTX.index({});")
    (root / "out-link.txt").symlink_to(tmp_path / "secret.txt")
    (root / "out-dir").symlink_to(tmp_path)
    (root / "in-link.js").symlink_to(root / "explorer" / "data" / "index.js")
    return root


def test_files_under_the_root_are_served(tree: Path) -> None:
    assert resolve_request(tree, "/explorer/index.html") == (tree / "explorer" / "index.html").resolve()
    assert resolve_request(tree, "/explorer/data/index.js?v=1#x") == (tree / "explorer" / "data" / "index.js").resolve()
    assert resolve_request(tree, "/explorer/./data//index.js") == (tree / "explorer" / "data" / "index.js").resolve()
    assert resolve_request(tree, "/explorer/") == (tree / "explorer" / "index.html").resolve()  # a folder's page
    assert resolve_request(tree, "/in-link.js") == (tree / "explorer" / "data" / "index.js").resolve()


@pytest.mark.parametrize("url", [
    "/../secret.txt", "/explorer/../../secret.txt", "/explorer/..", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt",
    "/explorer/%2e%2e/%2e%2e/secret.txt", "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt", "/..\\secret.txt",
    "/explorer%5c..%5c..%5csecret.txt", "/explorer/index.html%00.js",
])
def test_traversal_is_refused(tree: Path, url: str) -> None:
    assert resolve_request(tree, url) is None


def test_absolute_paths_stay_inside_the_root(tree: Path) -> None:
    secret = str(tree.parent / "secret.txt")
    assert resolve_request(tree, secret) is None  # read as a path under the root, where it does not exist
    assert resolve_request(tree, "/" + secret) is None
    assert resolve_request(tree, "/etc/passwd") is None
    assert resolve_request(tree, "//etc/passwd") is None


def test_symlinks_leaving_the_root_are_refused(tree: Path) -> None:
    assert resolve_request(tree, "/out-link.txt") is None
    assert resolve_request(tree, "/out-dir/secret.txt") is None
    assert resolve_request(tree, "/missing.js") is None
    assert resolve_request(tree, "/explorer/data") is None  # a folder without index.html: no listing


def _get(port: int, path: str, method: str = "GET") -> tuple[int, bytes, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, path, skip_accept_encoding=True)  # the path goes out exactly as written
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body, resp


def test_live_server_refuses_what_resolve_request_refuses(tree: Path) -> None:
    httpd = make_server(tree, port=0)
    assert httpd.server_address[0] == "127.0.0.1"  # the default binds this machine only
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    port = httpd.server_address[1]
    try:
        status, body, resp = _get(port, "/explorer/index.html")
        assert status == 200 and body == b"<!doctype html>page"
        assert "script-src 'self'" in resp.getheader("Content-Security-Policy")
        assert resp.getheader("X-Content-Type-Options") == "nosniff"
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/explorer/%2e%2e/%2e%2e/secret.txt",
                     "/out-link.txt", "/out-dir/secret.txt", "/explorer/data/", "/%ff%fe"):
            status, body, _ = _get(port, path)
            assert status == 404 and b"secret" not in body, path
        status, _, resp = _get(port, "/")
        assert status == 302 and resp.getheader("Location") == "/explorer/index.html"
        assert _get(port, "/explorer/index.html", "HEAD")[0] == 200
        assert _get(port, "/explorer/index.html", "POST")[0] == 501  # nothing but GET/HEAD
    finally:
        httpd.shutdown()
        httpd.server_close()
