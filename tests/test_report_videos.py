"""The report's evaluation videos (reports.videos): which seed and which evaluation are shown,
embedded or linked by size, the linked copy beside the report, the poster frame, and runs
whose videos are missing or unreadable."""

from __future__ import annotations

import base64
import io
import re
import struct
import urllib.parse
from pathlib import Path

import matplotlib.image
import pytest

from harness.contract import video_path
from reports import videos
from reports.build import build_report
from reports.html import render, write_report
from reports.load import load_experiments
from reports.mp4 import UnreadableVideo, middle_frame
from reports.videos import video_sections
from tests.reports_fixture import SCRIPT_NAME, VIDEO_FRAMES, VIDEO_HEIGHT, VIDEO_WIDTH, write_run, write_video

REPS = 50
PENDULUM = ("classic", "inverted-pendulum")


def sections_of(root: Path) -> tuple[dict[str, dict], list[str]]:
    """experiment -> its video entry, and the video warnings, of the runs under ``root``."""
    runs, _ = load_experiments([root])
    groups, warnings = video_sections(runs, "report_videos")
    return {entry["experiment"]: entry for group in groups for entry in group["entries"]}, warnings


def png_bytes(uri: str) -> bytes:
    assert uri.startswith("data:image/png;base64,")
    return base64.b64decode(uri.split(",", 1)[1])


def png_size(uri: str) -> tuple[int, int]:
    """(width, height) of a PNG data URI, read from its IHDR chunk."""
    png = png_bytes(uri)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def linked_hrefs(html: str) -> list[str]:
    return re.findall(r'<a class="poster-link" href="([^"]+)"', html)


@pytest.fixture
def seeds(tmp_path) -> Path:
    """sac seeds 0, 1, 2 with final returns 10, 20, 30 at step 300 (seed 2 the best)."""
    for seed, final in enumerate((10, 20, 30)):
        write_run(tmp_path, *PENDULUM, "sac", seed, [0, final / 2, final])
    return tmp_path


def run_folder(root: Path, seed: int, agent: str = "sac") -> Path:
    return root / PENDULUM[0] / PENDULUM[1] / agent / f"seed_{seed}"


# ---------------------------------------------------------------- which video


def test_the_best_seeds_video_of_its_last_evaluation_is_shown(seeds):
    for seed in (0, 1, 2):
        write_video(run_folder(seeds, seed), 300)
    write_video(run_folder(seeds, 0), 200)
    entry = sections_of(seeds)[0]["sac"]
    assert (entry["seed"], entry["step"], entry["final_return"]) == (2, 300, 30.0)
    assert entry["source"] == str(video_path(run_folder(seeds, 2), 300))
    assert entry["caption"] == (
        "best of 3 seeds: seed 2 (done), return 30.0 at step 300; video of the evaluation at step 300"
    )
    assert entry["notes"] == []


def test_the_last_evaluations_video_wins_over_a_later_file(seeds):
    """A video past eval.csv's last row (written, then the row lost to a crash) is not the last evaluation's."""
    for step in (100, 300, 400):
        write_video(run_folder(seeds, 2), step)
    entry = sections_of(seeds)[0]["sac"]
    assert (entry["seed"], entry["step"]) == (2, 300)


def test_a_best_seed_without_a_video_of_its_last_evaluation_yields_to_the_next_and_says_so(seeds):
    write_video(run_folder(seeds, 2), 200)  # the best seed: only an earlier evaluation
    write_video(run_folder(seeds, 0), 300)
    write_video(run_folder(seeds, 1), 300)
    entry = sections_of(seeds)[0]["sac"]
    assert (entry["seed"], entry["step"]) == (1, 300)
    assert entry["notes"] == [
        "the best seed, 2 (done, return 30.0), has no readable video of its last evaluation: showing seed 1"
    ]


def test_with_no_video_of_any_last_evaluation_the_best_seeds_latest_video_is_shown(seeds):
    write_video(run_folder(seeds, 2), 100)
    write_video(run_folder(seeds, 2), 200)
    write_video(run_folder(seeds, 1), 200)
    entry = sections_of(seeds)[0]["sac"]
    assert (entry["seed"], entry["step"]) == (2, 200)
    assert entry["notes"] == ["no video of its last evaluation (step 300): showing its latest, step 200"]


def test_a_finished_seed_comes_before_a_better_unfinished_one(seeds):
    write_run(seeds, *PENDULUM, "sac", 3, [0, 50, 99], status="running")  # lock gone: interrupted
    for seed in (1, 3):
        write_video(run_folder(seeds, seed), 300)
    entry = sections_of(seeds)[0]["sac"]
    assert entry["seed"] == 1


def test_each_experiment_gets_its_own_video_and_tasks_without_videos_none(seeds):
    write_run(seeds, *PENDULUM, "sac-svg", 0, [0, 1, 2], horizon=2)
    write_run(seeds, "classic", "inverted-double-pendulum", "sac", 0, [0, 1, 2])
    write_video(run_folder(seeds, 0, "sac-svg"), 300)
    write_video(run_folder(seeds, 1), 300)
    runs, _ = load_experiments([seeds])
    groups, warnings = video_sections(runs, "report_videos")
    assert [group["title"] for group in groups] == ["classic / inverted-pendulum"]
    assert [(e["experiment"], e["seed"]) for e in groups[0]["entries"]] == [("sac", 1), ("sac-svg", 0)]
    assert warnings == []


# ---------------------------------------------------------------- embedded or linked


