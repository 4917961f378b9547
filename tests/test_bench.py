"""`harness bench` end to end on a tiny configuration, and the per-process core shares."""

from __future__ import annotations

import json

import pytest
import torch

from harness.batch_bench import batch_sizes
from harness.process import core_share, set_torch_threads
from tests.test_cli import run_cli

TINY_BENCH = [
    "bench",
    "--agent",
    "sac",
    "--agent",
    "sac-svg",
    "--preset",
    "quick",
    "--task",
    "classic/inverted-pendulum",
    "--updates",
    "2",
    "--loop-steps",
    "3",
    "agent.hidden_dim=16",
    "agent.model_hidden_dim=16",
    "agent.gru_hidden_dim=16",
    "agent.step_batch_size=8",
    "agent.seq_batch_size=8",
    "trainer.seed_steps=50",
]


def test_bench_writes_every_measurement_as_json_and_markdown(tmp_path):
    code, stdout, stderr = run_cli(
        *TINY_BENCH, "--json", str(tmp_path / "b.json"), "--markdown", str(tmp_path / "b.md")
    )
    assert code == 0, stderr
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["matmul_peak_gflops"] > 0 and data["machine"]["cores"] >= 1 and data["machine"]["commit"]
    rows = {row["agent"]: row for row in data["rows"]}
    assert set(rows) == {"sac", "sac-svg"}
    for row in rows.values():
        assert row["update_ms_min"] <= row["update_ms_median"] <= row["update_ms_max"]
        assert row["gflop_per_step"] > 0 and 0 < row["peak_fraction"] < 1
        assert row["loop_steps_per_second"] > 0
        assert sum(row["breakdown"].values()) == pytest.approx(1.0)
    # the model-based agent spends time in its dynamics model, SAC has none; SVG does more work
    assert rows["sac-svg"]["breakdown"]["dynamics"] > 0 and rows["sac"]["breakdown"]["dynamics"] == 0
    assert rows["sac-svg"]["gflop_per_step"] > rows["sac"]["gflop_per_step"]
    table = (tmp_path / "b.md").read_text()
    assert "| sac-svg | quick | classic/inverted-pendulum | cpu, 1 |" in table and "matmul peak" in table
    assert "| sac | quick |" in stdout  # rows are printed as they finish


def test_bench_parallel_measures_runs_alone_and_together():
    code, stdout, stderr = run_cli(
        "bench",
        "--agent",
        "sac",
        "--preset",
        "quick",
        "--task",
        "classic/inverted-pendulum",
        "--updates",
        "1",
        "--loop-steps",
        "3",
        "--parallel",
        "2",
        "trainer.seed_steps=50",
    )
    assert code == 0, stderr
    row = stdout.strip().splitlines()[-1].split("|")
    assert row[1].strip() == "sac" and row[4].strip() == "2"
    alone, share, together = (float(row[i]) for i in (6, 7, 8))
    assert alone > 0 and share > 0 and together > 0


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--agent", "sca"], "unknown agent 'sca' (did you mean 'sac'?)"),
        (["--preset", "papr"], "unknown preset 'papr' (did you mean 'paper'?)"),
        (["--task", "mbpo/hoper"], "unknown task 'hoper' (did you mean 'hopper'?)"),
        (["--task", "mbpoo/hopper"], "unknown suite 'mbpoo'"),
        (["--agent", "sac", "agent.compile=fast"], "unknown agent.compile mode 'fast'"),
        (["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "nonsense"], "--device"),
        (["--json", "/no/such/folder/b.json"], "does not exist"),
    ],
)
def test_bench_refuses_bad_input_in_one_line_before_timing(arguments, message):
    code, stdout, stderr = run_cli("bench", *arguments)
    assert code == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert stdout == ""


def test_core_shares_are_equal_disjoint_blocks():
    cores = [0, 1, 2, 3, 4, 5, 6, 7]
    assert [core_share(k, 2, cores) for k in range(2)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [core_share(k, 3, cores) for k in range(3)] == [[0, 1], [2, 3], [4, 5]]
    assert core_share(0, 1, cores) == cores
    assert [core_share(k, 4, [0, 1]) for k in range(4)] == [[0], [1], [0], [1]]  # more runs than cores: shared


def test_set_torch_threads_sets_at_least_one():
    before = torch.get_num_threads()
    try:
        assert set_torch_threads(2) == 2 == torch.get_num_threads()
        assert set_torch_threads(0) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_bench_batch_seeds_times_seeds_batched_against_lone_runs(tmp_path):
    code, stdout, stderr = run_cli(
        *TINY_BENCH[:9],
        "--loop-steps",
        "2",
        "--batch-seeds",
        "1",
        "--batch-seeds",
        "2",
        "--jobs",
        "2",
        "--json",
        str(tmp_path / "b.json"),
        *TINY_BENCH[13:],
    )
    assert code == 0, stderr
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [(row["agent"], row["seeds"]) for row in rows] == [("sac", 1), ("sac", 2), ("sac-svg", 1), ("sac-svg", 2)]
    for row in rows:
        assert row["batched_steps_per_second"] > 0 and row["lone_steps_per_second"] > 0
        assert row["speedup"] == pytest.approx(row["batched_steps_per_second"] / row["lone_steps_per_second"])
    assert "| sac-svg | quick | classic/inverted-pendulum | 2 | 1 | 2 |" in stdout  # rows printed as they finish
    code, _, stderr = run_cli(*TINY_BENCH[:9], "--jobs", "2")
    assert code == 2 and "--jobs applies to --batch-seeds" in stderr


def test_bench_batch_seeds_splits_the_batched_side_into_batches_at_once(tmp_path):
    """``--batches 2``: 3 seeds as batches of 2 and 1 started together (harness run
    --batch-seeds 2 --jobs 2), their rates summed into one row that says 2 batches."""
    code, stdout, stderr = run_cli(
        "bench",
        "--agent",
        "sac",
        *TINY_BENCH[5:9],
        "--loop-steps",
        "2",
        "--batch-seeds",
        "3",
        "--batches",
        "2",
        "--jobs",
        "2",
        "--json",
        str(tmp_path / "b.json"),
        *TINY_BENCH[13:],
    )
    assert code == 0, stderr
    (row,) = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert (row["seeds"], row["batches"]) == (3, 2)
    assert row["batched_steps_per_second"] > 0 and row["lone_steps_per_second"] > 0
    assert "| sac | quick | classic/inverted-pendulum | 3 | 2 | 2 |" in stdout
    code, _, stderr = run_cli(*TINY_BENCH[:9], "--batches", "2")
    assert code == 2 and "--batches applies to --batch-seeds" in stderr


def test_batch_sizes_follow_harness_runs_batching():
    assert batch_sizes(8, 2) == [4, 4]
    assert batch_sizes(8, 3) == [3, 3, 2]
    assert batch_sizes(4, 3) == [2, 2]  # ceil(4 / 3) = 2 seeds a batch: two batches
    assert batch_sizes(2, 4) == [1, 1]
    assert batch_sizes(5, 1) == [5]
