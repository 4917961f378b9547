"""Suites: the registry matches TASKS.md and the real environments."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from harness.suites import SUITES, UnknownNameError, get_task
from harness.suites.base import EntropySchedule, TaskHyperparameters
from harness.suites.wrappers import get_env_state, set_env_state

ALL_TASKS = [(suite, name) for suite, tasks in SUITES.items() for name in tasks]


@pytest.mark.parametrize(("suite", "name"), ALL_TASKS)
def test_declared_dims_match_the_environment(suite, name):
    spec = get_task(suite, name)
    env = spec.make_env()
    obs, _ = env.reset(seed=0)
    assert obs.shape == (spec.obs_dim,)
    assert env.action_space.shape == (spec.act_dim,)
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)


def test_mbpo_table4_and_budgets():
    expected = {
        "hopper": ((0, -1, 0.5), 1_000_000),
        "walker2d": ((-2, -3, 64), 2_000_000),
        "ant": ((2, -4, 1), 2_000_000),
        "halfcheetah": ((-2, -2, None), 2_000_000),
        "humanoid": ((-1, -1, None), 5_000_000),
    }
    for name, (schedule, budget) in expected.items():
        spec = get_task("mbpo", name)
        e = spec.paper.entropy
        assert (e.init, e.final, e.decay) == schedule
        assert spec.paper.horizon == 2 and spec.budget == budget and spec.eval_every == 25_000


def test_humanoid_actions_are_rescaled_to_its_control_range():
    env = get_task("mbpo", "humanoid").make_env()
    env.reset(seed=0)
    env.step(np.ones(17, dtype=np.float32))
    np.testing.assert_allclose(env.unwrapped.data.ctrl, 0.4, rtol=1e-6)


def test_terminal_alive_bonus_option_pays_on_the_terminal_step():
    def terminal_reward(bonus: bool) -> float:
        env = get_task("mbpo", "hopper").make_env(terminal_alive_bonus=bonus)
        env.reset(seed=0)
        action = np.ones(3, dtype=np.float32)
        while True:
            _, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                assert terminated
                return float(reward)

    assert terminal_reward(True) == pytest.approx(terminal_reward(False) + 1.0)


def test_mbpo_walker_uses_the_v2_model_with_two_foot_frictions():
    env = get_task("mbpo", "walker2d").make_env()
    frictions = sorted({round(float(f), 3) for f in env.unwrapped.model.geom_friction[:, 0]})
    assert 0.9 in frictions and 1.9 in frictions


def test_env_state_round_trip_continues_exactly():
    spec = get_task("mbpo", "ant")  # ant reads derived quantities (body positions) in step()
    env, copy = spec.make_env(), spec.make_env()
    env.reset(seed=3)
    copy.reset(seed=99)
    rng = np.random.default_rng(0)
    for _ in range(7):
        env.step(rng.uniform(-1, 1, 8).astype(np.float32))
    set_env_state(copy, get_env_state(env))
    for _ in range(5):
        action = rng.uniform(-1, 1, 8).astype(np.float32)
        a, b = env.step(action), copy.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]
    np.testing.assert_array_equal(env.reset()[0], copy.reset()[0])


def test_unknown_names_list_the_valid_choices():
    with pytest.raises(UnknownNameError, match="valid suites: mbpo, poplin, classic"):
        get_task("nope", "hopper")
    with pytest.raises(UnknownNameError, match="valid tasks: hopper"):
        get_task("mbpo", "swimmer")


# Every task's facts as they were when the suites were rewritten with keyword arguments
# (issue 8, item 7): env, obs_dim, act_dim, budget, eval_every, can_terminate,
# comparison_steps, paper (horizon, (H_init, H_final, beta)), authors-code (horizon, schedule).
# Types matter too (an int stays an int): they show in `harness list --json`.
TASK_TABLE = {
    ("mbpo", "hopper"): ("Hopper-v5", 11, 3, 1_000_000, 25_000, True, (125_000,), 2, (0, -1, 0.5), 2, (0, -2, 0.03125)),
    ("mbpo", "walker2d"): (
        "Walker2d-v5",
        17,
        6,
        2_000_000,
        25_000,
        True,
        (300_000,),
        2,
        (-2, -3, 64),
        2,
        (-2, -8, 0.0625),
    ),
    ("mbpo", "halfcheetah"): (
        "HalfCheetah-v5",
        17,
        6,
        2_000_000,
        25_000,
        False,
        (400_000,),
        2,
        (-2, -2, None),
        2,
        (-2, -3, 1),
    ),
    ("mbpo", "ant"): ("Ant-v5", 27, 8, 2_000_000, 25_000, True, (300_000,), 2, (2, -4, 1), 2, (0, -2, 4)),
    ("mbpo", "humanoid"): (
        "Humanoid-v5",
        45,
        17,
        5_000_000,
        25_000,
        True,
        (300_000,),
        2,
        (-1, -1, None),
        2,
        (-2, -2, 1),
    ),
    ("poplin", "ant"): ("Ant-v5", 27, 8, 200_000, 10_000, False, (), 2, (1, -4, 0.0625), 2, (1, -3, 0.5)),
    ("poplin", "hopper"): ("Hopper-v5", 11, 3, 200_000, 10_000, False, (), 2, (1, 1, None), 2, (1, 0, 32)),
    ("poplin", "swimmer"): ("Swimmer-v5", 9, 2, 50_000, 10_000, False, (), 2, (-2, -16, 16), 2, (-2, -32, 0.125)),
    ("poplin", "cheetah"): ("HalfCheetah-v5", 17, 6, 200_000, 10_000, False, (), 3, (0, -4, 1), 2, (-1, -4, 1)),
    ("poplin", "walker2d"): ("Walker2d-v5", 17, 6, 200_000, 10_000, False, (), 4, (1, 1, None), 2, (-2, -16, 0.015625)),
    ("poplin", "pets-cheetah"): ("HalfCheetah-v5", 19, 6, 50_000, 10_000, False, (), 4, (-2, -4, 0.0625), 2, (0, 0, 0)),
    ("classic", "inverted-pendulum"): (
        "InvertedPendulum-v5",
        4,
        1,
        15_000,
        1_000,
        True,
        (),
        2,
        (-1.0, -1.0, None),
        2,
        (-1.0, -1.0, None),
    ),
    ("classic", "inverted-double-pendulum"): (
        "InvertedDoublePendulum-v5",
        9,
        1,
        50_000,
        5_000,
        True,
        (),
        2,
        (-1.0, -1.0, None),
        2,
        (-1.0, -1.0, None),
    ),
}


def _facts(spec):
    p, a = spec.paper.entropy, spec.authors_code.entropy
    return (
        spec.env_id,
        spec.obs_dim,
        spec.act_dim,
        spec.budget,
        spec.eval_every,
        spec.can_terminate,
        spec.comparison_steps,
        spec.paper.horizon,
        (p.init, p.final, p.decay),
        spec.authors_code.horizon,
        (a.init, a.final, a.decay),
    )


def test_task_table_is_unchanged():
    assert sorted(TASK_TABLE) == sorted(ALL_TASKS)
    for key, expected in TASK_TABLE.items():
        actual = _facts(get_task(*key))
        assert actual == expected, key
        assert repr(actual) == repr(expected), key  # and the same types (0 is not 0.0)


def test_task_facts_are_keyword_only():
    with pytest.raises(TypeError):
        EntropySchedule(1, -4, 0.0625)
    with pytest.raises(TypeError):
        TaskHyperparameters(2, EntropySchedule(init=1, final=-4, decay=0.0625))


_IMPORT_PROBE = """
import json, sys
import harness.suites, harness.suites.base
spec = harness.suites.get_task("mbpo", "humanoid")
summaries = [t.summary() for tasks in harness.suites.SUITES.values() for t in tasks.values()]
heavy = [m for m in ("gymnasium", "mujoco", "torch") if m in sys.modules]
env = harness.suites.get_task("poplin", "swimmer").make_env()
obs, _ = env.reset(seed=0)
print(json.dumps({"before_env": heavy, "obs_dim": len(obs), "spec_obs_dim": spec.obs_dim,
                  "after_env": "gymnasium" in sys.modules and "mujoco" in sys.modules}))
"""


def test_task_facts_load_neither_the_simulator_nor_torch():
    """Reports read task facts through ``harness.suites``: importing it, and reading every
    task, must not load gymnasium, MuJoCo or torch; building an env still works (and loads
    the simulator then)."""
    done = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["before_env"] == []
    assert result["spec_obs_dim"] == 45
    assert result["obs_dim"] == 9 and result["after_env"]
