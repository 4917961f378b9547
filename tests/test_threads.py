"""A run's torch threads (harness.process.choose_threads) and OpenMP's passive wait policy:
the order of precedence, the size rule on the presets, what `harness run` says and records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.cli import threads_line
from harness.commands.run import compile_line, idle_cores_hint
from harness.config import ConfigError, build_run_config
from harness.launch import plan_jobs
from harness.process import PARALLEL_MATMUL_MACS, choose_threads, largest_update_matmul, prepare_training_process

TWO_CORES, EIGHT_CORES = [0, 1], list(range(8))


def preset_agent(preset: str, agent: str = "sac-svg"):
    return build_run_config("mbpo", "hopper", agent, 0, preset=preset).agent


def test_each_source_beats_the_ones_after_it():
    agent = preset_agent("paper")
    everything = {"OMP_NUM_THREADS": "3", "SLURM_CPUS_PER_TASK": "4"}
    configured = choose_threads(5, agent, EIGHT_CORES, everything)
    assert (configured.count, configured.reason, configured.by_user) == (5, "trainer.torch_threads=5", True)
    omp = choose_threads(None, agent, EIGHT_CORES, everything)
    assert (omp.count, omp.reason, omp.by_user) == (3, "OMP_NUM_THREADS=3", True)
    slurm = choose_threads(None, agent, EIGHT_CORES, {"SLURM_CPUS_PER_TASK": "4"})
    assert (slurm.count, slurm.reason, slurm.by_user) == (4, "SLURM_CPUS_PER_TASK=4", False)
    by_size = choose_threads(None, agent, EIGHT_CORES, {})
    assert (by_size.count, by_size.by_user) == (8, False) and by_size.reason.startswith("large matmuls")


def test_small_networks_take_one_thread_and_large_matmuls_one_per_core_of_the_share():
    for agent in ("sac", "sac-svg", "sac-svg-ensemble"):
        quick = choose_threads(None, preset_agent("quick", agent), TWO_CORES, {})
        assert quick.count == 1 and quick.reason.startswith("small networks"), agent
        assert choose_threads(None, preset_agent("quick", agent), EIGHT_CORES, {}).count == 1
        for preset in ("paper", "authors-code"):
            assert choose_threads(None, preset_agent(preset, agent), TWO_CORES, {}).count == 2, (agent, preset)
            assert choose_threads(None, preset_agent(preset, agent), [1], {}).count == 1  # a share of one core
    assert largest_update_matmul(preset_agent("quick")) == 256 * 128**2 < PARALLEL_MATMUL_MACS
    assert largest_update_matmul(preset_agent("paper")) == 1024 * 512**2 > PARALLEL_MATMUL_MACS


def test_the_harness_never_gives_more_threads_than_the_share_but_the_user_may():
    agent = preset_agent("paper")
    slurm = choose_threads(None, agent, TWO_CORES, {"SLURM_CPUS_PER_TASK": "16"})
    assert slurm.count == 2 and "SLURM_CPUS_PER_TASK=16" in slurm.reason and "2-core share" in slurm.reason
    assert choose_threads(None, agent, TWO_CORES, {"OMP_NUM_THREADS": "4"}).count == 4
    assert choose_threads(4, agent, TWO_CORES, {}).count == 4


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_a_bad_environment_value_is_passed_over_and_the_reason_says_so(value):
    agent = preset_agent("quick")
    choice = choose_threads(None, agent, TWO_CORES, {"OMP_NUM_THREADS": value})
    assert choice.count == 1 and choice.reason.startswith("small networks")
    assert f"OMP_NUM_THREADS={value!r} ignored: not a positive integer" in choice.reason
    slurm_next = choose_threads(None, agent, TWO_CORES, {"OMP_NUM_THREADS": value, "SLURM_CPUS_PER_TASK": "2"})
    assert slurm_next.count == 2 and slurm_next.reason.startswith("SLURM_CPUS_PER_TASK=2; OMP_NUM_THREADS=")
    assert choose_threads(None, agent, TWO_CORES, {"OMP_NUM_THREADS": ""}).reason.startswith("small networks")


def test_prepare_training_process_sets_the_chosen_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        choice = prepare_training_process(None, preset_agent("quick"))  # the trainer's call
        assert choice.count == 1 == torch.get_num_threads() and choice.reason.startswith("small networks")
        assert prepare_training_process(2).count == 2 == torch.get_num_threads()  # harness bench --threads 2
        with pytest.raises(ValueError):
            prepare_training_process(None)
    finally:
        torch.set_num_threads(before)


def test_torch_threads_below_one_is_refused():
    with pytest.raises(ConfigError, match="trainer.torch_threads must be at least 1"):
        build_run_config(
            "classic", "inverted-pendulum", "sac", 0, preset="quick", overrides=["trainer.torch_threads=0"]
        )


def test_on_slurm_the_line_says_the_node_chooses_unless_the_user_fixed_the_count(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    jobs = plan_jobs(
        "classic",
        ["inverted-pendulum"],
        "sac",
        [0],
        "quick",
        "submitit",
        300,
        str(tmp_path),
        "disabled",
        ["launcher.cpus_per_task=4"],
    )
    line = threads_line(jobs, "submitit")
    assert "on its SLURM node" in line and "--cpus 4" in line and "trainer.torch_threads=N" in line
    fixed = plan_jobs(
        "classic",
        ["inverted-pendulum"],
        "sac",
        [0],
        "quick",
        "submitit",
        300,
        str(tmp_path),
        "disabled",
        ["trainer.torch_threads=2"],
    )
    assert threads_line(fixed, "submitit") == "each run uses 2 torch threads (trainer.torch_threads=2)"


def batched_jobs(tmp_path, seeds: int, batch_seeds: int, *overrides: str) -> list:
    return plan_jobs(
        "classic",
        ["inverted-pendulum"],
        "sac",
        list(range(seeds)),
        "quick",
        "local",
        300,
        str(tmp_path),
        "disabled",
        [f"launcher.batch_seeds={batch_seeds}", "agent.device=cpu", *overrides],
    )


def long_jobs(tmp_path, steps: int, *overrides: str) -> list:
    return plan_jobs(
        "mbpo",
        ["hopper"],
        "sac",
        [0],
        "quick",
        "local",
        steps,
        str(tmp_path),
        "disabled",
        ["agent.device=cpu", *overrides],
    )


def test_harness_run_says_when_auto_compiles_each_runs_update(tmp_path, monkeypatch):
    monkeypatch.setattr("agents.compile.shutil.which", lambda name: f"/usr/bin/{name}")
    assert compile_line(long_jobs(tmp_path, 60_000)) == (
        "each run compiles its whole update with torch.compile (agent.compile=auto: 60000 env steps on a CPU; "
        "10-40 s at its start, seconds once cached); set agent.compile=off to change"
    )
    assert compile_line(long_jobs(tmp_path, 20_000)) == ""  # too short: auto chose off, nothing to say
    assert compile_line(long_jobs(tmp_path, 60_000, "agent.compile=off")) == ""
    assert compile_line(long_jobs(tmp_path, 60_000, "agent.compile=update")) == ""  # the user's own choice
    assert compile_line(long_jobs(tmp_path, 60_000, "launcher.batch_seeds=2")) == ""  # a batch runs eagerly
    monkeypatch.setattr("agents.compile.shutil.which", lambda name: None)
    assert compile_line(long_jobs(tmp_path, 60_000)) == ""  # no C++ compiler: off


def test_the_compile_line_counts_the_runs_that_compile_when_budgets_differ(tmp_path, monkeypatch):
    """A suite's tasks have their own budgets: here 15,000 and 50,000 env steps."""
    monkeypatch.setattr("agents.compile.shutil.which", lambda name: f"/usr/bin/{name}")
    tasks = ["inverted-pendulum", "inverted-double-pendulum"]
    for order in (tasks, tasks[::-1]):
        jobs = plan_jobs("classic", order, "sac", [0, 1], "paper", "local", None, str(tmp_path), "disabled", [])
        assert compile_line(jobs) == (
            "2 of the 4 runs compile their whole update with torch.compile (agent.compile=auto: those of "
            "50000 env steps or more, on a CPU; 10-40 s at its start, seconds once cached); "
            "set agent.compile=off to change"
        )


