"""The HTML report in a real browser: headless Chromium, offline, driven by selenium.

Chromium and its driver are Debian packages (`.ci/run` installs them); selenium is told
their paths, so its manager never downloads anything.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from reports import videos
from reports.html import write_report
from tests.reports_fixture import (
    VIDEO_HEIGHT,
    VIDEO_WIDTH,
    write_fixture,
    write_run,
    write_search_beside_runs,
    write_study,
    write_video,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="chromium / chromedriver not installed (apt-get install chromium chromium-driver; .ci/run does)",
)


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[object]:
    """A headless Chromium driven by selenium, quit on exit."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (the dev extra has it)")
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415 - selenium is optional: importorskip above

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def visible_figures(driver) -> list[dict]:
    """Every image and svg of the page with its box, decoded size and load state."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('img, svg')).map(e => {
            const box = e.getBoundingClientRect();
            return {tag: e.tagName, width: box.width, height: box.height,
                    natural: e.tagName === 'IMG' ? e.naturalWidth * e.naturalHeight : 1,
                    complete: e.tagName === 'IMG' ? e.complete : true};
        });""")


def assert_page_is_sound(driver, min_figures: int) -> None:
    """The page loaded, every figure decoded and shows, and the console logged no error."""
    assert driver.execute_script("return document.readyState") == "complete"
    assert driver.title == "svgbench report"
    figures = visible_figures(driver)
    assert len(figures) >= min_figures
    for figure in figures:
        assert figure["complete"] and figure["natural"] > 0, figure
        assert figure["width"] > 0 and figure["height"] > 0, figure
    errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []


def test_report_renders_in_headless_chromium_with_no_console_error_and_visible_figures(tmp_path):
    output = tmp_path / "report.html"
    write_report([write_fixture(tmp_path / "runs")], output, reps=100)
    with chromium(tmp_path / "profile") as driver:
        driver.get(output.as_uri())
        assert_page_is_sound(driver, min_figures=8)
        table = driver.find_element("css selector", "table.comparison")
        assert "20.00 ± 10.00" in table.text
        assert "<script>alert(1)</script>" in driver.find_element("tag name", "body").text  # shown as text


def test_split_rows_warnings_and_the_search_panel_show_in_chromium(tmp_path):
    runs = tmp_path / "runs"
    for steps in (3000, 5000):
        write_run(runs / f"budget_{steps}", "classic", "inverted-pendulum", "sac", 0, [0, 5, 10], total_steps=steps)
    write_study(runs / "search")
    output = tmp_path / "report.html"
    write_report([runs], output, reps=50)
    with chromium(tmp_path / "profile") as driver:
        driver.get(output.as_uri())
        assert_page_is_sound(driver, min_figures=4)
        assert "runs of different budgets (3,000, 5,000 steps)" in driver.find_element("id", "warnings").text
        table = driver.find_element("css selector", "table.comparison").text
        assert "sac · 3,000 steps (H=0)" in table and "sac · 5,000 steps (H=0)" in table
        search = driver.find_element("id", "search")
        assert search.is_displayed()
        assert driver.find_element("css selector", "table.schedules").text.splitlines()[1:] == [
            "best trial 1 2 -4 0.125 75 sac-svg+init=2,final=-4,decay=0.125",
            "Table 4 (paper) -1 -1 constant",
        ]
        best = driver.find_element("css selector", "table.trials tr.best-trial")
        assert best.is_displayed() and best.text.startswith("1 ★")


LONG_LABEL = "sac+hidden_dim=16,step_batch_size=16,seed_steps=100,eval_every=100,eval_episodes=2,torch_threads=1"


def table_boxes(driver) -> list[dict]:
    """Every table's width, and its scrolling container's box and widths (null without one)."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('table')).map(t => {
            const wrapper = t.closest('.wide');
            const box = wrapper ? wrapper.getBoundingClientRect() : null;
            return {cls: t.className, width: t.offsetWidth,
                    wrapper: wrapper ? {right: box.right, client: wrapper.clientWidth, scroll: wrapper.scrollWidth,
                                        overflow: getComputedStyle(wrapper).overflowX} : null};
        });""")


