"""The report in a real browser: headless Chromium opens every page from disk.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/install_chromium.sh``) and
the ``selenium`` package (dev extra); skipped with the reason printed when either is missing.
A screenshot of each page is kept as a test artifact and its path printed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from regionset.pipelines.tools.report.build import write_report
from tests.pipelines.report_synthetic import build_synthetic

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1300,1600")
PAGES = ("index.html", "distributions.html", "clusters.html", "images.html")

pytestmark = pytest.mark.browser


def _skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: run .ci/install_chromium.sh (Debian chromium + chromium-driver)"
    if not CHROMEDRIVER.exists():
        return f"{CHROMEDRIVER} is missing: run .ci/install_chromium.sh"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    return None


@pytest.fixture(scope="module")
def driver():
    reason = _skip_reason()
    if reason:
        print(f"SKIP browser test: {reason}")
        pytest.skip(reason)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="regionset-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=str(CHROMEDRIVER)))
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


BROKEN_IMAGES_JS = """
return Array.from(document.images)
  .filter(i => !i.complete || i.naturalWidth === 0)
  .map(i => i.getAttribute('src'));"""


def test_report_renders_in_chromium(driver, tmp_path_factory):
    out = build_synthetic(tmp_path_factory.mktemp("browser") / "out")
    index = write_report(out, clusters=2, per_cluster=4, images=4)
    artifacts = Path(tempfile.mkdtemp(prefix="regionset-report-screenshots-"))
    for name in PAGES:
        driver.get((index.parent / name).as_uri())
        assert driver.execute_script("return document.readyState") == "complete"
        n_images = driver.execute_script("return document.images.length")
        assert n_images > 0 or name == "index.html", f"{name} shows no image"
        assert driver.execute_script(BROKEN_IMAGES_JS) == [], f"{name} has broken images"
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], f"{name}: console errors {errors}"
        shot = artifacts / name.replace(".html", ".png")
        assert driver.save_screenshot(str(shot))
        print(f"screenshot of {name}: {shot}")
    links = driver.execute_script("return Array.from(document.links).map(a => a.href)")
    assert links and all(h.startswith("file://") for h in links)


def test_checks_catch_a_broken_page(driver, tmp_path):
    """The checks above are not vacuous: a missing image and a script error are both reported."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img src="missing.png" alt="x">'
                    "<script>undefinedFunction()</script></body></html>")
    driver.get(page.as_uri())
    assert driver.execute_script(BROKEN_IMAGES_JS) == ["missing.png"]
    assert any(e["level"] == "SEVERE" for e in driver.get_log("browser"))
