"""What a run writes as it trains, besides checkpoints: logs, sample grids, held-out metrics.

    metrics.csv   step, every stat the trainer returns, [skipped,] seconds (csv_log.py)
    eval.csv      step, every held-out metric
    samples/      step_000500.png: the fixed held-out inputs, a row per `program.samples` entry
    tensorboard/  the same scalars and grids as events, when the run writes them (tensorboard_log.py)
    summary.json  the last evaluation, the best checkpoint, the feature network (summary.py)

Samples and evaluation see the held-out batch drawn once at the start, run under their own RNG
reseeded from the run's seed every time (rng.side_computation), and use the moving averages where
the trainer keeps them (`RunNetworks.shown`). Batch metrics see the first `eval_count` held-out
samples; `fid`, `kid` and `diversity` the whole held-out set (metrics/evaluation.py), their
columns in `evaluate:`'s order among the others. A resumed run keeps its logs up to its checkpoint's
step and drops the rest, TensorBoard events included. A torchrun process other than rank 0
writes nothing and skips samples and evaluation (`writes=False`).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from lossgraph.train import tensorboard_log
from lossgraph.train.csv_log import CsvLog, stat_order
from lossgraph.train.device import to_device
from lossgraph.train.images import save_grid
from lossgraph.train.options import Plan
from lossgraph.train.protocols import Batch, Dataset, MeasuresDistributions, Program
from lossgraph.train.rng import side_computation
from lossgraph.train.run_state import RunNetworks
from lossgraph.train.summary import write_summary


class Outputs:
    """The logs, grids and metrics of one run; open with `Outputs.open`, close when done."""

    def __init__(self, plan: Plan, program: Program, networks: RunNetworks, held_out: dict[str, Any],
                 metrics_log: CsvLog | None, eval_log: CsvLog | None,
                 events: tensorboard_log.EventLog | None, distributions: Any = None):
        self.plan = plan
        self.program = program
        self.networks = networks
        self.held_out = held_out
        self.sample_inputs = first(held_out, plan.options.sample_count)
        self.metrics_log = metrics_log
        self.eval_log = eval_log
        self.events = events
        self.distributions = distributions  # metrics/evaluation.DistributionEvaluation, or None
        order = list(getattr(program.spec, "evaluate", None) or ())
        self.column = {name: index for index, name in enumerate(order)}  # eval.csv keeps evaluate:'s order

    @property
    def writes(self) -> bool:
        """False on a torchrun process other than rank 0: it writes nothing."""
        return self.metrics_log is not None

    @classmethod
    def open(cls, plan: Plan, program: Program, dataset: Dataset, networks: RunNetworks, kept_step: int | None,
             writes: bool, notes: list[str]) -> Outputs:
        """The run's outputs. `kept_step`: a resumed run's checkpoint step, whose logs are kept up to
        it; None starts them afresh. `writes`: False on a torchrun process other than rank 0."""
        metrics_log = eval_log = events = None
        if writes:
            trailing = ("skipped", "seconds") if plan.options.skip_nonfinite else ("seconds",)
            metrics_log = CsvLog(plan.out_dir / "metrics.csv", order=stat_order(list(program.players)),
                                 trailing=trailing, keep_through=kept_step)
            eval_log = CsvLog(plan.out_dir / "eval.csv", keep_through=kept_step)
            if plan.tensorboard:
                # a resumed run purges what the interrupted one logged past its checkpoint, as the CSVs drop it
                required = True if plan.options.tensorboard else None
                purge = kept_step + 1 if kept_step is not None else None
                events, note = tensorboard_log.open_log(plan.out_dir, required, purge_step=purge)
                notes.append(note)
        distributions = None
        with side_computation(networks.trained, plan.options.seed, plan.device):
            held_out = to_device(dataset.held_out(plan.options.eval_count), plan.device)
            if writes and isinstance(program, MeasuresDistributions) and program.distributions:
                from lossgraph.train.metrics.evaluation import DistributionEvaluation

                distributions = DistributionEvaluation.open(program, dataset, networks.shown, plan.device,
                                                            plan.options.eval_count)
                notes.append(distributions.describe())
                if events is not None:
                    events.text("eval/features", distributions.describe())
        return cls(plan, program, networks, held_out, metrics_log, eval_log, events, distributions)

    def log_metrics(self, step: int, values: Mapping[str, Any], **trailing: Any) -> None:
        """A row of metrics.csv (and its scalars as events); `trailing`: `seconds`, `skipped`."""
        if not self.writes:
            return
        self.metrics_log.write(step, values, **trailing)
        if self.events is not None:
            kept = {key: trailing[key] for key in self.metrics_log.trailing if key in trailing}
            self.events.scalars(step, {**values, **kept})

    def write_samples(self, step: int) -> None:
        """The sample grid of `step` (none for a spec without samples)."""
        if not self.writes:
            return
        shown = self.networks.shown
        with side_computation(shown, self.plan.options.seed, self.plan.device):
            rows = self.program.samples(shown, self.sample_inputs)
        if rows:
            path = save_grid(rows, self.plan.out_dir / "samples" / f"step_{step:06d}.png")
            if self.events is not None:
                self.events.image(step, path)

    def evaluate(self, step: int) -> dict[str, float]:
        """The held-out metrics at `step`, logged to eval.csv; {} where this process writes nothing."""
        if not self.writes:
            return {}
        shown = self.networks.shown
        with side_computation(shown, self.plan.options.seed, self.plan.device):
            result = dict(self.program.evaluate(shown, self.held_out))
        if self.distributions is not None:
            with side_computation(shown, self.plan.options.seed, self.plan.device):
                result.update(self.distributions.measure(shown))
            result = dict(sorted(result.items(), key=lambda item: self.column.get(item[0], len(self.column))))
        if result:
            self.eval_log.write(step, result)
            if self.events is not None:
                self.events.scalars(step, result, prefix="eval/")
        return result

    def write_summary(self, step: int | None, metrics: Mapping[str, float], best: Mapping[str, Any] | None) -> None:
        """RUN/summary.json (summary.py): the evaluation of `step`, the best checkpoint, the features."""
        if not self.writes:
            return
        features = self.distributions.record() if self.distributions is not None else None
        write_summary(self.plan.out_dir, self.plan.name, step, metrics, best, features)

    def flush(self) -> None:
        """Put what was logged on disk (after a checkpoint: what a resume keeps is there with it)."""
        if self.events is not None:
            self.events.flush()

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for log in (self.metrics_log, self.eval_log):
            if log is not None:
                log.close()
        if self.events is not None:
            self.events.close()


def first(batch: Batch, count: int) -> dict[str, Any]:
    """The first `count` samples of every batched tensor in `batch`."""
    return {key: value[:count] if isinstance(value, torch.Tensor) and value.dim() > 0 else value
            for key, value in batch.items()}
