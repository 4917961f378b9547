"""The report's evaluation videos: per (suite, task, experiment), the video of the best
seed's last evaluation.

The trainer records the first episode of each evaluation at env step n in
``videos/step_<n>.mp4`` (``harness.contract.video_path``). The seed shown is the one with the
highest final evaluation return among the experiment's runs that recorded a video at their
last evaluation (eval.csv's last row), finished runs before unfinished ones; where none did,
a run's latest video stands in, and the caption says so, as it says when the best seed is
not the one shown. A video of at most ``EMBED_MAX_BYTES`` is embedded in the HTML; a larger
one is copied into a folder beside the report (``copy_linked_videos``) and shown as its
middle frame linking to the copy. An unreadable video is a warning, never an error.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import re
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.figures import image_data_uri
from reports.mp4 import UnreadableVideo, VideoFrame, middle_frame
from reports.runs import Run

EMBED_MAX_BYTES = 2_000_000  # larger videos are linked, so a report with many tasks stays openable
LINKED_FOLDER_SUFFIX = "_videos"  # report.html's linked videos go to report_videos/
SAFE_NAME_LENGTH = 120  # characters of a copied video's name before the .mp4, far below file systems' 255


@dataclass(frozen=True)
class Candidate:
    """A run that recorded videos, and the video standing for its last evaluation."""

    run: Run
    step: int  # env step of the evaluation the video shows
    path: Path

    @property
    def of_last_evaluation(self) -> bool:
        return self.step == self.run.last_eval_step


def final_return(run: Run) -> float | None:
    """The return a seed is ranked by: summary.json's final_eval_return, else eval.csv's last."""
    value = run.final_eval_return if run.final_eval_return is not None else run.final_return
    return value if value is not None and math.isfinite(value) else None


def _seed_rank(run: Run) -> tuple:
    """Sort key of the best seed first: finished, then with a return, then the highest, then the lowest seed."""
    value = final_return(run)
    return (not run.complete, value is None, -(value or 0.0), run.seed, str(run.path))


def last_evaluation_video(run: Run) -> Candidate | None:
    """The video of the run's last evaluation; else its latest video; None when it recorded none."""
    if not run.videos:
        return None
    step = run.last_eval_step if run.last_eval_step in run.videos else max(run.videos)
    return Candidate(run, step, run.videos[step])


def ranked_candidates(runs: list[Run]) -> list[Candidate]:
    """The videos that may stand for an experiment, best first: those of a last evaluation
    before the others, each group best seed first (``_seed_rank``)."""
    candidates = [c for c in map(last_evaluation_video, runs) if c is not None]
    return sorted(candidates, key=lambda c: (not c.of_last_evaluation, _seed_rank(c.run)))


def safe_file_name(suite: str, task: str, experiment: str, seed: int, step: int) -> str:
    """``<suite>-<task>-<experiment>-seed_<n>-step_<n>.mp4`` with only letters, digits and
    ``._=-`` (the rest become ``_``); a long name is cut and keeps a hash of the whole."""
    text = f"{suite}-{task}-{experiment}-seed_{seed}-step_{step}"
    safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("._-") or "video"
    if len(safe) > SAFE_NAME_LENGTH:
        safe = f"{safe[: SAFE_NAME_LENGTH - 9]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    return safe + ".mp4"


def linked_video_folder(output: Path) -> str:
    """The folder, beside ``output``, that holds the report's linked videos: ``<stem>_videos``."""
    return Path(output).stem + LINKED_FOLDER_SUFFIX


def _return_text(value: float | None) -> str:
    return "no return" if value is None else f"return {value:,.1f}"


def _size_text(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.0f} kB"


def _caption(chosen: Candidate, runs: list[Run]) -> tuple[str, list[str]]:
    """What is shown (seed, its final return and step, the video's step) and, where it is not
    the plain choice (the best seed's last evaluation), why."""
    run = chosen.run
    last = run.last_eval_step
    best = min(runs, key=_seed_rank)
    caption = (
        (f"best of {len(runs)} seeds: " if best is run and len(runs) > 1 else "")
        + f"seed {run.seed} ({run.status}), {_return_text(final_return(run))}"
        + (f" at step {last:,}" if last is not None else "")
        + f"; video of the evaluation at step {chosen.step:,}"
    )
    notes = []
    if best is not run:
        notes.append(
            f"the best seed, {best.seed} ({best.status}, {_return_text(final_return(best))}), has no "
            f"readable video of its last evaluation: showing seed {run.seed}"
        )
    if not chosen.of_last_evaluation:
        notes.append(
            "no video of its last evaluation"
            + (f" (step {last:,})" if last is not None else " (eval.csv has no row)")
            + f": showing its latest, step {chosen.step:,}"
        )
    return caption, notes


