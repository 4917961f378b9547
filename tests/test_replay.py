"""Replay sampling: sequences stay inside one episode, also after the ring wraps."""

from __future__ import annotations

import numpy as np
import pytest

from agents.replay import ReplayBuffer


def fill(buffer: ReplayBuffer, episode_lengths: list[int]) -> list[tuple[int, int]]:
    """Add episodes whose obs[0] is the episode number and obs[1] the time step in it.
    Returns (episode, t) per added transition."""
    added = []
    for episode, length in enumerate(episode_lengths):
        for t in range(length):
            last = t == length - 1
            buffer.add(
                np.array([episode, t], np.float32),
                np.array([t], np.float32),
                1.0,
                np.array([episode, t + 1], np.float32),
                terminated=last and episode % 2 == 0,
                truncated=last and episode % 2 == 1,
            )
            added.append((episode, t))
    return added


def assert_sequences_inside_episodes(states: np.ndarray, actions: np.ndarray) -> None:
    episodes = states[:, :, 0]
    assert np.all(episodes == episodes[:, :1]), "a sequence crossed an episode end"
    steps = states[:, :, 1]
    assert np.all(np.diff(steps, axis=1) == 1), "a sequence skipped or repeated a step"
    assert np.all(actions[:, :, 0] == steps[:, :-1])


@pytest.mark.parametrize("length", [1, 2, 3, 5])
def test_sequences_never_cross_an_episode_end(length):
    buffer = ReplayBuffer(2, 1, capacity=1000)
    fill(buffer, [3, 7, 1, 4, 10, 2, 6])
    batch = buffer.sample_sequences(512, length, np.random.default_rng(0))
    assert batch.states.shape == (512, length + 1, 2) and batch.actions.shape == (512, length, 1)
    assert_sequences_inside_episodes(batch.states, batch.actions)


def test_sequences_after_the_ring_wraps_never_cross_the_write_position():
    buffer = ReplayBuffer(2, 1, capacity=25)
    added = fill(buffer, [9, 9, 9, 9, 9])  # 45 transitions into 25 slots: wrapped
    assert len(buffer) == 25 and buffer.position == 45 % 25
    batch = buffer.sample_sequences(2000, 3, np.random.default_rng(1))
    assert_sequences_inside_episodes(batch.states, batch.actions)
    # the last 25 transitions are stored; a sequence may start only among them
    stored = set(added[-25:])
    starts = {(int(e), int(t)) for e, t in batch.states[:, 0, :]}
    assert starts <= stored


def test_sequence_starts_are_uniform_over_all_valid_starts_including_the_newest():
    buffer = ReplayBuffer(2, 1, capacity=30)
    fill(buffer, [12, 12, 12, 12])  # wrapped; the newest episode is the last 12
    valid = buffer.valid_sequence_starts(2)
    counts = {int(i): 0 for i in valid}
    rng = np.random.default_rng(2)
    for _ in range(50):
        batch = buffer.sample_sequences(400, 2, rng)
        for e, t in batch.states[:, 0, :]:
            slot = [i for i in valid if tuple(buffer.obs[i]) == (e, t)][0]
            counts[int(slot)] += 1
    frequencies = np.array(list(counts.values())) / 20_000
    assert np.all(frequencies > 0), "some valid start is never sampled"
    assert np.allclose(frequencies, 1 / len(valid), atol=0.02)
    newest = (buffer.position - 2) % buffer.capacity  # last start whose 2 steps are stored
    assert newest in counts and counts[newest] > 0


def test_no_valid_sequence_raises_a_clear_error():
    buffer = ReplayBuffer(2, 1, capacity=10)
    fill(buffer, [1, 1, 1])
    with pytest.raises(ValueError, match="no stored sequence"):
        buffer.sample_sequences(4, 2, np.random.default_rng(0))


def test_state_dict_round_trip_samples_identically():
    buffer = ReplayBuffer(2, 1, capacity=20)
    fill(buffer, [8, 8, 8])
    restored = ReplayBuffer(2, 1, capacity=20)
    restored.load_state_dict(buffer.state_dict())
    a = buffer.sample_sequences(64, 2, np.random.default_rng(5))
    b = restored.sample_sequences(64, 2, np.random.default_rng(5))
    np.testing.assert_array_equal(a.states, b.states)
    one, two = buffer.sample(32, np.random.default_rng(6)), restored.sample(32, np.random.default_rng(6))
    np.testing.assert_array_equal(one.next_obs, two.next_obs)
    np.testing.assert_array_equal(one.terminated, two.terminated)


def test_terminated_flag_is_kept_only_for_real_terminations():
    buffer = ReplayBuffer(2, 1, capacity=10)
    fill(buffer, [2, 2])  # episode 0 terminates, episode 1 is truncated
    assert buffer.terminated[:4].tolist() == [0, 1, 0, 0]
    assert buffer.episode_end[:4].tolist() == [False, True, False, True]
