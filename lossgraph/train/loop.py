"""The training loop: steps `start` .. `plan.steps`, and what follows each step.

Step N trains on the dataset's batch of step N (`train_step(N)`). After it, in this order:

1. A NaN or infinite loss stops the run with `NonFiniteError`, the step logged for the record and
   nothing saved; with `skip_nonfinite` (which also checks the networks' tensors) the step's
   updates are undone instead (`StepGuard`) and counted, the first 10 with a note.
2. Every log interval and at the last step: a metrics.csv row and the progress display.
3. Every eval interval: held-out metrics (eval.csv), noted unless it is the last step; with
   `train.keep_best`, the networks kept when they are the best so far (best.py); summary.json.
4. Every sample interval: a sample grid.
5. Every checkpoint interval: a checkpoint.

After the last step, the held-out metrics, a sample grid and a checkpoint are each made once
more unless that step just made them (`LastDone`), in the order of a step's actions, so the last
checkpoint records a best checkpoint found by the last evaluation. Ctrl-C stops the loop saying where the last
checkpoint is, and goes on up as KeyboardInterrupt.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import torch

from lossgraph.train import nonfinite
from lossgraph.train.best import BestCheckpoint
from lossgraph.train.device import to_device
from lossgraph.train.options import Intervals, Plan
from lossgraph.train.outputs import Outputs
from lossgraph.train.progress import Progress, format_metrics
from lossgraph.train.protocols import Dataset, NamesHazards, Program, Trainer
from lossgraph.train.resume import Start
from lossgraph.train.run_state import Checkpoints, RunNetworks

TrainStep = Callable[[int], Mapping[str, float]]  # step N -> the losses of training on batch N
NOTED_SKIPS = 10  # skipped steps noted one by one; later ones are only counted


def local_step(trainer: Trainer, dataset: Dataset, batch_size: int, device: torch.device) -> TrainStep:
    """Step N in one process: the dataset's batch of step N, on the device, through the trainer."""

    def train_step(step: int) -> Mapping[str, float]:
        return trainer.step(to_device(dataset.batch(step, batch_size), device))

    return train_step


@dataclass
class Clock:
    """Training wall time: of the whole run (a resumed run's earlier seconds included), and of this call."""

    before: float = 0.0
    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return self.before + self.this_call()

    def this_call(self) -> float:
        return time.perf_counter() - self.start


@dataclass
class LastDone:
    """The step at which each action that also closes a run last happened (0: not in this call;
    a resumed run's checkpoint counts as done at its step)."""

    checkpoint: int = 0
    samples: int = 0
    evaluation: int = 0


@dataclass
class LoopResult:
    final: int  # the last step reached (the checkpoint's step when nothing was left to train)
    steps_run: int
    seconds: float  # wall time of this call's steps
    stats: dict[str, float]  # the last step's losses
    metrics: dict[str, float]  # the last held-out metrics
    checkpoint: Path | None  # the last checkpoint (None on a process that writes none)
    skipped: int  # steps skipped for a non-finite loss, over the whole run
    best: dict | None = None  # the best checkpoint (train.keep_best): metric, mode, step, value, checkpoint


