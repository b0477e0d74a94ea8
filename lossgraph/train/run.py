"""The training run loop behind `lossgraph run`: `train(program, dataset, options)`.

A run owns one output folder (default `runs/<spec name>`):

    metrics.csv              step, every stat the trainer returns, seconds (wall time of training);
                             a row every `log_every` steps and at the last step, flushed as written
    eval.csv                 step, every held-out metric; every `eval_every` steps and at the end
    samples/step_000500.png  grid of the fixed held-out inputs, a row per `program.samples` entry
    checkpoints/             atomic checkpoints, the last `keep_checkpoints` kept (checkpoint.py);
                             the spec's `ema:` moving averages saved as networks `<name>@ema` (ema.py)
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
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn

from lossgraph.train.checkpoint import (
    atomic_write_text,
    latest_checkpoint,
    load_network_tensors,
    read_checkpoint_state,
    save_checkpoint,
    stored_networks,
)
from lossgraph.train import accelerate
from lossgraph.train.accelerate import Acceleration
from lossgraph.language.errors import LossgraphError
from lossgraph.train.images import save_grid
from lossgraph.train import distributed, nonfinite, resolved, tensorboard_log
from lossgraph.language import plugins
from lossgraph.train.ema import ema_name, is_ema_name
from lossgraph.train.rng import forked_rng


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


@dataclass(frozen=True)
class _Plan:
    """RunOptions with every default filled in and checked."""

    name: str
    steps: int
    batch_size: int
    device: torch.device
    seed: int
    out_dir: Path
    resume: bool
    show_bar: bool
    log_every: int
    sample_every: int
    checkpoint_every: int
    eval_every: int
    keep_checkpoints: int
    sample_count: int
    eval_count: int
    skip_nonfinite: bool = False
    allow_spec_change: bool = False
    tensorboard: bool = False
    acceleration: dict = field(default_factory=dict)  # the settings given (accelerate.given)


def resolve_device(device: str) -> torch.device:
    """`auto` is CUDA when available, else the CPU; asking for missing CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise LossgraphError(f"unknown device '{device}': use auto, cpu or cuda") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise LossgraphError(f"device '{device}' asked for, but this torch ({torch.__version__}) sees no CUDA GPU; "
                             "use --device cpu or auto")
    if resolved.type not in ("cpu", "cuda"):
        raise LossgraphError(f"device '{device}' is not supported: use auto, cpu or cuda")
    return resolved


def _wants_bar() -> bool:
    in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return sys.stderr.isatty() and not in_ci


def _plan(program: Any, options: RunOptions) -> _Plan:
    spec_train = program.spec.train
    name = program.spec.name

    def pick(value: int | None, field_name: str) -> int:
        return int(getattr(spec_train, field_name) if value is None else value)

    steps = pick(options.steps, "steps")
    batch_size = pick(options.batch_size, "batch_size")
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
    return _Plan(
        name=name,
        steps=steps,
        batch_size=batch_size,
        device=device,
        seed=options.seed,
        out_dir=Path(options.out_dir) if options.out_dir is not None else Path("runs") / name,
        resume=options.resume,
        show_bar=_wants_bar() if options.progress is None else options.progress,
        log_every=pick(options.log_every, "log_every"),
        sample_every=pick(options.sample_every, "sample_every"),
        checkpoint_every=pick(options.checkpoint_every, "checkpoint_every"),
        eval_every=pick(options.eval_every, "eval_every"),
        keep_checkpoints=options.keep_checkpoints,
        sample_count=options.sample_count,
        eval_count=options.eval_count,
        skip_nonfinite=options.skip_nonfinite,
        allow_spec_change=options.allow_spec_change,
        tensorboard=tensorboard_log.wanted(options.tensorboard),
        acceleration=acceleration,
    )


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


# ----------------------------------------------------------------------------- CSV logs


def _format_value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return repr(float(value))  # shortest text that reads back as the same float