def test_a_video_up_to_the_threshold_is_embedded_byte_for_byte(seeds, monkeypatch):
    source = write_video(run_folder(seeds, 2), 300)
    monkeypatch.setattr(videos, "EMBED_MAX_BYTES", source.stat().st_size)
    entry = sections_of(seeds)[0]["sac"]
    assert entry["href"] is None and entry["poster_uri"] is None
    prefix = "data:video/mp4;base64,"
    assert entry["embedded_uri"].startswith(prefix)
    assert base64.b64decode(entry["embedded_uri"][len(prefix) :]) == source.read_bytes()
    html = render(build_report([seeds], reps=REPS))
    assert '<video controls muted loop playsinline preload="metadata"' in html
    assert f'src="{entry["embedded_uri"]}"' in html


def test_a_bigger_video_is_linked_and_shown_as_its_middle_frame_of_the_videos_size(seeds, monkeypatch):
    source = write_video(run_folder(seeds, 2), 300)
    monkeypatch.setattr(videos, "EMBED_MAX_BYTES", source.stat().st_size - 1)
    entry = sections_of(seeds)[0]["sac"]
    assert entry["embedded_uri"] is None
    assert entry["href"] == "report_videos/classic-inverted-pendulum-sac-seed_2-step_300.mp4"
    assert png_size(entry["poster_uri"]) == (VIDEO_WIDTH, VIDEO_HEIGHT) == (entry["width"], entry["height"])
    poster = matplotlib.image.imread(io.BytesIO(png_bytes(entry["poster_uri"])), format="png")
    grey = poster[-1, -1, 0] * 255  # outside the red quarter: 25 * frame index
    assert abs(grey - 25 * (VIDEO_FRAMES // 2)) <= 12, grey  # the middle frame, not the first (0) or last (225)


def test_the_linked_copy_lies_beside_the_report_where_its_link_points_also_when_written_twice(seeds, monkeypatch):
    source = write_video(run_folder(seeds, 2), 300, width=96, height=64)
    monkeypatch.setattr(videos, "EMBED_MAX_BYTES", 10)
    output = seeds / "out dir" / "my report#1.html"  # characters a URL must escape
    for _ in range(2):
        content = write_report([seeds], output, reps=REPS)
        (href,) = linked_hrefs(output.read_text())
        copy = output.parent / urllib.parse.unquote(href)
        assert copy.parent == output.parent / "my report#1_videos"
        assert copy.read_bytes() == source.read_bytes()
        assert [p.name for p in copy.parent.iterdir()] == [copy.name]  # no partial copy left behind
        assert content["numbers"]["videos"][0]["linked"] == href


def test_nothing_is_copied_when_every_video_is_embedded(seeds):
    write_video(run_folder(seeds, 2), 300)
    output = seeds / "report.html"
    write_report([seeds], output, reps=REPS)
    assert not (seeds / "report_videos").exists()
    assert linked_hrefs(output.read_text()) == []


def test_copied_file_names_are_safe_and_bounded():
    name = videos.safe_file_name("classic", "inverted-pendulum", SCRIPT_NAME + "+x=1 y/z", 3, 300)
    assert re.fullmatch(r"[A-Za-z0-9._=-]+\.mp4", name) and name.endswith("-seed_3-step_300.mp4")
    long = videos.safe_file_name("mbpo", "hopper", "sac-svg+" + "horizon=3," * 40, 0, 1000)
    other = videos.safe_file_name("mbpo", "hopper", "sac-svg+" + "horizon=3," * 41, 0, 1000)
    assert len(long) <= videos.SAFE_NAME_LENGTH + len(".mp4") and long != other


# ---------------------------------------------------------------- no videos, broken videos


def test_runs_without_videos_give_a_note_and_no_folder(seeds):
    output = seeds / "report.html"
    content = write_report([seeds], output, reps=REPS)
    assert content["videos"] == [] and content["numbers"]["videos"] == []
    assert "No run recorded evaluation videos" in output.read_text()
    assert not (seeds / "report_videos").exists()


def test_an_unreadable_video_is_a_warning_and_the_next_seed_is_shown(seeds):
    good = write_video(run_folder(seeds, 2), 300)
    truncated = write_video(run_folder(seeds, 1), 300)
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    not_a_video = video_path(run_folder(seeds, 2), 300)
    not_a_video.write_bytes(b"not an mp4")
    write_video(run_folder(seeds, 0), 300)
    entries, warnings = sections_of(seeds)
    assert entries["sac"]["seed"] == 0
    assert [w.split(": video unreadable")[0] for w in warnings] == [str(not_a_video), str(truncated)]
    content = build_report([seeds], reps=REPS)
    assert all(w in content["warnings"] for w in warnings)
    assert "video unreadable" in render(content)


def test_an_experiment_with_only_unreadable_videos_says_so_without_failing(seeds):
    video_path(run_folder(seeds, 2), 300).parent.mkdir()
    video_path(run_folder(seeds, 2), 300).write_bytes(b"")
    entries, warnings = sections_of(seeds)
    assert entries["sac"]["notes"] == ["no readable video (see the warnings)"] and len(warnings) == 1
    assert "no readable video" in render(build_report([seeds], reps=REPS))


def test_middle_frame_reads_size_and_refuses_what_is_not_a_video(tmp_path):
    source = write_video(tmp_path, 100, width=80, height=60)
    frame = middle_frame(source)
    assert (frame.width, frame.height, frame.pixels.shape) == (80, 60, (60, 80, 3))
    assert frame.duration == pytest.approx(VIDEO_FRAMES / 25, abs=0.05)
    with pytest.raises(UnreadableVideo):
        middle_frame(tmp_path / "absent.mp4")
