"""Epochs: a run's length and learning-rate schedules counted in passes over the dataset.

`train: {epochs: 200}` and `optim: {G: {schedule: {constant_epochs: 100, decay_epochs: 100}}}`
count epochs, as the reference implementations do (`n_epochs`, `n_epochs_decay`). lossgraph steps
through batches, so a run turns epochs into steps once, before training:

    steps per epoch = ceil(items per epoch / batch size)

where an epoch is one pass over the dataset's largest stream (`len(dataset)`, data/dataset.py;
the CycleGAN repository's `max(A_size, B_size)`), and the last batch of an epoch is a partial one
in the reference loader. Here batches run on across the boundary instead (the next epoch's items
fill the batch), so an epoch of `ceil(...)` steps may see a few items of the next; with batch 1,
the reference recipes' size, the two agree exactly. A schedule in epochs moves the rate once an
epoch: step n is in epoch (n - 1) // steps_per_epoch + 1 (`LRScheduleSpec.factor`).

A dataset without a length cannot say how long an epoch is; a spec in epochs then stops the run
with that message. `--steps` on the command line still counts steps and replaces `train.epochs`.
"""

from __future__ import annotations

import math
from typing import Any

from lossgraph.language.errors import LossgraphError


def counts_epochs(spec: Any) -> bool:
    """Whether `spec` (a `Spec`, or a stand-in with a `train:`) counts anything in epochs."""
    if getattr(getattr(spec, "train", None), "epochs", None) is not None:
        return True
    optimizers = getattr(spec, "optim", None) or {}
    return any(getattr(getattr(optimizer, "schedule", None), "in_epochs", False) for optimizer in optimizers.values())


def steps_per_epoch(spec: Any, dataset: Any, batch_size: int) -> int | None:
    """Iterations in one epoch of `dataset` at `batch_size`; None when `spec` counts no epochs."""
    if not counts_epochs(spec):
        return None
    try:
        items = len(dataset)
    except TypeError:
        raise LossgraphError(f"the spec counts epochs (train.epochs or a schedule in epochs), but the dataset "
                             f"({type(dataset).__name__}) has no length to make an epoch of; count steps "
                             f"instead (train.steps, constant/decay)") from None
    if items < 1:
        raise LossgraphError("the spec counts epochs, but the dataset is empty")
    return math.ceil(items / batch_size)