def _entry(chosen: Candidate, frame: VideoFrame, runs: list[Run], folder: str, file_name: str) -> dict[str, Any]:
    """One experiment's video as the template shows it: embedded, or a poster linking to the copy."""
    size = chosen.path.stat().st_size
    caption, notes = _caption(chosen, runs)
    embedded = size <= EMBED_MAX_BYTES
    return {
        "experiment": chosen.run.experiment,
        "seed": chosen.run.seed,
        "step": chosen.step,
        "last_eval_step": chosen.run.last_eval_step,
        "final_return": final_return(chosen.run),
        "source": str(chosen.path),
        "bytes": size,
        "width": frame.width,
        "height": frame.height,
        "caption": caption,
        "notes": notes,
        "size_text": _size_text(size),
        "embedded_uri": (
            "data:video/mp4;base64," + base64.b64encode(chosen.path.read_bytes()).decode("ascii") if embedded else None
        ),
        "file_name": None if embedded else file_name,
        "href": None if embedded else f"{urllib.parse.quote(folder)}/{urllib.parse.quote(file_name)}",
        "poster_uri": None if embedded else image_data_uri(frame.pixels),
    }


def _experiment_entry(runs: list[Run], folder: str, used_names: set[str]) -> tuple[dict[str, Any], list[str]]:
    """The entry of one experiment's runs (which recorded videos) and the warnings of its
    unreadable videos; the first readable candidate wins."""
    warnings = []
    for candidate in ranked_candidates(runs):
        try:
            frame = middle_frame(candidate.path)
        except UnreadableVideo as error:
            warnings.append(f"{candidate.path}: video unreadable ({error})")
            continue
        run = candidate.run
        name = base = safe_file_name(run.suite, run.task, run.experiment, run.seed, candidate.step)
        copy = 1
        while name in used_names:  # two labels that differ only in characters replaced by _
            copy += 1
            name = base.removesuffix(".mp4") + f"-{copy}.mp4"
        used_names.add(name)
        return _entry(candidate, frame, runs, folder, name), warnings
    return {
        "experiment": runs[0].experiment,
        "caption": "",
        "embedded_uri": None,
        "href": None,
        "notes": ["no readable video (see the warnings)"],
    }, warnings


def video_sections(runs: list[Run], folder: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The report's Videos section: one group per (suite, task) whose runs recorded videos,
    holding one entry per experiment; and the warnings of unreadable videos. ``folder`` is
    where linked videos will be, relative to the report (``linked_video_folder``)."""
    experiments: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        experiments.setdefault((run.suite, run.task, run.experiment), []).append(run)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    warnings: list[str] = []
    used_names: set[str] = set()
    for (suite, task, _experiment), members in sorted(experiments.items()):
        if not any(run.videos for run in members):
            continue
        entry, unreadable = _experiment_entry(members, folder, used_names)
        warnings += unreadable
        groups.setdefault((suite, task), {"title": f"{suite} / {task}", "entries": []})["entries"].append(entry)
    return list(groups.values()), warnings


def video_records(sections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The videos shown, for the report's JSON numbers: who, which step, which file, embedded or linked."""
    return [
        {
            "title": group["title"],
            "experiment": entry["experiment"],
            "seed": entry.get("seed"),
            "step": entry.get("step"),
            "last_eval_step": entry.get("last_eval_step"),
            "final_return": entry.get("final_return"),
            "source": entry.get("source"),
            "linked": entry["href"],
            "notes": entry["notes"],
        }
        for group in sections
        for entry in group["entries"]
    ]


def copy_linked_videos(sections: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Copy every linked (not embedded) video of ``sections`` into ``folder`` (made only when
    one is linked), replacing a copy of an earlier report; returns the copies' paths."""
    copies = []
    for group in sections:
        for entry in group["entries"]:
            if not entry.get("file_name"):
                continue
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / entry["file_name"]
            partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                shutil.copyfile(entry["source"], partial)
                os.replace(partial, target)  # a reader never sees half a video
            finally:
                partial.unlink(missing_ok=True)
            copies.append(target)
    return copies
