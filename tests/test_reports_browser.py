"""The HTML report in a real browser: headless Chromium, offline, driven by selenium.

Chromium and its driver are Debian packages (`.ci/run` installs them); selenium is told
their paths, so its manager never downloads anything.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reports.html import write_report
from tests.reports_fixture import write_fixture

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000"]

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="chromium / chromedriver not installed (apt-get install chromium chromium-driver; .ci/run does)")


def test_report_renders_in_headless_chromium_with_no_console_error_and_visible_figures(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (the dev extra has it)")
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    output = tmp_path / "report.html"
    write_report([write_fixture(tmp_path / "runs")], output, reps=100)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.get(output.as_uri())
        assert driver.execute_script("return document.readyState") == "complete"
        assert driver.title == "svgbench report"
        figures = driver.execute_script("""
            return Array.from(document.querySelectorAll('img, svg')).map(e => {
                const box = e.getBoundingClientRect();
                return {tag: e.tagName, width: box.width, height: box.height,
                        natural: e.tagName === 'IMG' ? e.naturalWidth * e.naturalHeight : 1,
                        complete: e.tagName === 'IMG' ? e.complete : true};
            });""")
        assert len(figures) >= 8
        for figure in figures:
            assert figure["complete"] and figure["natural"] > 0, figure
            assert figure["width"] > 0 and figure["height"] > 0, figure
        errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        table = driver.find_element("css selector", "table.comparison")
        assert "20.00 ± 10.00" in table.text
        assert "<script>alert(1)</script>" in driver.find_element("tag name", "body").text  # shown as text
    finally:
        driver.quit()
