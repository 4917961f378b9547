"""Run-directory CSV logs across versions: a resumed run never writes under a stale header."""

from __future__ import annotations

import csv

import pytest

from harness.contract import TRAIN_COLUMNS, CsvLog


def test_a_log_of_an_older_version_is_rewritten_under_the_new_header(tmp_path):
    path = tmp_path / "train.csv"
    old = TRAIN_COLUMNS[:-2]  # the two dynamics-clip columns came later
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(old)
        writer.writerow(["1000", "0", "12.5"] + [""] * (len(old) - 3))
    log = CsvLog(path, TRAIN_COLUMNS)
    log.append({"step": 2000, "episode": 1, "dynamics_clipped": 0.25})
    log.close()
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == TRAIN_COLUMNS
    assert (rows[0]["step"], rows[0]["episode_return"], rows[0]["dynamics_clipped"]) == ("1000", "12.5", "")
    assert (rows[1]["step"], rows[1]["dynamics_clipped"]) == ("2000", "0.25")


def test_a_log_with_a_column_this_version_does_not_write_is_refused_untouched(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"step,mystery\r\n1,2\r\n")
    with pytest.raises(ValueError, match="mystery"):
        CsvLog(path, TRAIN_COLUMNS)
    assert path.read_bytes() == b"step,mystery\r\n1,2\r\n"
