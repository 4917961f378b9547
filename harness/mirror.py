"""The wandb mirror: every row written to a run directory is also logged to wandb.

wandb is a copy, never the only one; ``disabled`` imports nothing. Offline runs live in
``<run dir>/wandb`` and can be pushed later with ``wandb sync``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, cast


class WandbMirror:
    def __init__(self, mode: str, run_dir: Path, config: dict[str, Any], name: str, run_id: str | None) -> None:
        self.run = None
        if mode == "disabled":
            return
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb  # noqa: PLC0415 - slow import, only when mirroring

        wandb_mode = cast(Literal["online", "offline", "disabled", "shared"], mode)  # the CLI's choices
        self.run = wandb.init(
            mode=wandb_mode,
            dir=str(run_dir),
            project=os.environ.get("WANDB_PROJECT", "svgbench"),
            name=name,
            config=config,
            id=run_id,
            resume="allow",
            reinit="create_new",  # a batch of seeds (--batch-seeds) mirrors each seed to its own run at once
            settings=wandb.Settings(console="off", save_code=False),
        )

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else self.run.id

    def log(self, prefix: str, row: dict[str, Any]) -> None:
        if self.run is None:
            return
        values = {f"{prefix}/{k}": v for k, v in row.items() if k != "step" and isinstance(v, (int, float))}
        self.run.log(values, step=int(row["step"]))

    def log_video(self, key: str, path: Path, step: int) -> None:
        """The mp4 at ``path``, copied into the wandb run's media (offline runs carry it to
        ``wandb sync``)."""
        if self.run is None:
            return
        import wandb  # noqa: PLC0415 - imported by __init__ already

        self.run.log({key: wandb.Video(str(path), format="mp4")}, step=int(step))

    def finish(self, summary: dict[str, Any]) -> None:
        if self.run is None:
            return
        for key in ("status", "final_eval_return", "best_eval_return", "steps_done"):
            if key in summary:
                self.run.summary[key] = summary[key]
        self.run.finish()
        self.run = None