def test_wide_tables_wrap_or_scroll_inside_the_page_never_cut(tmp_path):
    runs = write_search_beside_runs(tmp_path / "runs")
    write_run(runs, "classic", "inverted-pendulum", LONG_LABEL, 0, [0, 5, 10])
    output = tmp_path / "report.html"
    write_report([runs], output, reps=50)
    with chromium(tmp_path / "profile") as driver:
        driver.get(output.as_uri())
        assert_page_is_sound(driver, min_figures=6)
        page = "return [document.documentElement.scrollWidth, window.innerWidth]"
        scroll_width, inner_width = driver.execute_script(page)
        assert scroll_width <= inner_width  # at 1400 px nothing reaches past the page's right edge
        runs_table = next(t for t in table_boxes(driver) if t["cls"] == "runs")
        assert runs_table["width"] <= runs_table["wrapper"]["client"]  # the long label wraps at its commas
        label = driver.find_element("xpath", "//table[@class='runs']//td[contains(., 'torch_threads=1')]")
        assert label.text.replace("\n", "") == LONG_LABEL and label.size["height"] > 30  # whole, on several lines
        driver.set_window_size(700, 1000)  # too narrow for the runs table: it scrolls inside the page
        scroll_width, inner_width = driver.execute_script(page)
        assert scroll_width <= inner_width
        boxes = {t["cls"]: t for t in table_boxes(driver) if t["cls"] in ("runs", "comparison", "trials")}
        assert set(boxes) == {"runs", "comparison", "trials"}
        for box in boxes.values():
            assert box["wrapper"]["overflow"] == "auto" and box["wrapper"]["right"] <= inner_width
        assert boxes["runs"]["wrapper"]["scroll"] > boxes["runs"]["wrapper"]["client"]  # reachable by scrolling


def video_states(driver, timeout: float = 10.0) -> list[dict]:
    """Every video element's state once each has its metadata (or an error), or at ``timeout``."""
    script = """return Array.from(document.querySelectorAll('video')).map(v => ({
        readyState: v.readyState, width: v.videoWidth, height: v.videoHeight, duration: v.duration,
        error: v.error ? v.error.code + ' ' + v.error.message : null}));"""
    deadline = time.monotonic() + timeout
    while True:
        states = driver.execute_script(script)
        if all(s["readyState"] >= 1 or s["error"] for s in states) or time.monotonic() > deadline:
            return states
        time.sleep(0.05)


def test_evaluation_videos_play_in_chromium_embedded_or_as_a_linked_poster(tmp_path, monkeypatch):
    """Chromium decodes the trainer's H.264 mp4 (an embedded data URI), plays it, and the
    linked video's poster shows and its link reaches the copy beside the report."""
    runs = tmp_path / "runs"
    small = write_video(write_run(runs, "classic", "inverted-pendulum", "sac", 0, [0, 5, 10]), 300)
    big = write_video(
        write_run(runs, "classic", "inverted-pendulum", "sac-svg", 0, [0, 5, 10], horizon=2),
        300,
        width=2 * VIDEO_WIDTH,
        height=2 * VIDEO_HEIGHT,
    )
    monkeypatch.setattr(videos, "EMBED_MAX_BYTES", (small.stat().st_size + big.stat().st_size) // 2)
    assert small.stat().st_size < videos.EMBED_MAX_BYTES < big.stat().st_size
    output = tmp_path / "report.html"
    write_report([runs], output, reps=50)
    with chromium(tmp_path / "profile") as driver:
        driver.get(output.as_uri())
        (state,) = video_states(driver)
        assert state == {
            "readyState": state["readyState"],
            "width": VIDEO_WIDTH,
            "height": VIDEO_HEIGHT,
            "duration": pytest.approx(0.4, abs=0.05),
            "error": None,
        }
        played = driver.execute_async_script("""const done = arguments[arguments.length - 1];
            const video = document.querySelector('video');
            video.play().then(() => setTimeout(() => done({time: video.currentTime, error: null}), 250),
                              error => done({time: video.currentTime, error: String(error)}));""")
        assert played["error"] is None and played["time"] > 0, played
        link = driver.find_element("css selector", "a.poster-link")
        poster = link.find_element("tag name", "img")
        assert driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", poster) == [
            2 * VIDEO_WIDTH,
            2 * VIDEO_HEIGHT,
        ]
        copy = Path(urllib.parse.unquote(urllib.parse.urlparse(link.get_attribute("href")).path))
        assert copy.parent == tmp_path / "report_videos" and copy.read_bytes() == big.read_bytes()
        assert_page_is_sound(driver, min_figures=2)