def test_a_batch_that_leaves_cores_idle_on_a_cpu_gets_a_hint_to_split_it(tmp_path, monkeypatch):
    """8 seeds as one batch of the quick preset take one thread (small networks): on 2 cores
    one stays idle, and the hint names the split that fills them; on 1 core, with the batch
    already split over the cores, or with the threads fixed by the user, no hint."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    one_batch = batched_jobs(tmp_path, 8, 8)
    assert idle_cores_hint(one_batch, cores=[0, 1]) == (
        "1 of the 2 cores stays idle; on a CPU, --batch-seeds 4 --jobs 2 trains these 8 seeds as 2 batches at "
        'once, faster than one batch (docs/performance.md, "Seeds batched")'
    )
    assert "--batch-seeds 2 --jobs 4" in idle_cores_hint(one_batch, cores=[0, 1, 2, 3])
    assert idle_cores_hint(one_batch, cores=[0]) == ""
    assert idle_cores_hint(batched_jobs(tmp_path, 8, 4, "launcher.jobs=2"), cores=[0, 1]) == ""
    assert idle_cores_hint(batched_jobs(tmp_path, 8, 8, "trainer.torch_threads=1"), cores=[0, 1]) == ""
    assert idle_cores_hint(batched_jobs(tmp_path, 1, 1), cores=[0, 1]) == ""  # nothing to split
    assert "; on a CPU, --jobs 2 without --batch-seeds trains these 2 seeds as lone runs at once" in (
        idle_cores_hint(batched_jobs(tmp_path, 2, 2), cores=[0, 1])
    )


# ------------------------------------------------------------------ OpenMP's wait policy

# Records OMP_WAIT_POLICY when torch is first imported (libgomp reads it then, once), then
# starts a child as `harness run --jobs` and the search workers do (spawn) and prints its value.
WAIT_POLICY_PROBE = """
import multiprocessing, os, sys

