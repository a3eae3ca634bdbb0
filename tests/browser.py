"""Headless Chromium for the web page's tests: Debian's `chromium` and `chromium-driver` driven by
Selenium (browsers cannot be downloaded here, so nothing fetches one; Selenium is given both paths).

`.ci/run` installs both (through setup.sh --dev); elsewhere the tests are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# What a machine with a closed network needs: no background fetches (they would be refused, many at a
# time), no sandbox (the tests may run as root), no GPU.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-features=Translate,MediaRouter", "--lang=en-US")


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).exists() and not shutil.which(Path(path).name):
            return f"{path} not found: install Debian's {package} (bash setup.sh --dev does, as root)"
    return None


def start_chromium(download_dir: Path, width: int = 1280, height: int = 1000, env: dict | None = None):
    """Chromium through chromedriver; `env` adds to the browser's environment (e.g. HOME, whose
    ~/.pki/nssdb holds the certificates a Linux user trusts)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER, env={**os.environ, **env} if env else None)
    driver = webdriver.Chrome(service=service, options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


def console_errors(driver) -> list[str]:
    """The page's console errors since the last call (a CSP violation, a failed script or asset, ...)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait_for_download(folder: Path, suffix: str, timeout_s: float = 20) -> Path:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        done = [p for p in folder.iterdir() if p.name.endswith(suffix)]
        if done and not any(p.name.endswith(".crdownload") for p in folder.iterdir()):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} file arrived in {folder}: {sorted(p.name for p in folder.iterdir())}")


def full_page_screenshot(driver, path: Path) -> None:
    """A PNG of the whole page, not just the window (Chromium's DevTools protocol)."""
    import base64

    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