class CsvLog:
    """A CSV file with a `step` column first: a row per `write`, flushed as written.

    Columns come from the first row, in `order` (a sort key; None keeps the dict's order), then
    the `trailing` columns. A key first seen later adds a column: the file is rewritten once with
    it, earlier rows left blank there. `keep_through=N` continues an existing file, dropping its
    rows after step N (and a torn last line); without it an existing file is replaced.
    """

    def __init__(self, path: Path, order: Callable[[str], Any] | None = None, trailing: tuple[str, ...] = (),
                 keep_through: int | None = None):
        self.path = path
        self.order = order
        self.trailing = trailing
        self.keys: list[str] = []
        self.handle = None
        self.writer = None
        if keep_through is not None and path.is_file():
            header, rows = self._read()
            if header:
                self.keys = [key for key in header[1:] if key not in trailing]
                kept = [row for row in rows if len(row) == len(header) and _step_of(row) is not None
                        and _step_of(row) <= keep_through]
                self._rewrite(kept_header=header, rows=kept)
                self._open("a")

    def _read(self) -> tuple[list[str], list[list[str]]]:
        with open(self.path, newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))
        return (lines[0], lines[1:]) if lines else ([], [])

    @property
    def columns(self) -> list[str]:
        return ["step", *self.keys, *self.trailing]

    def _rewrite(self, kept_header: list[str], rows: list[list[str]]) -> None:
        """Replace the file with `rows` (laid out as `kept_header`) under the current columns."""
        positions = {column: index for index, column in enumerate(kept_header)}
        lines = [self.columns]
        for row in rows:
            lines.append([row[positions[column]] if column in positions else "" for column in self.columns])
        text = _csv_text(lines)
        atomic_write_text(self.path, text)

    def _open(self, mode: str) -> None:
        self.handle = open(self.path, mode, newline="", encoding="utf-8")
        self.writer = csv.writer(self.handle)

    def write(self, step: int, values: Mapping[str, Any], **trailing: Any) -> None:
        new = [key for key in values if key not in self.keys]
        if new:
            new = sorted(new, key=self.order) if self.order else new
            if self.handle is None:
                self.keys = new
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._open("w")
                self.writer.writerow(self.columns)
            else:
                self.handle.close()
                header, rows = self._read()
                merged = self.keys + new
                self.keys = sorted(merged, key=self.order) if self.order else merged
                self._rewrite(kept_header=header, rows=rows)
                self._open("a")
        row = [str(step)]
        row += [_format_value(values[key]) if key in values else "" for key in self.keys]
        row += [_format_value(trailing.get(name, "")) for name in self.trailing]
        self.writer.writerow(row)
        self.handle.flush()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _step_of(row: list[str]) -> int | None:
    try:
        return int(row[0])
    except (ValueError, IndexError):
        return None


def _csv_text(lines: list[list[str]]) -> str:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(lines)
    return buffer.getvalue()


def stat_order(players: list[str]) -> Callable[[str], Any]:
    """Sort key for stat names: each player's total then its terms, players in schedule order."""
    rank = {player: index for index, player in enumerate(players)}

    def key(name: str) -> tuple:
        player, slash, term = name.partition("/")
        return (rank.get(player, len(rank)), player, slash != "", term)

    return key


# ----------------------------------------------------------------------------- progress output


