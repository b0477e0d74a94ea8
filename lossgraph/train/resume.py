"""Resume policy: whether a run may start in its output folder, and the checkpoint it goes on from.

- With `resume`, the run goes on from the newest complete checkpoint in RUN/checkpoints
  (checkpoint.py), at the step after it; without one, it stops, saying where it looked.
- Without `resume`, a folder that holds a checkpoint is never touched: the run stops with an
  error suggesting `--resume` or a new `--out`. A folder without checkpoints (a run stopped
  before its first one) is reused, and a note says its CSV logs are rewritten.
- A checkpoint written by another spec (by name) is refused. Whether the spec itself changed is
  resolved.py's check of RUN/spec.yaml.

Everything here only reads: nothing in the folder changes before every check has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lossgraph.language.errors import LossgraphError
from lossgraph.train.checkpoint import latest_checkpoint, read_checkpoint_state
from lossgraph.train.options import Plan


@dataclass(frozen=True)
class Start:
    """Where a run's steps begin: step 1 of a new run, or the step after the checkpoint it resumes,
    with what the run had counted up to there."""

    step: int = 1
    skipped: int = 0  # steps skipped for a non-finite loss before `step`
    seconds: float = 0.0  # training wall time before `step`
    checkpoint: Path | None = None  # the checkpoint it goes on from


@dataclass(frozen=True)
class Resumed:
    """The checkpoint a run goes on from, and its state.pt as read (run_state.py says what it holds)."""

    path: Path
    state: dict[str, Any]

    @property
    def step(self) -> int:
        """The checkpoint's step: training goes on at the next one."""
        return int(self.state["step"])

    @property
    def start(self) -> Start:
        return Start(step=self.step + 1, skipped=int(self.state.get("skipped", 0)),
                     seconds=float(self.state.get("seconds", 0.0)), checkpoint=self.path)


def find_resume(plan: Plan, notes: list[str]) -> Resumed | None:
    """Apply the output-folder policy; the checkpoint to resume from, if any. Notes go to `notes`."""
    found = _resume_point(plan, notes)
    if found is None:
        return None
    state = read_checkpoint_state(found, map_location=plan.device)
    written_by = state.get("spec")
    if written_by != plan.name:
        raise LossgraphError(f"checkpoint {found} was written by spec '{written_by}', not '{plan.name}'; "
                             f"pass --out DIR to train '{plan.name}' in a new folder")
    return Resumed(found, state)


def _resume_point(plan: Plan, notes: list[str]) -> Path | None:
    checkpoints = plan.out_dir / "checkpoints"
    if plan.out_dir.exists() and not plan.out_dir.is_dir():
        raise LossgraphError(f"output folder {plan.out_dir} is a file; pass --out DIR to choose a folder")
    found = latest_checkpoint(checkpoints)
    if plan.options.resume:
        if found is None:
            raise LossgraphError(
                f"nothing to resume: no complete checkpoint in {checkpoints} "
                f"(looked for {checkpoints / 'latest'} and step_* folders); run without --resume to start afresh")
        return found
    if found is not None:
        raise LossgraphError(
            f"{plan.out_dir} already holds a run of '{plan.name}' (last checkpoint {found.name}); "
            f"pass --resume to continue it, or --out DIR to start a new run elsewhere. Nothing was changed.")
    if (plan.out_dir / "metrics.csv").exists() or (plan.out_dir / "eval.csv").exists():
        notes.append(f"{plan.out_dir} has logs but no checkpoint: starting a new run, "
                     "metrics.csv and eval.csv are rewritten")
    return None
