"""The explorer in a real browser (slow): headless Debian chromium driven by Selenium through
/usr/bin/chromedriver (no browser download), on the toy verify output, served by ``fstmatch
browse``'s server and opened from file://. Skipped, saying why, only where no browser is installed."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from fstmatch.hypotheses import top_mask, union_mask, unit_normalise

from .headless import wait_for

#: A run folder whose name would inject markup if the page ever used innerHTML with data.
HOSTILE = 'run <img src=x onerror="document.title=1">'

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    from . import headless

    why = headless.missing()
    if why:
        pytest.skip(why)
    drv = headless.chromium(tmp_path_factory.mktemp("chromium-profile"))
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def run_dir(verify_out: Path, explorer: Path, tmp_path_factory) -> Path:
    """A copy of the toy run (its explorer included) under a hostile folder name."""
    run = tmp_path_factory.mktemp("browser") / HOSTILE
    shutil.copytree(verify_out, run)
    from fstmatch.browse import write_explorer

    write_explorer(run, progress=False)  # the title comes from the folder's name
    return run


@pytest.fixture(scope="module", params=["served", "file"])
def page_url(request, run_dir: Path):
    if request.param == "file":
        yield request.param, (run_dir / "explorer" / "index.html").as_uri()
        return
    from fstmatch.browse.server import make_server

    httpd = make_server(run_dir, port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield request.param, f"http://127.0.0.1:{httpd.server_address[1]}/explorer/index.html"
    httpd.shutdown()
    httpd.server_close()


def _maps(run: Path, name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with np.load(run / "maps" / f"{name}.npz", allow_pickle=False) as z:
        return {str(i): (v, e) for i, v, e in zip(z["ids"], z["values"], z["stderr"])}


def test_explorer_in_chromium(driver, page_url, run_dir: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    mode, url = page_url
    summary = json.loads((run_dir / "summary.json").read_text())
    driver.get(url)
    wait_for(driver, "return document.getElementById('counts').dataset.items")
    # gallery: every analysed frame, at raw by default; the hostile folder name is text, not markup
    counts = driver.find_element(By.ID, "counts")
    assert int(counts.get_attribute("data-frames")) == summary["images"]["total"] == 8
    assert len(driver.find_elements(By.CSS_SELECTOR, "#gallery .card")) == 8
    assert HOSTILE in driver.find_element(By.ID, "run").text
    assert not driver.find_elements(By.CSS_SELECTOR, "header img") and driver.title == "fstmatch map explorer"
    Select(driver.find_element(By.ID, "f-comp")).select_by_value("")  # every compression: raw + c23 + c40
    assert int(counts.get_attribute("data-items")) == 8 + 7 + 7  # H3 maps only frames present at all three
    Select(driver.find_element(By.ID, "f-comp")).select_by_value("raw")
    # filter by method
    Select(driver.find_element(By.ID, "f-method")).select_by_value("FaceSwap")
    cards = driver.find_elements(By.CSS_SELECTOR, "#gallery .card")
    assert int(counts.get_attribute("data-frames")) == summary["images"]["per_method"]["FaceSwap"] == len(cards) == 4
    assert all(c.find_element(By.CLASS_NAME, "id").text.startswith("FaceSwap ") for c in cards)
    # sort by detector score, descending
    Select(driver.find_element(By.ID, "f-sort")).select_by_value("score")
    scores = driver.execute_script("return FSTX.state.list.map(i => i.sv)")
    assert scores == sorted(scores, reverse=True) and len(scores) == 4
    # open a frame; toggle every model
    driver.find_elements(By.CSS_SELECTOR, "#gallery .card")[1].click()
    wait_for(driver, "return document.body.dataset.frame")
    frame_id = driver.find_element(By.ID, "frame-title").text
    assert frame_id.startswith("FaceSwap/raw/")
    models = ["source", "target", "det", "det_paired", "det_unpaired"]
    for m in models:
        driver.find_element(By.CSS_SELECTOR, f'#model-buttons button[data-model="{m}"]').click()
        wait_for(driver, f"return document.querySelector('#model-buttons button.on').dataset.model === '{m}'")
        assert driver.find_element(By.CSS_SELECTOR, "#model-strip figure.on").get_attribute("data-model") == m
    driver.find_element(By.TAG_NAME, "body").send_keys("m")  # the model key cycles back to the first
    wait_for(driver, f"return document.querySelector('#model-buttons button.on').dataset.model === '{models[0]}'")
    driver.find_element(By.CSS_SELECTOR, '#model-buttons button[data-model="det"]').click()
    # hover a cell: every model's value ± stderr, as in the .npz
    G = summary["shapley"]["grid"]
    main = driver.find_element(By.ID, "main")
    size = main.size["width"]
    for row, col in ((1, 2), (3, 0)):
        ActionChains(driver).move_to_element_with_offset(
            main, int((col + 0.5) * size / G - size / 2), int((row + 0.5) * size / G - size / 2)).perform()
        wait_for(driver, f"return document.getElementById('tip').dataset.row === '{row}' "
                      f"&& document.getElementById('tip').dataset.col === '{col}' && !document.getElementById('tip').hidden")
        shown = {tr.get_attribute("data-model"): tr.find_elements(By.TAG_NAME, "td")[1].text
                 for tr in driver.find_elements(By.CSS_SELECTOR, "#tip tr.val")}
        assert sorted(shown) == sorted(models)
        for m, text in shown.items():
            value, stderr = (float(x) for x in text.split(" ± "))
            v, e = _maps(run_dir, f"{m}__raw")[frame_id]
            assert value == pytest.approx(float(v[row, col]), rel=2e-3, abs=1e-9), (m, text)
            assert stderr == pytest.approx(float(e[row, col]), rel=2e-3, abs=1e-9), (m, text)
        regions = {tr.get_attribute("data-region") for tr in driver.find_elements(By.CSS_SELECTOR, "#tip tr.gt")}
        assert regions == {"trace", "donor", "rest"}
    # the slider over the reference's thresholds: union and det-only cell counts as fstmatch.hypotheses
    s, t, d = (_maps(run_dir, f"{m}__raw")[frame_id][0] for m in ("source", "target", "det"))
    slider = driver.find_element(By.ID, "o-t")
    slider.send_keys(Keys.HOME)
    ts = summary["config"]["thresholds"]
    for j, th in enumerate(ts):
        if j:
            slider.send_keys(Keys.ARROW_RIGHT)
        wait_for(driver, f"return document.getElementById('o-t-val').textContent === '{th:.2f}'")
        union = union_mask(s, t, th)[0]
        detonly = top_mask(unit_normalise(d), th)[0] & ~union
        uc = driver.find_element(By.ID, "union-count")
        assert int(uc.get_attribute("data-union")) == int(union.sum()), th
        assert int(uc.get_attribute("data-detonly")) == int(detonly.sum()), th
    # keyboard: next frame, compression key (to the frame's next version), back to the gallery
    k = driver.execute_script("return document.body.dataset.frame")
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
    wait_for(driver, f"return document.body.dataset.frame !== '{k}'")
    assert driver.find_element(By.ID, "frame-title").text != frame_id
    comps = driver.execute_script("return Object.keys(FSTX.state.index.frames[Number(document.body.dataset.frame)].v)")
    nxt = comps[1 % len(comps)]  # raw only where hypothesis 3 skipped the frame
    driver.find_element(By.CSS_SELECTOR, '#model-buttons button[data-model="det_paired"]').click()
    driver.find_element(By.TAG_NAME, "body").send_keys("c")  # det_paired has no c23 map: the view falls back to det
    wait_for(driver, f"return document.querySelector('#comp-strip figure.on').dataset.comp === '{nxt}'")
    if nxt != "raw":
        assert driver.find_element(By.CSS_SELECTOR, "#model-buttons button.on").get_attribute("data-model") == "det"
    timing = driver.execute_script("return FSTX.state.timing")
    assert timing["firstView"] > 0 and len(timing["switches"]) >= 2
    for box in ("o-donor", "o-trace"):
        driver.find_element(By.ID, box).click()
    shot = tmp_path / f"explorer-{mode}.png"
    driver.save_screenshot(str(shot))
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    assert driver.find_element(By.ID, "gallery-view").is_displayed()
    logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not logs, logs
