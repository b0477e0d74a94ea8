"""The best checkpoint: `train.keep_best: {metric: error_XY, mode: min}`.

    checkpoints/best_step_000750/   nets.safetensors (every network, averages as `<name>@ema`) and
                                    state.pt (step, spec and `best`: metric, mode, step, value)

At an evaluation whose value of the metric beats the best so far (lower with `min`, higher with
`max`; a NaN never does), the networks that evaluation saw are written as `best_step_<step>`,
atomically (checkpoint.write_folder). It sits beside the step checkpoints, whose rotation never
touches it; `lossgraph translate RUN --checkpoint best` applies the newest.

Resuming: every step checkpoint's state.pt holds `best`, the best as of its step, so a resumed run
goes on with the best of its checkpoint's step. A best folder past that step was written by the
interrupted run after its last checkpoint; the resumed run repeats those steps, so it is removed.

Old best folders go once nothing can need them again: kept are the current best and, for each
kept step checkpoint, the newest best at or before its step (the one a resume from it restores).
"""

from __future__ import annotations

import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lossgraph.language.errors import LossgraphError
from lossgraph.train.checkpoint import (
    FORMAT_VERSION,
    NETS_FILE,
    STATE_FILE,
    checkpoint_step,
    latest_checkpoint,
    list_checkpoints,
    write_folder,
)
from lossgraph.train.run_state import RunNetworks

BEST_PATTERN = re.compile(r"^best_step_(\d+)$")


@dataclass(frozen=True)
class Best:
    """The best evaluation so far of one metric."""

    metric: str
    mode: str  # "min" | "max"
    step: int
    value: float

    @property
    def folder(self) -> str:
        return f"best_step_{self.step:06d}"

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "mode": self.mode, "step": self.step, "value": self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Best:
        return cls(str(data["metric"]), str(data["mode"]), int(data["step"]), float(data["value"]))


def _step(path: Path) -> int:
    return int(BEST_PATTERN.match(path.name).group(1))


def best_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Complete best checkpoints (`best_step_N`) in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [entry for entry in directory.iterdir() if entry.is_dir() and BEST_PATTERN.match(entry.name)
             and (entry / NETS_FILE).is_file() and (entry / STATE_FILE).is_file()]
    return sorted(found, key=_step)


def named_checkpoint(directory: str | os.PathLike, name: str) -> Path:
    """The checkpoint `name` names in a run's `directory`: `best` (the newest best_step_N),
    `latest`, or a step number (its step_N, else its best_step_N); a `LossgraphError` saying what
    there is when there is none."""
    directory = Path(directory)
    steps = list_checkpoints(directory)
    bests = best_checkpoints(directory)
    found: Path | None = None
    if name == "best":
        found = bests[-1] if bests else None
    elif name == "latest":
        found = latest_checkpoint(directory)
    else:
        found = next((path for path in steps if checkpoint_step(path) == int(name)), None)
        found = found or next((path for path in bests if _step(path) == int(name)), None)
    if found is not None:
        return found
    have = [path.name for path in steps + bests]
    listing = f"it has {', '.join(have)}" if have else "it has no complete checkpoint"
    why = " (a run keeps one with train.keep_best in its spec)" if name == "best" else ""
    what = f"checkpoint of step {int(name)}" if name.isdigit() else f"{name} checkpoint"
    raise LossgraphError(f"no {what} in {directory}{why}; {listing}")


class BestCheckpoint:
    """The run's best checkpoint by `metric` (`mode` min or max), in the folder `folder`."""

    def __init__(self, folder: Path, metric: str, mode: str, networks: RunNetworks, spec_name: str):
        self.folder = folder
        self.metric = metric
        self.mode = mode
        self.networks = networks
        self.spec_name = spec_name
        self.current: Best | None = None

    @classmethod
    def of(cls, setting: Any, out_dir: Path, networks: RunNetworks, spec_name: str) -> BestCheckpoint | None:
        """The tracker a spec's `train.keep_best` asks for, or None without one."""
        if setting is None:
            return None
        return cls(out_dir / "checkpoints", setting.metric, setting.mode, networks, spec_name)

    def better(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.current is None:
            return True
        return value < self.current.value if self.mode == "min" else value > self.current.value

    def consider(self, step: int, metrics: Mapping[str, float]) -> bool:
        """After the evaluation of `step`: keep its networks if they are the best so far. Whether
        they are. `metrics` is empty on a torchrun process that does not evaluate."""
        if not metrics:
            return False
        if self.metric not in metrics:
            raise LossgraphError(f"train.keep_best: metric '{self.metric}' is not among the evaluation's results "
                                 f"({', '.join(metrics)})")
        value = float(metrics[self.metric])
        if not self.better(value):
            return False
        best = Best(self.metric, self.mode, step, value)
        state = {"format": FORMAT_VERSION, "step": step, "trainer": {}, "spec": self.spec_name, "best": best.as_dict()}
        write_folder(self.folder, best.folder, self.networks.saved, state)
        self.current = best
        self.prune()
        return True

    def state(self) -> dict[str, Any] | None:
        """What a step checkpoint records: the best as of its step."""
        return self.current.as_dict() if self.current is not None else None

    def restore(self, recorded: Mapping[str, Any] | None, step: int) -> list[str]:
        """Go on from a checkpoint of `step` (0: a new run) whose state recorded `recorded` as the
        best; notes for the user. Best folders past `step` are removed (module docstring)."""
        for path in best_checkpoints(self.folder):
            if _step(path) > step:
                shutil.rmtree(path, ignore_errors=True)
        self.current = None
        if not recorded:
            return [f"keep_best: no best {self.metric} recorded at step {step}; starting afresh"] if step else []
        best = Best.from_dict(recorded)
        if (best.metric, best.mode) != (self.metric, self.mode):
            return [f"keep_best: the checkpoint's best is by {best.metric} ({best.mode}), this spec keeps the best by "
                    f"{self.metric} ({self.mode}); starting afresh"]
        if not (self.folder / best.folder / "nets.safetensors").is_file():
            return [f"keep_best: {self.folder / best.folder} is missing; starting afresh"]
        self.current = best
        return [f"keep_best: best {best.metric} so far {best.value:.4g} at step {best.step} ({best.folder})"]

    def prune(self) -> None:
        """Remove the best folders nothing can need again (module docstring)."""
        found = best_checkpoints(self.folder)
        steps = sorted(_step(path) for path in found)
        needed = {self.current.step} if self.current is not None else set()
        for checkpoint in list_checkpoints(self.folder):
            before = [step for step in steps if step <= checkpoint_step(checkpoint)]
            if before:
                needed.add(before[-1])
        for path in found:
            if _step(path) not in needed:
                shutil.rmtree(path, ignore_errors=True)

    def record(self) -> dict[str, Any] | None:
        """What summary.json says of the best checkpoint."""
        if self.current is None:
            return None
        return {**self.current.as_dict(), "checkpoint": f"checkpoints/{self.current.folder}"}
