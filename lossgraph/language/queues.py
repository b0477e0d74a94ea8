"""Queues of past values a loss reads: `queues: {Q: {size: 1024, push: "C_ema.style(x_tf)"}}`.

A queue is a first-in, first-out buffer of rows (MoCo's and TUNIT's negative keys). Formulas
read it by its name as a constant of shape (rows, ...): no gradient reaches what pushed it. Before
the first iteration the trainer fills it with the push formula's rows on the first batch; after
each iteration it pushes that iteration's rows and drops the oldest beyond `size`
(train/queues.py). The push formula is computed without gradient, on the iteration's batch and
random draws, with the networks as the iteration's steps left them, before the moving averages
(`average:`) of that iteration are updated.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class QueueSpec(BaseModel):
    """`{size: 1024, push: FORMULA}`: the newest `size` rows of FORMULA, one row per sample."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(gt=0)
    push: str
