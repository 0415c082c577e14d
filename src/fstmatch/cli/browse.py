"""``fstmatch browse``: the map explorer of a verify or demo output, served on localhost."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "browse every analysed frame's Shapley maps of a verify, demo or explain output in a web page"
DESCRIPTION = """\
Serves DIR (the --out folder of `fstmatch verify`, `fstmatch demo` or `fstmatch explain`) on http://HOST:PORT and
prints the address of its map explorer: a gallery of the analysed frames (filter by method,
compression, split and model score; sort by per-image Q, paired - unpaired Q, delta, detector
score or ground-truth lift) and a frame view (the aligned face with each model's Shapley map, the
top-t union and det-only cells, ground-truth masks, raw/c23/c40 side by side, every number).

The page is DIR/explorer/index.html, which verify and demo runs also write; it works opened
straight from disk (no server), so a run folder can be zipped and shared. It is (re)built here
when missing, older than the run's maps, or when --rebuild is given, from the map files alone
(the explained faces and every number are in them: no model is loaded, no face aligned).

Only files under DIR are served (no listings, nothing executed); the default host is 127.0.0.1,
reachable from this machine only.

examples:
  fstmatch browse demo-out
  fstmatch browse out/verify --port 9000 --open
  fstmatch browse maps/det                       # the --out folder of fstmatch explain
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=Path, metavar="DIR",
                   help="output folder of `fstmatch verify`, `fstmatch demo` or `fstmatch explain`")
    p.add_argument("--port", type=int, default=8765, help="port (default: %(default)s; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: %(default)s; another address exposes the run to the network)")
    p.add_argument("--rebuild", action="store_true", help="rebuild DIR/explorer even when it is up to date")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--verbose", action="store_true", help="log every request")


def run(args: argparse.Namespace) -> int:
    from fstmatch.browse.build import explorer_is_current, write_explorer
    from fstmatch.browse.server import make_server
    from fstmatch.errors import UserError

    if args.rebuild or not explorer_is_current(args.dir):
        write_explorer(args.dir)
    try:
        httpd = make_server(args.dir, args.host, args.port, quiet=not args.verbose)
    except OSError as e:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e} (choose another --port)") from e
    host, port = httpd.server_address[:2]
    url = f"http://{host}:{port}/explorer/index.html"
    print(f"serving {args.dir} at {url} (Ctrl-C stops)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped", flush=True)
    finally:
        httpd.server_close()
    return 0
