"""Evaluation videos and ``harness replay``, end to end as a user drives them.

Rendering needs an off-screen OpenGL back-end (Debian's libosmesa6 on a CPU machine;
.ci/run installs it); ffprobe (Debian's ffmpeg) checks the files as a player would. Tests
that need one skip with the reason where it is absent.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from harness.cli import main
from harness.config import from_yaml
from harness.contract import list_videos, read_csv_rows, video_path
from harness.playback import load_policy, play
from harness.rundir import RunDirectory
from harness.suites import get_task
from harness.trainer import Trainer
from harness.video import Mp4Writer, VideoError, check_rendering, check_video_size
from tests.test_cli import read_csv, run_cli, run_folder, tiny_run

VIDEO_SIZE = ("trainer.video_width=96", "trainer.video_height=64")


def _rendering_problem() -> str | None:
    try:
        check_rendering(get_task("classic", "inverted-pendulum"), (32, 32))
    except VideoError as error:
        return str(error)
    return None


needs_rendering = pytest.mark.skipif(
    _rendering_problem() is not None, reason=f"no off-screen rendering here: {_rendering_problem()}"
)
needs_ffprobe = pytest.mark.skipif(
    shutil.which("ffprobe") is None, reason="ffprobe not installed (Debian: apt-get install ffmpeg)"
)


def ffprobe(path) -> dict:
    """Frame count (decoded), size and codec of the first video stream, as ffprobe reads them."""
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,width,height,codec_name",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    stream = json.loads(done.stdout)["streams"][0]
    return {
        "frames": int(stream["nb_read_frames"]),
        "width": stream["width"],
        "height": stream["height"],
        "codec": stream["codec_name"],
    }


def eval_rows_without_time(folder) -> list[list[str]]:
    header, rows = read_csv_rows(folder / "eval.csv")
    keep = [i for i, column in enumerate(header) if column != "wall_time"]
    return [header] + [[row[i] for i in keep] for row in rows]


@pytest.fixture(scope="module")
def video_runs(tmp_path_factory):
    """The same tiny sac-svg run with and without video (module-scoped: three tests read it)."""
    with_video, without = tmp_path_factory.mktemp("with_video"), tmp_path_factory.mktemp("without_video")
    if _rendering_problem() is None:
        code, _, stderr = tiny_run(with_video, "sac-svg", 300, VIDEO_SIZE, "--video")
        assert code == 0, stderr
    code, _, stderr = tiny_run(without, "sac-svg", 300, VIDEO_SIZE)
    assert code == 0, stderr
    return run_folder(with_video), run_folder(without)


# ------------------------------------------------------------------------------- recording


@needs_rendering
@needs_ffprobe
@pytest.mark.slow
def test_a_run_with_video_writes_one_playable_mp4_per_evaluation_of_the_first_episode(video_runs):
    folder, _ = video_runs
    steps = [int(r["step"]) for r in read_csv(folder / "eval.csv")]
    assert list(list_videos(folder)) == steps == [100, 200, 300]
    assert not [p for p in (folder / "videos").iterdir() if p.name.startswith(".")]  # no partial file left
    for step in steps:
        probe = ffprobe(video_path(folder, step))
        assert (probe["width"], probe["height"], probe["codec"]) == (96, 64, "h264")
        assert probe["frames"] >= 2  # the reset frame and one per step of the first episode


@needs_rendering
@pytest.mark.slow
def test_recording_videos_changes_no_number_of_the_run(video_runs):
    with_video, without = video_runs
    assert eval_rows_without_time(with_video) == eval_rows_without_time(without)
    timing = {"steps_per_second"}
    for a, b in zip(read_csv(with_video / "train.csv"), read_csv(without / "train.csv"), strict=True):
        assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    agent_a = RunDirectory(with_video).load_checkpoint()["agent"]["actor"]
    agent_b = RunDirectory(without).load_checkpoint()["agent"]["actor"]
    assert all(torch.equal(agent_a[k], agent_b[k]) for k in agent_a)
    # the video keys are operational: one folder, one experiment, with or without video
    assert with_video.relative_to(with_video.parents[3]) == without.relative_to(without.parents[3])


@needs_rendering
@needs_ffprobe
@pytest.mark.slow
def test_the_video_has_a_frame_for_the_reset_and_each_step_of_the_first_episode(video_runs, tmp_path):
    """The last evaluation's first episode, played again, is as long as its video says."""
    folder, _ = video_runs
    code, out, stderr = run_cli("replay", str(folder), "--episodes", "1")
    assert code == 0, stderr
    length = int(out.splitlines()[3].split()[2])
    assert ffprobe(video_path(folder, 300))["frames"] == length + 1