class _Progress:
    """A tqdm bar, or a plain line every log interval; notes go above the bar or to stderr."""

    def __init__(self, plan: _Plan, players: list[str], start_step: int):
        self.plan = plan
        self.players = players
        self.bar = None
        self.last_step = start_step - 1
        self.last_time = time.perf_counter()
        if plan.show_bar:
            from tqdm import tqdm

            try:
                columns = os.get_terminal_size(sys.stderr.fileno()).columns
            except (OSError, ValueError):
                columns = 0
            # A terminal reporting a 0x0 size (some containers and CI runners) makes tqdm draw nothing.
            width = {"dynamic_ncols": True} if columns > 0 else {"ncols": 100, "nrows": 20}
            self.bar = tqdm(total=plan.steps, initial=start_step - 1, desc=plan.name, unit="it", file=sys.stderr,
                            smoothing=0.1, **width)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def _losses(self, stats: Mapping[str, float]) -> list[tuple[str, float]]:
        shown = [player for player in self.players if player in stats] or list(stats)[:4]
        return [(player, stats[player]) for player in shown]

    def log(self, step: int, stats: Mapping[str, float], seconds: float) -> None:
        if self.bar is not None:
            # refresh=False: tqdm redraws on its own clock, so logging adds no terminal write.
            self.bar.set_postfix_str(", ".join(f"{name}={value:.3f}" for name, value in self._losses(stats)),
                                     refresh=False)
            return
        now = time.perf_counter()
        rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_step, self.last_time = step, now
        left = (self.plan.steps - step) / rate if rate > 0 else math.inf
        width = len(str(self.plan.steps))
        losses = "  ".join(f"{name} {value:.4f}" for name, value in self._losses(stats))
        print(f"{self.plan.name} step {step:>{width}}/{self.plan.steps} | {losses} | {rate:.2f} it/s | "
              f"{_clock(seconds)} elapsed, {_clock(left)} left", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _format_metrics(metrics: Mapping[str, float]) -> str:
    return "  ".join(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"
                     for key, value in metrics.items())


# ----------------------------------------------------------------------------- state helpers


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    # non_blocking: pinned host batches overlap the copy with compute; otherwise it is a plain copy.
    return {key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for key, value in batch.items()}


def _first(batch: Mapping[str, Any], count: int) -> dict[str, Any]:
    return {key: value[:count] if isinstance(value, torch.Tensor) and value.dim() > 0 else value
            for key, value in batch.items()}


def _rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
    }


def _restore_rng(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([cuda_state.cpu() for cuda_state in cuda_states])
    python_state = state["python"]
    # torch.load gives back the tuples; setstate needs the inner one to be a tuple too.
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))


@contextlib.contextmanager
def _side_computation(nets: Mapping[str, nn.Module], seed: int, device: torch.device, grad: bool = False) -> Iterator[None]:
    """Run samples, evaluation or judge fitting without touching training: RNG and modes
    restored, and no grad unless `grad` (judges are fitted with it).

    The RNG is forked and reseeded so every grid uses the same noise and a resumed run does not
    depend on when samples were drawn; train/eval flags are restored module by module in case a
    program leaves a network in eval mode (batch norm and dropout would change training).
    """
    modes = [(module, module.training) for net in nets.values() for module in net.modules()]
    try:
        with forked_rng(device, seed), torch.set_grad_enabled(grad):
            yield
    finally:
        for module, training in modes:
            module.training = training


# ----------------------------------------------------------------------------- the loop


def _resume_point(plan: _Plan, progress_notes: list[str]) -> Path | None:
    """Apply the output-folder policy; return the checkpoint to resume from, if any."""
    checkpoints = plan.out_dir / "checkpoints"
    if plan.out_dir.exists() and not plan.out_dir.is_dir():
        raise LossgraphError(f"output folder {plan.out_dir} is a file; pass --out DIR to choose a folder")
    found = latest_checkpoint(checkpoints)
    if plan.resume:
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
        progress_notes.append(f"{plan.out_dir} has logs but no checkpoint: starting a new run, "
                              "metrics.csv and eval.csv are rewritten")
    return None


