"""The POPLIN (MBBL) suite against the simulator, on real steps."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from baselines.published import load_published, published_agent
from harness.suites import get_task
from harness.suites.poplin import MBBLTask, SwimmerObservation
from harness.suites.poplin_rewards import REWARDS
from harness.suites.wrappers import get_env_state, set_env_state

# task: (obs dim, v_x index, qpos slice start, z obs index, z_ref, c_h, bonus)
LOCOMOTION = {
    "hopper": (11, 5, 1, 0, 1.3, 3.0, 1.0),
    "walker2d": (17, 8, 1, 0, 1.3, 3.0, 1.0),
    "cheetah": (17, 8, 1, None, 0.0, 0.0, 0.0),
    "ant": (27, 13, 2, 0, 0.57, 3.0, 1.0),
}


# Table 4's H column as printed: the authors' code's counting (action terms), SVG(H) = H + 1.
TABLE4_PRINTED_H = {"ant": 3, "hopper": 3, "swimmer": 3, "cheetah": 4, "walker2d": 5, "pets-cheetah": 5}


def test_listed_dims_budgets_and_table4():
    expected = {
        "ant": (27, 200_000, 2),
        "hopper": (11, 200_000, 2),
        "swimmer": (9, 50_000, 2),
        "cheetah": (17, 200_000, 3),
        "walker2d": (17, 200_000, 4),
        "pets-cheetah": (19, 50_000, 4),
    }
    for name, (obs_dim, budget, horizon) in expected.items():
        spec = get_task("poplin", name)
        assert (spec.obs_dim, spec.budget, spec.paper.horizon, spec.eval_every) == (obs_dim, budget, horizon, 10_000)
    e = get_task("poplin", "swimmer").paper.entropy
    assert (e.init, e.final, e.decay) == (-2, -16, 16)


def test_paper_horizon_is_the_best_published_table2_row_and_table4_minus_one():
    """The preset's H (model transitions) is the H of the SAC-SVG(H) row with the best mean
    in the published Table 2 (baselines/published), and Table 4 prints it plus one."""
    table2 = load_published("poplin")
    table2 = table2.assign(agent=table2["method"].map(published_agent))
    svg_rows = table2[table2["agent"].map(lambda agent: agent is not None and agent[0] == "sac-svg")]
    for task, printed in TABLE4_PRINTED_H.items():
        rows = svg_rows[svg_rows["task"] == task]
        assert len(rows) == 6  # SAC-SVG(1..5) and SAC-SVG(10)
        best_horizon = rows.loc[rows["mean"].idxmax(), "agent"][1]
        assert get_task("poplin", task).paper.horizon == best_horizon == printed - 1, task


@pytest.mark.parametrize("name", list(LOCOMOTION))
def test_locomotion_reward_is_computed_from_the_pre_step_simulator_state(name):
    obs_dim, vx_index, skip, z_index, z_ref, c_h, bonus = LOCOMOTION[name]
    env = get_task("poplin", name).make_env()
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(30):
        data = env.unwrapped.data
        qpos, qvel = data.qpos.copy(), data.qvel.copy()
        np.testing.assert_array_equal(obs, np.concatenate([qpos[skip:], qvel]))  # velocities not clipped
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        expected = qvel[0] - 0.1 * float(np.sum(action.astype(np.float64) ** 2)) + bonus
        if z_index is not None:
            expected -= c_h * (qpos[skip + z_index] - z_ref) ** 2
        assert obs[vx_index] == qvel[0]
        assert reward == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert not terminated
        obs = next_obs


@pytest.mark.parametrize("name", ["ant", "hopper", "swimmer", "cheetah", "walker2d", "pets-cheetah"])
def test_no_episode_ends_before_1000_steps(name):
    env = get_task("poplin", name).make_env()
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for step in range(1, 1001):
        # full-force actions topple the walkers early: they must still not terminate
        _, _, terminated, truncated, _ = env.step(
            np.sign(rng.uniform(-1, 1, env.action_space.shape)).astype(np.float32)
        )
        assert not terminated
        assert truncated == (step == 1000)


def _swimmer_with_tip_site(tmp_path: Path) -> gym.Env:
    source = Path(gym.envs.mujoco.__file__).parent / "assets" / "swimmer.xml"
    xml = source.read_text()
    # a site at the head tip: 1.5 along the torso capsule (fromto "1.5 0 0 0 0 0")
    xml, count = re.subn(r'(<body name="torso"[^>]*>)', r'\1<site name="tip" pos="1.5 0 0" size="0.01"/>', xml)
    assert count == 1
    path = tmp_path / "swimmer_tip.xml"
    path.write_text(xml)
    return gym.make("Swimmer-v5", xml_file=str(path))


def test_swimmer_tip_velocity_matches_the_simulators_site(tmp_path):
    env = MBBLTask(_swimmer_with_tip_site(tmp_path), SwimmerObservation(), REWARDS["swimmer"])
    obs, _ = env.reset(seed=0)
    assert obs.shape == (9,) and obs[-1] == 0.0  # no velocity right after a reset
    base = env.unwrapped
    site = base.model.site("tip").id
    rng = np.random.default_rng(0)

    def site_x() -> float:  # positions from the current qpos (mj_step leaves them one substep old)
        mujoco.mj_kinematics(base.model, base.data)
        return float(base.data.site_xpos[site][0])

    for _ in range(50):
        tip_before = site_x()
        action = rng.uniform(-1, 1, 2)
        previous_velocity = obs[-1]
        obs, reward, *_ = env.step(action)
        tip_after = site_x()
        assert obs[-1] == pytest.approx((tip_after - tip_before) / base.dt, rel=1e-6, abs=1e-9)
        assert reward == pytest.approx(previous_velocity - 1e-4 * np.sum(action**2))


def test_pets_cheetah_observation_reward_and_reset_noise():
    env = get_task("poplin", "pets-cheetah").make_env()
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    assert np.all(np.abs(base.data.qpos - base.init_qpos) < 0.01)  # N(0, 0.001^2) noise
    assert obs[0] == 0.0
    x_before = base.data.qpos[0]
    action = np.full(6, 0.5, np.float32)
    obs, reward, *_ = env.step(action)
    q = base.data.qpos
    assert obs[0] == pytest.approx((q[0] - x_before) / base.dt)
    np.testing.assert_allclose(obs[1:4], [q[1], np.sin(q[2]), np.cos(q[2])])
    np.testing.assert_allclose(obs[4:10], q[3:9])
    np.testing.assert_allclose(obs[10:], base.data.qvel)
    assert reward == pytest.approx(obs[0] - 0.1 * 6 * 0.25)


@pytest.mark.parametrize("name", ["swimmer", "pets-cheetah"])
def test_env_state_round_trip_keeps_the_wrappers_memory(name):
    spec = get_task("poplin", name)
    env, copy = spec.make_env(), spec.make_env()
    env.reset(seed=0)
    copy.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(9):
        env.step(rng.uniform(-1, 1, spec.act_dim).astype(np.float32))
    set_env_state(copy, get_env_state(env))
    for _ in range(4):
        action = rng.uniform(-1, 1, spec.act_dim).astype(np.float32)
        (obs_a, reward_a, *_), (obs_b, reward_b, *_) = env.step(action), copy.step(action)
        np.testing.assert_array_equal(obs_a, obs_b)
        assert reward_a == reward_b
