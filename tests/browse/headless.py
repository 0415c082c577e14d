"""Headless Debian chromium driven by Selenium, for the explorer's browser test and benchmark.

Uses the system browser and driver (``apt-get install chromium chromium-driver``): nothing is
downloaded. ``selenium`` is a test dependency (``pip install -e '.[test]'``), imported on use.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS: tuple[str, ...] = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000")


def missing() -> str | None:
    """Why no browser can be driven here, or ``None`` when chromium, its driver and selenium exist."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        return f"no browser: {CHROMIUM} or {CHROMEDRIVER} missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def chromium(profile: str | Path) -> Any:
    """A Selenium driver of headless chromium with a fresh user-data dir ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


def wait_for(driver: Any, script: str, timeout: float = 30.0) -> Any:
    """Poll ``script`` (JavaScript returning a value) until it is truthy; its value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError(f"timed out waiting for: {script}")
