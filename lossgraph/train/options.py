"""How to run a program: `RunOptions` as given, and the `Plan` they resolve to.

`RunOptions` is the one list of run settings (`lossgraph run`'s flags map onto it). A field left
as None takes the spec's `train:` value or the device's default; `plan_run` fills those in and
checks every value before anything is built or written, and keeps the options themselves as
`Plan.options`: a setting that needs no resolving is read from there, so no field is repeated.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lossgraph.language.errors import LossgraphError
from lossgraph.train import accelerate, epochs, tensorboard_log
from lossgraph.train.accelerate import Acceleration
from lossgraph.train.device import resolve_device
from lossgraph.train.protocols import Program


@dataclass
class RunOptions:
    """How to run a program. `None` intervals, steps and batch size come from the spec's `train:`."""

    steps: int | None = None
    batch_size: int | None = None
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda" or "cuda:N"
    seed: int = 0
    out_dir: str | os.PathLike | None = None  # default runs/<spec name>
    resume: bool = False
    progress: bool | None = None  # None: a bar on a terminal outside CI, plain lines otherwise
    log_every: int | None = None
    sample_every: int | None = None
    checkpoint_every: int | None = None
    eval_every: int | None = None
    keep_checkpoints: int = 3
    sample_count: int = 8  # held-out examples shown in a sample grid
    eval_count: int = 64  # held-out examples `program.evaluate` sees
    skip_nonfinite: bool = False  # undo a step with a NaN/inf loss and go on, instead of stopping (nonfinite.py)
    allow_spec_change: bool = False  # resume though the spec differs from the run's spec.yaml (resolved.py)
    tensorboard: bool | None = None  # event files in RUN/tensorboard: None when installed, True required (tensorboard_log.py)
    compile: bool | None = None  # torch.compile each network the steps call; None: on for CUDA (accelerate.py)
    precision: str | None = None  # "fp32" or "bf16" (autocast, losses in fp32); None: bf16 on CUDA
    cuda_graphs: bool | None = None  # None: on when compiling on CUDA
    imports: tuple[str, ...] = ()  # the --import modules, recorded in RUN/imports.json (plugins.py)


@dataclass(frozen=True)
class Intervals:
    """Steps between a run's periodic actions. One of 0 or less is off; every action still
    happens once at the last step (logging, samples, evaluation, a checkpoint)."""

    log: int
    sample: int
    checkpoint: int
    eval: int

    @staticmethod
    def due(step: int, every: int) -> bool:
        return every > 0 and step % every == 0


@dataclass(frozen=True)
class Plan:
    """A run's options resolved against its program: every None filled in, every value checked."""

    options: RunOptions  # as given: seed, resume, counts, skip_nonfinite, ... are read from here
    name: str  # the spec's
    steps: int
    batch_size: int  # under torchrun, the global batch the processes share
    device: torch.device  # under torchrun, this process's
    out_dir: Path
    show_bar: bool  # a tqdm bar rather than plain lines (progress.py)
    every: Intervals
    tensorboard: bool  # whether event files are written (tensorboard_log.wanted)
    acceleration: dict[str, Any]  # the acceleration settings given, for `program.trainer(**...)`
    steps_per_epoch: int | None = None  # where the spec counts epochs (epochs.py); None otherwise

    def trainer_settings(self) -> dict[str, Any]:
        """What `program.trainer(nets, device, **...)` takes beyond the device: the acceleration
        given, and the steps per epoch where the spec counts epochs (only then, so a program
        whose spec counts none is never passed one)."""
        epochs = {} if self.steps_per_epoch is None else {"steps_per_epoch": self.steps_per_epoch}
        return {**self.acceleration, **epochs}


def plan_run(program: Program, options: RunOptions, dataset: Any = None) -> Plan:
    """Resolve and check `options` for `program`; a LossgraphError before anything is built.
    `dataset` sizes an epoch where the spec counts epochs (epochs.py)."""
    spec_train = program.spec.train
    name = program.spec.name

    def pick(value: int | None, field_name: str) -> int:
        return int(getattr(spec_train, field_name) if value is None else value)

    batch_size = pick(options.batch_size, "batch_size")
    per_epoch = epochs.steps_per_epoch(program.spec, dataset, batch_size) if batch_size >= 1 else None
    spec_epochs = getattr(spec_train, "epochs", None)
    if options.steps is None and spec_epochs is not None and per_epoch is not None:
        steps = spec_epochs * per_epoch  # --steps still counts steps
    else:
        steps = pick(options.steps, "steps")
    problems = [f"{label} must be at least 1, got {value}"
                for label, value in (("steps", steps), ("batch size", batch_size),
                                     ("checkpoints kept", options.keep_checkpoints),
                                     ("sample count", options.sample_count), ("eval count", options.eval_count))
                if value < 1]
    if problems:
        raise LossgraphError("; ".join(problems))
    device = resolve_device(options.device)
    acceleration = accelerate.given(options)
    try:
        Acceleration.for_device(device, **acceleration)
    except ValueError as error:
        raise LossgraphError(f"{error} (device {device})") from error
    return Plan(
        options=options,
        name=name,
        steps=steps,
        batch_size=batch_size,
        device=device,
        out_dir=Path(options.out_dir) if options.out_dir is not None else Path("runs") / name,
        show_bar=_wants_bar() if options.progress is None else options.progress,
        every=Intervals(log=pick(options.log_every, "log_every"), sample=pick(options.sample_every, "sample_every"),
                        checkpoint=pick(options.checkpoint_every, "checkpoint_every"),
                        eval=pick(options.eval_every, "eval_every")),
        tensorboard=tensorboard_log.wanted(options.tensorboard),
        acceleration=acceleration,
        steps_per_epoch=per_epoch,
    )


def _wants_bar() -> bool:
    in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return sys.stderr.isatty() and not in_ci
