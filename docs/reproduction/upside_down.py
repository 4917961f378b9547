"""Is a pets-cheetah policy running upright or on its back? For each run folder given, the
episodes of its latest checkpoint's last evaluation, replayed as `harness replay` does (the
deterministic policy, the evaluation's seed, so the returns are eval.csv's): each episode's
return and the share of its steps with the torso upside down, cos(pitch) < 0 (observation
index 3 of the POPLIN pets-cheetah observation, TASKS.md). An episode is upside down when
more than half of its steps are.

    python docs/reproduction/upside_down.py R/a-pets-cheetah/poplin/pets-cheetah/*/seed_*
"""

import sys

import numpy as np

from harness.playback import load_policy
from harness.suites import get_task

COS_PITCH = 3  # PetsCheetahObservation: [velocity, z, sin(pitch), cos(pitch), ...]


def episodes(run: str) -> list[tuple[float, float]]:
    """(return, share of steps upside down) of each episode of the last evaluation."""
    policy = load_policy(run, "latest")
    config = policy.config
    env = get_task(config.suite, config.task).make_env(
        render_size=None, terminal_alive_bonus=config.env.terminal_alive_bonus
    )
    played = []
    for episode in range(config.trainer.eval_episodes):
        obs, _ = env.reset(seed=policy.default_seed if episode == 0 else None)
        cos_pitch, total, done = [], 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy.agent.act(obs, deterministic=True))
            cos_pitch.append(obs[COS_PITCH])
            total += float(reward)
            done = terminated or truncated
        played.append((total, float(np.mean(np.array(cos_pitch) < 0))))
    env.close()
    return played


for run in sys.argv[1:]:
    played = episodes(run)
    flipped = sum(share > 0.5 for _, share in played)
    mean = np.mean([total for total, _ in played])
    detail = ", ".join(f"{total:.0f} ({share:.0%})" for total, share in played)
    print(f"{run}: mean {mean:.1f}; {flipped} of {len(played)} episodes upside down; return (share upside down): {detail}")