if __name__ == "__main__":
    seen = []

    class Watch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" and not seen:
                seen.append(os.environ.get("OMP_WAIT_POLICY"))

    sys.meta_path.insert(0, Watch())
    import harness.cli
    import torch  # harness.cli loads no torch itself (``harness --help`` stays fast); a run does
    assert "torch" in sys.modules
    print("at torch import:", seen[0], flush=True)
    child = multiprocessing.get_context("spawn").Process(target=os.system, args=("echo child: $OMP_WAIT_POLICY",))
    child.start()
    child.join()
"""


def probe_wait_policy(tmp_path: Path, **settings: str) -> str:
    script = tmp_path / "probe.py"
    script.write_text(WAIT_POLICY_PROBE)
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | settings
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_processes_that_train_have_passive_openmp_waits_unless_the_user_set_one(tmp_path):
    assert probe_wait_policy(tmp_path).split("\n")[:2] == ["at torch import: PASSIVE", "child: PASSIVE"]
    assert probe_wait_policy(tmp_path, OMP_WAIT_POLICY="ACTIVE").split("\n")[:2] == [
        "at torch import: ACTIVE",
        "child: ACTIVE",
    ]


# ------------------------------------------------------------------ harness run, end to end


def tiny_sac_run(out: Path, *overrides: str, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    """`harness run` of a tiny SAC with ``env`` added to the environment; its summary.json."""
    command = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--suite",
        "classic",
        "--task",
        "inverted-pendulum",
        "--agent",
        "sac",
        "--preset",
        "quick",
        "--steps",
        "300",
        "--out",
        str(out),
        "--wandb",
        "disabled",
        "trainer.seed_steps=100",
        "trainer.eval_every=300",
        "trainer.eval_episodes=1",
        "trainer.progress=false",
        "agent.hidden_dim=16",
        "agent.step_batch_size=16",
        *overrides,
    ]
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK")}
    done = subprocess.run(
        command, capture_output=True, text=True, env=base | {"WANDB_SILENT": "true"} | env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    [summary] = list(out.rglob("summary.json"))
    return done, json.loads(summary.read_text())


def thread_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "torch thread" in line]


def test_harness_run_takes_omp_num_threads_says_so_once_and_records_it(tmp_path):
    done, summary = tiny_sac_run(tmp_path, OMP_NUM_THREADS="1")
    assert summary["torch_threads"] == 1 and summary["threads_reason"] == "OMP_NUM_THREADS=1"
    assert thread_lines(done.stderr) == ["harness: each run uses 1 torch thread (OMP_NUM_THREADS=1)"]
    # a run of 300 steps is too short for agent.compile=auto to compile its update
    assert summary["compile_mode"] == "off"
    assert summary["compile_reason"] == "agent.compile=auto: 300 env steps, too few to pay for compiling (from 50000)"
    assert "compiles its whole update" not in done.stderr


def test_trainer_torch_threads_beats_omp_num_threads(tmp_path):
    done, summary = tiny_sac_run(tmp_path, "trainer.torch_threads=1", OMP_NUM_THREADS="2")
    assert summary["torch_threads"] == 1 and summary["threads_reason"] == "trainer.torch_threads=1"
    assert thread_lines(done.stderr) == ["harness: each run uses 1 torch thread (trainer.torch_threads=1)"]