def train(program: Any, dataset: Any, options: RunOptions | None = None) -> RunSummary:
    """Train `program` on `dataset` as `options` say, writing logs, samples and checkpoints.

    `program` is a compiled lossgraph program (`spec`, `players`, `build_networks`, `trainer`,
    `samples`, `evaluate`); `dataset` has `batch(step, batch_size)` and `held_out(n)`.
    """
    plan = _plan(program, options or RunOptions())
    # several processes under torchrun (distributed.py): rank 0 alone writes and prints
    group = distributed.setup(plan.device, plan.seed)
    main = group is None or group.is_main
    if group is not None:
        group.local_slice(plan.batch_size)  # the global batch must divide among the processes
        plan = replace(plan, device=group.device, show_bar=plan.show_bar and main)
    notes: list[str] = []
    resume_from = _resume_point(plan, notes)
    resumed_state = None
    if resume_from is not None:
        resumed_state = read_checkpoint_state(resume_from, map_location=plan.device)
        written_by = resumed_state.get("spec")
        if written_by != plan.name:
            raise LossgraphError(f"checkpoint {resume_from} was written by spec '{written_by}', not '{plan.name}'; "
                                 f"pass --out DIR to train '{plan.name}' in a new folder")
    # RUN/spec.yaml: the resolved spec; a resume whose spec changed is refused before anything is touched
    spec_record = resolved.run_spec(program, plan.steps, plan.batch_size)
    if resumed_state is not None and spec_record is not None:
        notes.extend(resolved.check_resume(plan.out_dir, spec_record, plan.allow_spec_change))

    random.seed(plan.seed)
    torch.manual_seed(plan.seed)
    nets = program.build_networks(seed=plan.seed)
    for net in nets.values():
        net.to(plan.device)
    trainer = program.trainer(nets, device=str(plan.device), **plan.acceleration)
    acceleration = getattr(trainer, "acceleration", None)
    if acceleration is not None and acceleration.active:
        notes.append(f"training steps: {acceleration.describe()}")
    # the spec's `ema:` moving averages (ema.py): saved as networks `<name>@ema`, shown in samples and eval
    averages: dict[str, nn.Module] = dict(getattr(trainer, "ema_nets", {}))
    if averages:
        decays = ", ".join(f"{name} (decay {trainer.ema[name].decay:g})" for name in averages)
        notes.append(f"samples and evaluation use the moving averages (EMA) of {decays}")

    start = 1
    seconds_before = 0.0
    if resumed_state is not None:
        stored = stored_networks(resume_from)
        found = {ema_name(name): module for name, module in averages.items() if ema_name(name) in stored}
        load_network_tensors(resume_from, {**nets, **found}, resumed_state.pop("network_extra_states", {}),
                             ignore=[name for name in stored if is_ema_name(name)])
        try:
            trainer.load_state_dict(resumed_state["trainer"])
        except (KeyError, ValueError, RuntimeError) as error:
            raise LossgraphError(f"checkpoint {resume_from} does not fit this spec's trainer: {error}") from error
        missing = [name for name in averages if ema_name(name) not in stored]
        if missing:  # `ema:` added on resume (--allow-spec-change): start each at the resumed weights
            trainer.reset_ema(missing)
            notes.append(f"{resume_from} has no moving average of {', '.join(missing)}: starting it at the resumed weights")
        start = int(resumed_state["step"]) + 1
        seconds_before = float(resumed_state.get("seconds", 0.0))
        notes.append(f"resuming {plan.name} from {resume_from} (step {start - 1})")
    elif program.judges:
        # Judges are fitted once, before step 1, on their own RNG stream, so a run with judges
        # trains exactly as one without; a resumed run finds them fitted in its checkpoint.
        fit_start = time.perf_counter()
        with _side_computation(nets, plan.seed + 1, plan.device, grad=True):
            fitted = trainer.fit_judges(lambda index: _to_device(dataset.batch(index, plan.batch_size), plan.device))
        losses = ", ".join(f"{name} {loss:.4g}" for name, loss in fitted.items())
        notes.append(f"judges fitted on real batches in {time.perf_counter() - fit_start:.1f}s (final loss: {losses})")

    if group is not None:
        # a collective: every process has read the run folder before rank 0 writes to it
        group.prepare(program, trainer, plan.batch_size)
    if main:
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        if spec_record is not None:
            resolved.write(plan.out_dir, spec_record)
        plugins.write_record(plan.out_dir, program.spec, options.imports if options is not None else ())
    kept_step = start - 1 if resumed_state is not None else None
    metrics_log = CsvLog(plan.out_dir / "metrics.csv", order=stat_order(list(program.players)),
                         trailing=("skipped", "seconds") if plan.skip_nonfinite else ("seconds",),
                         keep_through=kept_step) if main else distributed.NullLog()
    skipped = int(resumed_state.get("skipped", 0)) if resumed_state is not None else 0
    guard = nonfinite.StepGuard(nets, trainer) if plan.skip_nonfinite else None
    eval_log = CsvLog(plan.out_dir / "eval.csv", keep_through=kept_step) if main else distributed.NullLog()
    events = None
    if plan.tensorboard and main:
        # a resumed run purges what the interrupted one logged past its checkpoint, as the CSVs drop it
        required = True if options is not None and options.tensorboard else None
        events, note = tensorboard_log.open_log(plan.out_dir, required, purge_step=start if resumed_state is not None else None)
        notes.append(note)
    with _side_computation(nets, plan.seed, plan.device):
        held_out = _to_device(dataset.held_out(plan.eval_count), plan.device)
    sample_inputs = _first(held_out, plan.sample_count)

    last = {"checkpoint": start - 1 if resumed_state is not None else 0, "sample": 0, "eval": 0}
    stats: dict[str, float] = {}
    metrics: dict[str, float] = {}
    checkpoint: Path | None = resume_from
    progress = _Progress(plan, list(program.players), start) if main else distributed.SilentProgress()
    for note in notes:
        progress.note(note)
    if resumed_state is not None:
        # Last thing before the loop, so nothing above can draw from the restored streams.
        _restore_rng(resumed_state["rng"])
        if group is not None:
            group.restore(trainer, resumed_state)  # this process's device stream and history pools
    clock_start = time.perf_counter()

    def elapsed() -> float:
        return seconds_before + time.perf_counter() - clock_start

    shown = {**nets, **averages}  # what samples and evaluation see: the moving averages where kept

    def write_samples(step: int) -> None:
        if not main:
            last["sample"] = step
            return
        with _side_computation(shown, plan.seed, plan.device):
            rows = program.samples(shown, sample_inputs)
        if rows:  # a spec without samples: writes no grids
            path = save_grid(rows, plan.out_dir / "samples" / f"step_{step:06d}.png")
            if events is not None:
                events.image(step, path)
        last["sample"] = step

    def evaluate(step: int) -> dict[str, float]:
        if not main:
            last["eval"] = step
            return {}
        with _side_computation(shown, plan.seed, plan.device):
            result = dict(program.evaluate(shown, held_out))
        if result:
            eval_log.write(step, result)
            if events is not None:
                events.scalars(step, result, prefix="eval/")
        last["eval"] = step
        return result

    def log_metrics(step: int, values: Mapping[str, Any], **trailing: Any) -> None:
        metrics_log.write(step, values, **trailing)
        if events is not None:
            events.scalars(step, {**values, **{key: trailing[key] for key in metrics_log.trailing if key in trailing}})

    def save(step: int) -> Path:
        saved_nets = {**nets, **{ema_name(name): module for name, module in averages.items()}}
        poisoned = nonfinite.nonfinite_network(saved_nets)  # a poisoned state is never saved
        if poisoned is not None:
            raise nonfinite.NonFiniteError(step, poisoned, latest_checkpoint(plan.out_dir / "checkpoints"))
        extra = {"spec": plan.name, "rng": _rng_state(), "seconds": elapsed(), "seed": plan.seed,
                 "batch_size": plan.batch_size, "skipped": skipped}
        if group is not None:  # every process takes part; rank 0 writes
            group.check_in_sync(nets)
            extra.update(group.checkpoint_extra(trainer))
            if not main:
                last["checkpoint"] = step
                return None
        trainer_state = dict(trainer.state_dict())
        trainer_state.pop("ema", None)  # the averages are in nets.safetensors, as networks <name>@ema
        path = save_checkpoint(plan.out_dir / "checkpoints", step, saved_nets, trainer_state, extra,
                               keep=plan.keep_checkpoints)
        if events is not None:
            events.flush()  # what a resume keeps is on disk with the checkpoint
        last["checkpoint"] = step
        return path

    step = start - 1
    try:
        for step in range(start, plan.steps + 1):
            if guard is not None:
                guard.save()
            if group is None:
                stats = trainer.step(_to_device(dataset.batch(step, plan.batch_size), plan.device))
            else:  # this process's slice of the global batch; losses averaged over processes
                stats = group.step(program, trainer, dataset, step, plan.batch_size)
            problem = nonfinite.first_nonfinite(stats, program.players)
            if problem is None and guard is not None:
                problem = nonfinite.nonfinite_network(nets)
            if problem is not None:
                if guard is None:
                    log_metrics(step, stats, seconds=elapsed())  # the poisoned step, for the record
                    causes = getattr(program, "hazards", {}).get(problem.key or "", ())
                    raise nonfinite.NonFiniteError(step, problem, latest_checkpoint(plan.out_dir / "checkpoints"), causes)
                guard.restore()
                skipped += 1
                if skipped <= 10:
                    more = "; further skips are only counted (metrics.csv, skipped)" if skipped == 10 else ""
                    progress.note(f"step {step}: {problem.describe()}; step skipped, its updates undone "
                                  f"({skipped} so far){more}")
            progress.advance()
            if _due(step, plan.log_every) or step == plan.steps:
                seconds = elapsed()
                log_metrics(step, stats, seconds=seconds, skipped=str(skipped))
                progress.log(step, stats, seconds)
            if _due(step, plan.eval_every):
                metrics = evaluate(step)
                if step != plan.steps:
                    progress.note(f"eval step {step}: {_format_metrics(metrics)}")
            if _due(step, plan.sample_every):
                write_samples(step)
            if _due(step, plan.checkpoint_every):
                checkpoint = save(step)
        loop_seconds = time.perf_counter() - clock_start
        steps_run = max(0, step - start + 1)

        final = max(step, start - 1)
        if last["checkpoint"] != final:
            checkpoint = save(final)
        if last["sample"] != final:
            write_samples(final)
        if last["eval"] != final:
            metrics = evaluate(final)
    except KeyboardInterrupt:
        progress.close()
        saved = latest_checkpoint(plan.out_dir / "checkpoints")
        where = f"the last checkpoint is {saved}; continue with --resume" if saved else "no checkpoint was written"
        print(f"interrupted at step {step}: {where}", file=sys.stderr, flush=True)
        raise
    finally:
        progress.close()
        metrics_log.close()
        eval_log.close()
        if events is not None:
            events.close()

    if group is not None:
        group.close(trainer)
    if not main:
        return RunSummary(out_dir=plan.out_dir, step=final, steps_run=steps_run, seconds=loop_seconds,
                          steps_per_second=steps_run / loop_seconds if loop_seconds > 0 else 0.0,
                          stats=dict(stats), checkpoint=checkpoint, skipped=skipped)
    if steps_run == 0:
        print(f"{plan.name}: already at step {final} of {plan.steps}; nothing to train", flush=True)
    if metrics:
        print(f"{plan.name} held-out metrics at step {final}: {_format_metrics(metrics)}", flush=True)
    steps_per_second = steps_run / loop_seconds if loop_seconds > 0 else 0.0
    skips = f"; {skipped} steps skipped for a non-finite loss" if plan.skip_nonfinite else ""
    print(f"{plan.name}: {steps_run} steps in {_clock(loop_seconds)} ({steps_per_second:.2f} it/s){skips}; "
          f"outputs in {plan.out_dir}", flush=True)
    return RunSummary(out_dir=plan.out_dir, step=final, steps_run=steps_run, seconds=loop_seconds,
                      steps_per_second=steps_per_second, stats=dict(stats), metrics=dict(metrics),
                      checkpoint=checkpoint, skipped=skipped)
