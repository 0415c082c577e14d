"""Map explorer at scale: build a synthetic verify output (N frames x models x raw/c23/c40 map
files with faces, ground-truth masks and per-image numbers), write its static explorer, and time it in headless chromium (Selenium + /usr/bin/chromedriver), from file:// and
served by ``fstmatch browse``'s server.

Times, from the page's own performance.now() marks:
- first view: navigation start to the gallery painted (filters filled, first page of cards);
- frame switch (next): right arrow in the frame view to the frame drawn (its data prefetched);
- frame switch (jump): a random frame opened to drawn (its data script loaded on demand).

    python benchmarks/explorer_bench.py --frames 2000 --grid 16 --out /tmp/explorer-bench
    python benchmarks/explorer_bench.py --run DEMO_OUT --screenshot docs/img/explorer.png   # an existing run
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browse"))  # headless.py: the test's driver

METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")


def synthetic_run(out: Path, frames: int, grid: int, canvas: int, seed: int = 0) -> Path:
    """A verify output folder with ``frames`` analysed frames and map files (docs/INTERFACES.md, "Map
    files") of source/target/det at raw/c23/c40: random maps, blurred-noise faces, masks, and
    per-image numbers, as verify writes them."""
    from fstmatch.explain.mapfile import MapSet, write_maps
    from fstmatch.utils.io import atomic_write_json

    rng = np.random.default_rng(seed)
    infos, ids = [], []
    per_video = 10
    videos = -(-frames // per_video)
    for v in range(videos):
        method = METHODS[v % len(METHODS)]
        a, b = (2 * v) % 100, (2 * v + 1) % 100
        video = f"{a:03d}_{b:03d}_{v}"
        for f in range(min(per_video, frames - len(ids))):
            ids.append(f"{method}/raw/{video}/{f:04d}")
            infos.append({"method": method, "video": video, "frame": f, "split": "train", "label": 1,
                          "source": a, "target": b})
    n = len(ids)
    faces = np.stack([cv2.GaussianBlur(rng.integers(0, 256, (canvas, canvas, 3), dtype=np.uint8), (0, 0), 2)
                      for _ in range(n)])
    masks = np.zeros((n, 2, canvas, canvas), np.uint8)
    lo, hi = canvas * 9 // 32, canvas * 25 // 32
    masks[:, 0, lo:hi, lo:hi] = 255
    masks[:, 1, lo:hi, lo] = masks[:, 1, lo:hi, hi - 1] = 255
    thresholds = [round(0.6 + 0.05 * i, 2) for i in range(8)]
    vdir = out / "verify"
    for role in ("source", "target", "det"):
        for comp in ("raw", "c23", "c40"):
            cids = [i.replace("/raw/", f"/{comp}/") for i in ids]
            metrics = {"logit": rng.standard_normal(n), "score": rng.uniform(size=n), "lift": rng.uniform(0, 3, n)}
            if role == "det":
                metrics["qt"] = rng.uniform(-0.1, 0.1, (n, len(thresholds)))
            if comp == "raw":
                metrics["delta"] = rng.uniform(0, 1, n)
            else:
                metrics["cos"] = rng.uniform(0, 1, n)
            write_maps(vdir / "maps" / f"{role}__{comp}.npz", MapSet(
                ids=cids, values=rng.standard_normal((n, grid, grid)).astype(np.float32),
                stderr=np.abs(rng.standard_normal((n, grid, grid))).astype(np.float32) * 0.1,
                target=[i["label"] for i in infos], image=faces, masks=masks if comp == "raw" else None,
                info=[{**i, "id": c, "compression": comp} for i, c in zip(infos, cids)], metrics=metrics,
                estimator="spline", budget=100, meta={"model": role, "grid": grid},
                geometry={"convention": "fstmatch", "canvas": canvas, "face_width": None, "scale": 0.9},
            ))
    atomic_write_json(vdir / "summary.json", {
        "images": {"ids": ids, "total": n}, "shapley": {"grid": grid},
        "config": {"thresholds": thresholds, "images": {"canvas": canvas}},
    })
    return out


def measure(drv, url: str, loads: int, steps: int, jumps: int) -> dict:
    from headless import wait_for
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    first = []
    for _ in range(loads):
        drv.get("about:blank")
        drv.get(url)
        first.append(wait_for(drv, "return FSTX.state.timing.firstView"))
    n = drv.execute_script("return FSTX.state.list.length")
    drv.find_elements(By.CSS_SELECTOR, "#gallery .card")[0].click()
    wait_for(drv, "return FSTX.state.timing.switches.length === 1")
    body = drv.find_element(By.TAG_NAME, "body")
    for i in range(steps):
        time.sleep(0.05)  # a person's pace: the neighbours' prefetch has started
        body.send_keys(Keys.ARROW_RIGHT)
        wait_for(drv, f"return FSTX.state.timing.switches.length === {i + 2}")
    nxt = drv.execute_script("return FSTX.state.timing.switches.slice(1)")
    rng = random.Random(0)
    for j in range(jumps):
        drv.execute_script(f"FSTX.open({rng.randrange(n)})")
        wait_for(drv, f"return FSTX.state.timing.switches.length === {steps + 2 + j}")
    jump = drv.execute_script(f"return FSTX.state.timing.switches.slice({steps + 1})")

    def stats(xs):
        xs = sorted(xs)
        return {"median": round(statistics.median(xs), 1), "p90": round(xs[int(0.9 * (len(xs) - 1))], 1),
                "max": round(xs[-1], 1), "n": len(xs)}

    return {"gallery_items": n, "first_view_ms": stats(first), "next_ms": stats(nxt), "jump_ms": stats(jump)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--grid", type=int, default=16)
    ap.add_argument("--canvas", type=int, default=224)
    ap.add_argument("--out", type=Path, help="folder for the synthetic run (default: a temporary one)")
    ap.add_argument("--run", type=Path, help="time an existing verify/demo output instead of a synthetic one")
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--jumps", type=int, default=20)
    ap.add_argument("--screenshot", type=Path, help="save a screenshot of a frame view here (PNG)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--reuse", action="store_true",
                    help="with --out/--run: keep the built explorer's data, refresh only its page files")
    args = ap.parse_args()

    from headless import chromium

    from fstmatch.browse import write_explorer
    from fstmatch.browse.server import make_server

    result: dict = {"date": time.strftime("%Y-%m-%d"), "grid": args.grid}
    if args.run or (args.reuse and args.out and (args.out / "explorer").is_dir()):
        run = args.run or args.out
    else:
        run = args.out or Path(tempfile.mkdtemp(prefix="explorer-bench-"))
        t0 = time.perf_counter()
        synthetic_run(run, args.frames, args.grid, args.canvas)
        result["synth_s"] = round(time.perf_counter() - t0, 1)
        result.update(frames=args.frames, models=3, compressions=3, canvas=args.canvas)
    page = run / "explorer" / "index.html"
    if args.reuse and page.is_file():
        from importlib import resources

        from fstmatch.browse.build import ASSETS

        for name in ASSETS:
            (page.parent / name).write_bytes((resources.files("fstmatch.browse") / "assets" / name).read_bytes())
    else:
        t0 = time.perf_counter()
        page = write_explorer(run, progress=True)
        result["build_s"] = round(time.perf_counter() - t0, 1)
    size = sum(p.stat().st_size for p in page.parent.rglob("*") if p.is_file())
    result["explorer_mb"] = round(size / 2**20, 1)
    result["index_js_kb"] = round((page.parent / "data" / "index.js").stat().st_size / 1024, 1)
    httpd = make_server(run, port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    drv = chromium(Path(tempfile.mkdtemp(prefix="explorer-profile-")))
    try:
        result["file"] = measure(drv, page.as_uri(), args.loads, args.steps, args.jumps)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/explorer/index.html"
        result["served"] = measure(drv, url, args.loads, args.steps, args.jumps)
        if args.screenshot:
            from headless import wait_for
            from selenium.webdriver.common.by import By

            drv.set_window_size(1400, 900)
            drv.get(page.as_uri())
            wait_for(drv, "return FSTX.state.timing.firstView")
            drv.execute_script("FSTX.open(0)")
            wait_for(drv, "return FSTX.state.timing.switches.length === 1")
            for box in ("o-trace",):
                el = drv.find_element(By.ID, box)
                if el.is_enabled():
                    el.click()
            time.sleep(0.3)
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            drv.save_screenshot(str(args.screenshot))
    finally:
        drv.quit()
        httpd.shutdown()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
