"""Is a pets-cheetah policy running upright or on its back? For each run folder given, one
episode of its latest checkpoint's deterministic policy (first reset seeded 12345): the
return and the share of steps with the torso upside down, cos(pitch) < 0 (observation index
3 of the POPLIN pets-cheetah observation, TASKS.md).

    python docs/reproduction/upside_down.py R/a-pets-cheetah/poplin/pets-cheetah/*/seed_*
"""

import sys

import numpy as np

from harness.playback import load_policy
from harness.suites import get_task

COS_PITCH = 3  # PetsCheetahObservation: [velocity, z, sin(pitch), cos(pitch), ...]

for run in sys.argv[1:]:
    policy = load_policy(run, "latest")
    config = policy.config
    env = get_task(config.suite, config.task).make_env(render_size=None,
                                                       terminal_alive_bonus=config.env.terminal_alive_bonus)
    obs, _ = env.reset(seed=12345)
    cos_pitch, total, done = [], 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy.agent.act(obs, deterministic=True))
        cos_pitch.append(obs[COS_PITCH])
        total += float(reward)
        done = terminated or truncated
    env.close()
    print(f"{run}: return {total:8.1f}, upside down {np.mean(np.array(cos_pitch) < 0):6.1%} of {len(cos_pitch)} steps")