@needs_rendering
@pytest.mark.slow
def test_the_wandb_offline_mirror_carries_the_videos(tmp_path):
    code, _, stderr = run_cli(
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
        "200",
        "--out",
        str(tmp_path),
        "--wandb",
        "offline",
        "--video",
        "trainer.seed_steps=100",
        "trainer.eval_every=100",
        "trainer.eval_episodes=1",
        "agent.hidden_dim=16",
        "agent.step_batch_size=16",
        *VIDEO_SIZE,
    )
    assert code == 0, stderr
    mirrored = sorted(tmp_path.glob("**/wandb/offline-run-*/files/media/videos/eval/video_*.mp4"))
    assert len(mirrored) == 2
    folder = next(tmp_path.glob("**/seed_0"))
    originals = {p.read_bytes() for p in list_videos(folder).values()}
    assert {p.read_bytes() for p in mirrored} == originals


# ------------------------------------------------------------------------------- replay


@pytest.mark.slow
def test_replay_of_a_finished_run_gives_the_last_evaluations_returns(video_runs):
    _, folder = video_runs
    last = read_csv(folder / "eval.csv")[-1]
    code, out, stderr = run_cli("replay", str(folder))
    assert code == 0, stderr
    lines = out.splitlines()
    assert "latest checkpoint, step 300" in lines[0] and lines[1].startswith("seed ")
    returns = [float(line.split()[1]) for line in lines[3 : 3 + int(last["episodes"])]]
    assert np.mean(returns) == pytest.approx(float(last["return_mean"]), abs=1e-3)
    assert np.std(returns) == pytest.approx(float(last["return_std"]), abs=1e-3)
    assert f"the evaluation at step 300 recorded {float(last['return_mean']):.3f}" in lines[-1]
    assert "differs" not in out


def test_replay_in_python_equals_the_evaluation_bit_for_bit(video_runs):
    """Through the API the returns are exact: the evaluation's episodes, played again."""
    _, folder = video_runs
    last = read_csv(folder / "eval.csv")[-1]
    policy = load_policy(folder, "latest")
    played, _ = play(policy, policy.config.trainer.eval_episodes, policy.default_seed)
    returns = [episode.total_return for episode in played]
    assert repr(float(np.mean(returns))) == last["return_mean"]
    assert repr(float(np.std(returns))) == last["return_std"]


@pytest.mark.slow
def test_replay_of_the_best_checkpoint_plays_the_best_evaluation(video_runs):
    _, folder = video_runs
    summary = json.loads((folder / "summary.json").read_text())
    best = torch.load(folder / "checkpoint" / "best.pt", weights_only=True)["state"]
    assert best["step"] == summary["best_eval_step"] and best["return_mean"] == summary["best_eval_return"]
    code, out, stderr = run_cli("replay", str(folder), "--checkpoint", "best")
    assert code == 0, stderr
    assert f"best checkpoint, step {summary['best_eval_step']}" in out
    assert f"recorded {summary['best_eval_return']:.3f}" in out.splitlines()[-1]


@needs_rendering
@needs_ffprobe
@pytest.mark.slow
def test_replay_writes_a_video_of_every_episode_played(video_runs, tmp_path):
    _, folder = video_runs
    target = tmp_path / "sub" / "policy.mp4"
    code, out, stderr = run_cli(
        "replay", str(folder), "--episodes", "2", "--seed", "7", "--video", str(target), "--size", "64x48"
    )
    assert code == 0, stderr
    lengths = [int(line.split()[2]) for line in out.splitlines()[3:5]]
    assert out.splitlines()[1].startswith("seed 7, 2 episodes")
    assert ffprobe(target) == {"frames": sum(lengths) + 2, "width": 64, "height": 48, "codec": "h264"}


@pytest.mark.parametrize(
    "args, message",
    [
        (("--checkpoint", "bset"), "Invalid value for '--checkpoint'"),
        (("--video", "x.gif"), "must end in .mp4"),
        (("--size", "65x48"), "must be even"),
        (("--size", "big"), "WIDTHxHEIGHT"),
        (("--device", "tpu"), "not a device"),
    ],
)
def test_replay_refuses_bad_options_in_one_line(video_runs, args, message, capsys):
    _, folder = video_runs
    code = main(["replay", str(folder), *args])  # in this process: the console script's own entry point
    out, stderr = capsys.readouterr()
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr and out == ""


def test_replay_of_a_folder_that_is_not_a_run_says_where_the_runs_are(video_runs):
    _, folder = video_runs
    code, _, stderr = run_cli("replay", str(folder.parent.parent))
    assert code == 2 and "is not a run folder" in stderr and str(folder) in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_replay_of_a_run_with_no_checkpoint_yet_says_so_in_one_line(video_runs, tmp_path):
    _, folder = video_runs
    copy = tmp_path / "seed_0"
    copy.mkdir()
    shutil.copy(folder / "config.yaml", copy / "config.yaml")
    code, out, stderr = run_cli("replay", str(copy))
    assert code == 2 and "has no checkpoint yet" in stderr and len(stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in copy.iterdir()) == ["config.yaml"]


