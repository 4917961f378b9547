"""Suites: the registry matches TASKS.md and the real environments."""

from __future__ import annotations

import numpy as np
import pytest

from harness.suites import SUITES, UnknownNameError, get_task
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
    expected = {"hopper": ((0, -1, 0.5), 1_000_000), "walker2d": ((-2, -3, 64), 2_000_000),
                "ant": ((2, -4, 1), 2_000_000), "halfcheetah": ((-2, -2, None), 2_000_000),
                "humanoid": ((-1, -1, None), 5_000_000)}
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
