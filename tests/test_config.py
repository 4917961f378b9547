"""Configuration: presets, per-task resolution, overrides, labels."""

from __future__ import annotations

import pytest

from harness.config import (
    ConfigError,
    agent_override_warnings,
    build_run_config,
    from_yaml,
    override_label,
    scientific_differences,
    to_dict,
    to_yaml,
)


def test_paper_preset_is_table3_with_table4_per_task():
    config = build_run_config("mbpo", "walker2d", "sac-svg", 0)
    a = config.agent
    assert (a.hidden_dim, a.hidden_depth, a.step_batch_size, a.seq_batch_size) == (512, 2, 512, 1024)
    assert (a.actor_lr, a.critic_lr, a.temperature_lr, a.model_lr) == (1e-4, 1e-4, 5e-4, 1e-3)
    assert (a.init_temperature, a.critic_tau, a.discount, a.num_step_updates, a.num_seq_updates) == (
        0.1,
        0.005,
        0.99,
        1,
        4,
    )
    assert (a.gru_layers, a.gru_hidden_dim, a.log_std_min, a.log_std_max) == (2, 512, -5.0, 2.0)
    assert a.horizon == 2
    assert (a.target_entropy.init, a.target_entropy.final, a.target_entropy.decay) == (-2, -3, 64)
    assert config.trainer.total_steps == 2_000_000 and config.trainer.eval_every == 25_000
    assert a.model_free_actor_warmup_steps == 0 and not a.termination_pos_weight
    assert a.mve_horizon_counting == "paper"  # an MVE critic's target at H is eq. (3)'s Q_{0:H}


def test_authors_code_preset_uses_the_codes_defaults_and_schedules():
    a = build_run_config("mbpo", "hopper", "sac-svg", 0, preset="authors-code").agent
    assert (a.hidden_depth, a.step_batch_size, a.seq_batch_size, a.temperature_lr) == (4, 1024, 512, 1e-4)
    assert a.model_free_actor_warmup_steps == 10_000 and a.termination_pos_weight
    assert a.dynamics_decoder == "linear" and a.actor_objective_average
    assert a.mve_horizon_counting == "authors-code"  # an MVE critic's target at H is Q_{0:H+1}
    assert a.horizon == 2  # the code's `horizon: 3` counts action terms: SVG(2)
    assert (a.target_entropy.init, a.target_entropy.final, a.target_entropy.decay) == (0, -2, 0.03125)


def test_sac_is_horizon_zero_without_a_model_whatever_the_task():
    a = build_run_config("mbpo", "ant", "sac", 0).agent
    assert a.horizon == 0 and not a.actor_expansion and not a.critic_expansion
    assert (a.target_entropy.init, a.target_entropy.final) == (2, -4)  # same schedule as SAC-SVG


def test_overrides_win_over_preset_and_task_and_flags_set_budget():
    config = build_run_config(
        "mbpo",
        "hopper",
        "sac-svg",
        3,
        preset="quick",
        steps=777,
        overrides=[
            "agent.horizon=5",
            "agent.step_batch_size=64",
            "agent.target_entropy.init=1",
            "agent.target_entropy.final=-1",
        ],
    )
    assert config.agent.horizon == 5 and config.agent.step_batch_size == 64
    assert config.trainer.total_steps == 777 and config.seed == 3
    assert config.agent.replay_capacity == 777
    assert (config.agent.target_entropy.init, config.agent.target_entropy.final) == (1, -1)


@pytest.mark.parametrize(
    "override",
    [
        "agent.horizon=-1",
        "agent.dynamics_decoder=transformer",
        "agent.target_entropy.init=1",
        "trainer.eval_every=0",
        "agent.mve_horizon_counting=feinberg",
    ],
)
def test_invalid_values_are_refused(override):
    with pytest.raises(ConfigError):
        build_run_config("mbpo", "hopper", "sac-svg", 0, overrides=[override])


def test_an_unknown_mve_horizon_counting_is_refused_in_one_line_and_is_moot_without_mve():
    with pytest.raises(ConfigError) as refused:
        build_run_config("mbpo", "hopper", "mve", 0, overrides=["agent.mve_horizon_counting=author-code"])
    assert str(refused.value) == (
        "unknown agent.mve_horizon_counting value 'author-code' (did you mean "
        "'authors-code'?); valid agent.mve_horizon_counting values: paper, authors-code"
    )
    assert agent_override_warnings("mve", ["agent.mve_horizon_counting=authors-code"]) == []
    assert agent_override_warnings("sac-svg", ["agent.mve_horizon_counting=authors-code"]) == [
        "override 'agent.mve_horizon_counting=authors-code': agent sac-svg has no MVE critic, "
        "so agent.mve_horizon_counting changes nothing"
    ]


def test_label_names_scientific_overrides_only():
    assert override_label(["agent.horizon=3"]) == "horizon=3"
    assert override_label(["agent.horizon=3", "trainer.progress=false", "agent.device=cuda"]) == "horizon=3"
    assert override_label(["agent.target_entropy.init=1", "agent.target_entropy.final=-2"]) == "init=1,final=-2"
    assert override_label(["agent.name=a/b c"]) == "name=a_b_c"


def test_yaml_round_trip_and_differences_ignore_where_a_run_executes():
    config = build_run_config("classic", "inverted-pendulum", "sac-svg", 0, preset="quick")
    again = from_yaml(to_yaml(config))
    assert to_dict(again) == to_dict(config)
    moved = build_run_config(
        "classic",
        "inverted-pendulum",
        "sac-svg",
        0,
        preset="quick",
        out="elsewhere",
        wandb="disabled",
        overrides=["trainer.progress=false"],
    )
    assert scientific_differences(to_dict(config), to_dict(moved)) == []
    longer = build_run_config("classic", "inverted-pendulum", "sac-svg", 0, preset="quick", steps=99)
    assert scientific_differences(to_dict(config), to_dict(longer))[0].startswith("agent.replay_capacity")