def test_replay_without_a_best_checkpoint_says_to_use_the_latest(video_runs, tmp_path):
    _, folder = video_runs
    copy = tmp_path / "seed_0"
    shutil.copytree(folder, copy)
    (copy / "checkpoint" / "best.pt").unlink()
    code, _, stderr = run_cli("replay", str(copy), "--checkpoint", "best")
    assert code == 2 and "no best checkpoint" in stderr and "--checkpoint latest" in stderr
    (copy / "checkpoint" / "best.pt").write_bytes(b"not a checkpoint")
    code, _, stderr = run_cli("replay", str(copy), "--checkpoint", "best")
    assert code == 2 and "unreadable" in stderr and "Traceback" not in stderr


# ------------------------------------------------------------------------------- bad input and resume


def test_a_machine_that_cannot_render_refuses_video_runs_in_one_line_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "disable")  # MuJoCo imports, but draws nothing
    code, _, stderr = tiny_run(tmp_path, "sac", 200, (), "--video")
    assert code == 2 and "--video" in stderr and "egl" in stderr and "osmesa" in stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def test_a_mujoco_gl_value_mujoco_rejects_is_one_line_not_an_import_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "nonesuch")
    code, _, stderr = tiny_run(tmp_path, "sac", 200)
    assert code == 2 and "MUJOCO_GL='nonesuch'" in stderr and "osmesa" in stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "override, problem", [("trainer.video_width=101", "even"), ("trainer.video_height=0", "positive")]
)
def test_an_unplayable_video_size_is_refused_before_any_run(tmp_path, override, problem):
    code, _, stderr = tiny_run(tmp_path, "sac", 200, (override,), "--video")
    assert code == 2 and problem in stderr and "trainer.video_width" in stderr
    assert list(tmp_path.iterdir()) == []


def test_check_video_size_names_the_problem():
    assert check_video_size(320, 240) is None
    assert "even" in check_video_size(321, 240)
    assert "positive" in check_video_size(320, -2)


def test_resuming_drops_videos_recorded_after_the_checkpoint_and_a_fresh_start_drops_all(tmp_path):
    run_dir = RunDirectory(tmp_path)
    for step in (100, 200, 300):
        video_path(tmp_path, step).parent.mkdir(exist_ok=True)
        video_path(tmp_path, step).write_bytes(b"mp4")
    (tmp_path / "videos" / ".step_400.mp4.123.tmp").write_bytes(b"partial")
    run_dir.truncate_logs(200)
    assert list(list_videos(tmp_path)) == [100, 200]
    run_dir.clear_logs()
    assert list_videos(tmp_path) == {}


def test_a_writer_left_by_an_exception_leaves_no_file(tmp_path):
    target = tmp_path / "v.mp4"
    with pytest.raises(KeyboardInterrupt):
        with Mp4Writer(target, fps=10) as film:
            film.add(np.zeros((16, 16, 3), np.uint8))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with Mp4Writer(target, fps=10) as film:
        for value in range(3):
            film.add(np.full((16, 16, 3), 80 * value, np.uint8))
    assert target.exists() and film.frames == 3 and film.size == (16, 16)
    with pytest.raises(VideoError, match="16x16"):
        with Mp4Writer(tmp_path / "w.mp4", fps=10) as film:
            film.add(np.zeros((16, 16, 3), np.uint8))
            film.add(np.zeros((32, 16, 3), np.uint8))
    assert not (tmp_path / "w.mp4").exists()


def test_a_resume_rewrites_the_best_checkpoint_its_evaluation_lacks_and_drops_one_from_beyond(video_runs, tmp_path):
    _, finished = video_runs
    folder = tmp_path / "seed_0"
    shutil.copytree(finished, folder)
    run_dir = RunDirectory(folder)
    state = run_dir.load_checkpoint()
    state["progress"]["best_eval_step"] = 300  # as if the last evaluation were the best one
    best = run_dir.read_best()
    run_dir.save_best(dict(best, step=999))  # a best.pt from a checkpoint that was lost
    config = from_yaml(run_dir.stored_config_text())
    config.trainer.torch_threads = 1  # this test process's own setting (conftest), kept
    trainer = Trainer(config, run_dir)
    trainer.restore(state)
    rewritten = run_dir.read_best()
    assert (rewritten["step"], rewritten["evaluation"]) == (300, 2)
    assert all(torch.equal(rewritten["agent"]["actor"][k], state["agent"]["actor"][k]) for k in state["agent"]["actor"])
    trainer.close_envs()