class Loop:
    def __init__(self, plan: Plan, program: Program, train_step: TrainStep, networks: RunNetworks,
                 trainer: Trainer, outputs: Outputs, checkpoints: Checkpoints, progress: Progress, start: Start,
                 best: BestCheckpoint | None = None):
        self.plan = plan
        self.every: Intervals = plan.every
        self.program = program
        self.train_step = train_step
        self.networks = networks
        self.outputs = outputs
        self.checkpoints = checkpoints
        self.progress = progress
        self.start = start
        self.best = best
        self.guard = nonfinite.StepGuard(networks.trained, trainer) if plan.options.skip_nonfinite else None
        self.done = LastDone(checkpoint=start.step - 1)  # a resumed run's checkpoint is done
        self.skipped = start.skipped
        self.stats: dict[str, float] = {}
        self.metrics: dict[str, float] = {}
        self.checkpoint = start.checkpoint
        self.clock = Clock(start.seconds)  # started again when the steps start (run)

    def run(self) -> LoopResult:
        """Train to `plan.steps` and close the run (see the module docstring)."""
        self.clock = Clock(self.start.seconds)
        step = self.start.step - 1
        try:
            for step in range(self.start.step, self.plan.steps + 1):
                self.train(step)
                self.after(step)
            seconds = self.clock.this_call()
            final = max(step, self.start.step - 1)
            self.close(final)
        except KeyboardInterrupt:
            self.progress.close()
            saved = self.checkpoints.latest()
            where = f"the last checkpoint is {saved}; continue with --resume" if saved else "no checkpoint was written"
            print(f"interrupted at step {step}: {where}", file=sys.stderr, flush=True)
            raise
        return LoopResult(final=final, steps_run=max(0, step - self.start.step + 1), seconds=seconds,
                          stats=dict(self.stats), metrics=dict(self.metrics), checkpoint=self.checkpoint,
                          skipped=self.skipped, best=self.best.record() if self.best is not None else None)

    def train(self, step: int) -> None:
        """Step `step`, and what a non-finite one calls for."""
        if self.guard is not None:
            self.guard.save()
        self.stats = dict(self.train_step(step))
        problem = nonfinite.first_nonfinite(self.stats, self.program.players)
        if problem is None and self.guard is not None:
            problem = nonfinite.nonfinite_network(self.networks.trained)
        if problem is None:
            return
        if self.guard is None:
            self.outputs.log_metrics(step, self.stats, seconds=self.clock.elapsed())  # the poisoned step, for the record
            hazards = self.program.hazards if isinstance(self.program, NamesHazards) else {}
            raise nonfinite.NonFiniteError(step, problem, self.checkpoints.latest(), hazards.get(problem.key or "", ()))
        self.guard.restore()
        self.skipped += 1
        if self.skipped <= NOTED_SKIPS:
            more = "; further skips are only counted (metrics.csv, skipped)" if self.skipped == NOTED_SKIPS else ""
            self.progress.note(f"step {step}: {problem.describe()}; step skipped, its updates undone "
                               f"({self.skipped} so far){more}")

    def after(self, step: int) -> None:
        """The periodic actions due after `step`."""
        self.progress.advance()
        if Intervals.due(step, self.every.log) or step == self.plan.steps:
            seconds = self.clock.elapsed()
            self.outputs.log_metrics(step, self.stats, seconds=seconds, skipped=str(self.skipped))
            self.progress.log(step, self.stats, seconds)
        if Intervals.due(step, self.every.eval):
            self.evaluate(step)
            if step != self.plan.steps:
                self.progress.note(f"eval step {step}: {format_metrics(self.metrics)}")
        if Intervals.due(step, self.every.sample):
            self.write_samples(step)
        if Intervals.due(step, self.every.checkpoint):
            self.save(step)

    def close(self, final: int) -> None:
        """The end of the run: each closing action once at `final`, unless it just happened there."""
        if self.done.evaluation != final:
            self.evaluate(final)
        if self.done.samples != final:
            self.write_samples(final)
        if self.done.checkpoint != final:
            self.save(final)

    def evaluate(self, step: int) -> None:
        self.metrics = self.outputs.evaluate(step)
        self.done.evaluation = step
        if self.best is not None and self.best.consider(step, self.metrics) and step != self.plan.steps:
            self.progress.note(f"step {step}: best {self.best.metric} so far, kept in checkpoints/{self.best.current.folder}")
        self.outputs.write_summary(step, self.metrics, self.best.record() if self.best is not None else None)

    def write_samples(self, step: int) -> None:
        self.outputs.write_samples(step)
        self.done.samples = step

    def save(self, step: int) -> None:
        best = self.best.state() if self.best is not None else None
        self.checkpoint = self.checkpoints.save(step, seconds=self.clock.elapsed(), skipped=self.skipped, best=best)
        if self.best is not None:
            self.best.prune()  # a rotated-out checkpoint may have been the last to need an old best
        self.outputs.flush()  # what a resume keeps is on disk with the checkpoint
        self.done.checkpoint = step
