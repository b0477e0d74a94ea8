"""The training run behind `lossgraph run`: `train(program, dataset, RunOptions(...))`.

A run owns one output folder (default `runs/<spec name>`):

    metrics.csv              step, every stat the trainer returns, seconds (wall time of training);
                             a row every `log_every` steps and at the last step, flushed as written
    eval.csv                 step, every held-out metric; every `eval_every` steps and at the end
    samples/step_000500.png  grid of the fixed held-out inputs, a row per `program.samples` entry
    checkpoints/             atomic checkpoints, the last `keep_checkpoints` kept (checkpoint.py);
                             the spec's `ema:` moving averages saved as networks `<name>@ema` (ema.py);
                             with `train.keep_best`, the best networks so far as best_step_N (best.py)
    summary.json             the last evaluation, the best checkpoint, what fid/kid compare (summary.py)
    tensorboard/             event files of the same scalars and the sample grids, when the tensorboard
                             package is installed (tensorboard_log.py)
    spec.yaml                the resolved spec (extends merged, overrides applied); `resume`
                             refuses a changed spec unless `allow_spec_change` (resolved.py)
    imports.json             the --import modules and where each arch not built in came from, when
                             the run uses either (plugins.py)

Decisions, so that a user can predict what a run does:

- Steps count from 1. Step N trains on `dataset.batch(N, batch_size)`, and checkpoint `step_N` is
  the state after N steps; `--resume` continues at N + 1. Because the batch is a function of the
  step and the checkpoint carries every RNG state, a resumed CPU run repeats the uninterrupted run
  exactly. Rows of metrics.csv and eval.csv after the checkpoint's step are dropped on resume.
- An existing output folder that holds a checkpoint is never touched without `resume`: the run
  stops with an error suggesting `--resume` or a new `--out`. A folder without checkpoints (say a
  run stopped before its first one) is reused, and the note says its CSV logs are rewritten.
- Progress: a tqdm bar on stderr (losses of each player in the postfix, refreshed every
  `log_every` steps) when stderr is a terminal and the `CI` variable is unset; otherwise a plain
  line on stderr every `log_every` steps. `progress=True` / `False` forces one or the other.
  Final held-out metrics and a one-line summary go to stdout.
- Samples and evaluation run under their own RNG, reseeded from the run's seed every time: every
  grid uses the same noise, and how often they run never changes the training trajectory.
- An interval of 0 or less turns the periodic action off; it still happens once at the end.
- A NaN or infinite loss stops the run (`NonFiniteError`) without saving the poisoned state;
  `skip_nonfinite` undoes such a step instead and counts it (metrics.csv `skipped`; nonfinite.py).
- With `ema:` in the spec, samples and evaluation use the moving averages of those networks.
- Under torchrun (several processes) each trains on its slice of the global batch with DDP; rank 0
  alone writes and prints, and the losses it logs are averaged over processes (distributed.py).

`train` reads as the order of a run; each part is a module of its own:

    protocols.py  what a run needs of the program, the trainer and the dataset
    options.py    RunOptions, resolved and checked into a Plan
    epochs.py     a spec's epochs as steps
    resume.py     the output-folder policy, and the checkpoint a run goes on from
    run_state.py  what a checkpoint holds: saving it, restoring it
    outputs.py    metrics.csv, eval.csv, sample grids, TensorBoard events, summary.json
    metrics/      fid, kid and diversity over the whole held-out set, on a feature network
    best.py       the best checkpoint by an evaluation metric (train.keep_best)
    progress.py   the progress bar or log lines on stderr
    rng.py        the random streams: kept in checkpoints, set aside for side computations
    loop.py       the steps, and what follows each
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch

from lossgraph.language import plugins
from lossgraph.train import distributed, resolved
from lossgraph.train.device import resolve_device, to_device
from lossgraph.train.loop import Loop, LoopResult, local_step
from lossgraph.train.options import Plan, RunOptions, plan_run
from lossgraph.train.outputs import Outputs
from lossgraph.train.progress import Progress, clock, format_metrics
from lossgraph.train.best import BestCheckpoint
from lossgraph.train.protocols import Accelerating, Dataset, FitsJudges, MeasuresDistributions, Program, Trainer
from lossgraph.train.resume import Start, find_resume
from lossgraph.train.rng import restore_rng, side_computation
from lossgraph.train.run_state import Checkpoints, RunNetworks

__all__ = ["RunOptions", "RunSummary", "resolve_device", "train"]


@dataclass
class RunSummary:
    """What a finished `train` call did."""

    out_dir: Path
    step: int  # the last step reached (the checkpoint's step when nothing was left to train)
    steps_run: int  # steps trained by this call
    seconds: float  # wall time of this call's training loop
    steps_per_second: float
    stats: dict[str, float] = field(default_factory=dict)  # the last step's losses
    metrics: dict[str, float] = field(default_factory=dict)  # the final held-out metrics
    checkpoint: Path | None = None
    skipped: int = 0  # steps skipped for a non-finite loss (skip_nonfinite), over the whole run
    best: dict | None = None  # with train.keep_best: metric, mode, step, value, checkpoint (best.py)


def train(program: Program, dataset: Dataset, options: RunOptions | None = None) -> RunSummary:
    """Train `program` on `dataset` as `options` say, writing logs, samples and checkpoints."""
    options = options or RunOptions()
    plan = plan_run(program, options, dataset)
    # several processes under torchrun (distributed.py): rank 0 alone writes and prints
    group = distributed.setup(plan.device, options.seed)
    if group is not None:
        group.local_slice(plan.batch_size)  # the global batch must divide among the processes
        plan = replace(plan, device=group.device, show_bar=plan.show_bar and group.is_main)
    writes = group is None or group.is_main
    if isinstance(program, MeasuresDistributions) and program.distributions:
        from lossgraph.train.metrics.features import check_available

        check_available(program)  # torchmetrics, the Inception weights file: before anything is built
    notes: list[str] = []
    resumed = find_resume(plan, notes)
    # RUN/spec.yaml: the resolved spec; a resume whose spec changed is refused before anything is touched
    spec_record = resolved.run_spec(program, plan.steps, plan.batch_size)
    if resumed is not None and spec_record is not None:
        notes.extend(resolved.check_resume(plan.out_dir, spec_record, options.allow_spec_change))

    networks, trainer = _build(program, plan, notes)
    checkpoints = Checkpoints(plan, networks, trainer, group)
    if resumed is not None:
        notes.extend(checkpoints.restore(resumed))
    elif program.judges:
        notes.append(_fit_judges(trainer, dataset, networks, plan))
    # rank 0 alone evaluates, so it alone keeps the best checkpoint
    best = BestCheckpoint.of(getattr(program.spec.train, "keep_best", None), plan.out_dir, networks, plan.name) if writes else None
    if best is not None:
        notes.extend(best.restore(resumed.state.get("best") if resumed else None, resumed.step if resumed else 0))
    if group is not None:
        # a collective: every process has read the run folder before rank 0 writes to it
        group.prepare(program, trainer, plan.batch_size)
    if writes:
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        if spec_record is not None:
            resolved.write(plan.out_dir, spec_record)
        plugins.write_record(plan.out_dir, program.spec, options.imports)

    start = resumed.start if resumed is not None else Start()
    outputs = Outputs.open(plan, program, dataset, networks, resumed.step if resumed is not None else None, writes, notes)
    display = ("bar" if plan.show_bar else "lines") if writes else "none"
    progress = Progress(plan.name, plan.steps, program.players, start.step, display)
    for note in notes:
        progress.note(note)
    if resumed is not None:
        # Last thing before the loop, so nothing above can draw from the restored streams.
        restore_rng(resumed.state["rng"])
        if group is not None:
            group.restore(trainer, resumed.state)  # this process's device stream and history pools
    if group is None:
        train_step = local_step(trainer, dataset, plan.batch_size, plan.device)
    else:  # this process's slice of the global batch; losses averaged over processes
        train_step = partial(group.step, program, trainer, dataset, global_batch=plan.batch_size)
    outputs.write_summary(None, {}, best.record() if best is not None else None)
    with outputs, progress:
        result = Loop(plan, program, train_step, networks, trainer, outputs, checkpoints, progress, start, best).run()
    if group is not None:
        group.close(trainer)
    if writes:
        _report(plan, result)
    return RunSummary(out_dir=plan.out_dir, step=result.final, steps_run=result.steps_run, seconds=result.seconds,
                      steps_per_second=result.steps_run / result.seconds if result.seconds > 0 else 0.0,
                      stats=result.stats, metrics=result.metrics, checkpoint=result.checkpoint,
                      skipped=result.skipped, best=result.best)


def _build(program: Program, plan: Plan, notes: list[str]) -> tuple[RunNetworks, Trainer]:
    """The networks, initialised from the run's seed alone, on the run's device, and their trainer."""
    seed = plan.options.seed
    random.seed(seed)
    torch.manual_seed(seed)
    nets = program.build_networks(seed=seed)
    for net in nets.values():
        net.to(plan.device)
    trainer = program.trainer(nets, device=str(plan.device), **plan.trainer_settings())
    if isinstance(trainer, Accelerating) and trainer.acceleration.active:
        notes.append(f"training steps: {trainer.acceleration.describe()}")
        caveat = trainer.acceleration.caveat(plan.device)
        if caveat is not None:
            notes.append(caveat)
    networks = RunNetworks.of(nets, trainer)
    averages = networks.describe_averages()
    if averages is not None:
        notes.append(averages)
    return networks, trainer


def _fit_judges(trainer: Trainer, dataset: Dataset, networks: RunNetworks, plan: Plan) -> str:
    """Fit the program's judges before step 1; a note saying how it went.

    Judges are fitted once, on their own RNG stream, so a run with judges trains exactly as one
    without; a resumed run finds them fitted in its checkpoint.
    """
    if not isinstance(trainer, FitsJudges):
        raise TypeError(f"the program has judges, but its trainer ({type(trainer).__name__}) has no fit_judges")
    fit_start = time.perf_counter()
    with side_computation(networks.trained, plan.options.seed + 1, plan.device, grad=True):
        fitted = trainer.fit_judges(lambda index: to_device(dataset.batch(index, plan.batch_size), plan.device))
    losses = ", ".join(f"{name} {loss:.4g}" for name, loss in fitted.items())
    return f"judges fitted on real batches in {time.perf_counter() - fit_start:.1f}s (final loss: {losses})"


def _report(plan: Plan, result: LoopResult) -> None:
    """The end of a run on stdout: the held-out metrics and a one-line summary."""
    if result.steps_run == 0:
        print(f"{plan.name}: already at step {result.final} of {plan.steps}; nothing to train", flush=True)
    if result.metrics:
        print(f"{plan.name} held-out metrics at step {result.final}: {format_metrics(result.metrics)}", flush=True)
    if result.best is not None:
        best = result.best
        print(f"{plan.name} best {best['metric']} ({best['mode']}) {best['value']:.4f} at step {best['step']}: "
              f"{plan.out_dir / best['checkpoint']} (translate --checkpoint best)", flush=True)
    steps_per_second = result.steps_run / result.seconds if result.seconds > 0 else 0.0
    skips = f"; {result.skipped} steps skipped for a non-finite loss" if plan.options.skip_nonfinite else ""
    print(f"{plan.name}: {result.steps_run} steps in {clock(result.seconds)} ({steps_per_second:.2f} it/s){skips}; "
          f"outputs in {plan.out_dir}", flush=True)
