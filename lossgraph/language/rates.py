"""Learning-rate schedules of an optimizer (`optim: {G: {..., schedule: {...}}}`): the model and
the rate it gives each step. Which keys may go together is `schedules.py`'s check."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class LRScheduleSpec(BaseModel):
    """A learning-rate schedule: CycleGAN's linear policy, counted in steps or in epochs, or a step
    policy that multiplies the rate by `gamma` at fixed iterations.

    `{constant: 1000, decay: 1000}`: the optimizer's `lr` for steps 1..constant, then at step n
    `lr * (1 - (n - constant) / (decay + 1))`, so the last decay step (constant + decay) runs at
    `lr / (decay + 1)` and every later step at 0. `{constant_epochs: 100, decay_epochs: 100}`: the
    same rule over epochs (the released code's n_epochs / n_epochs_decay), the rate moving once an
    epoch; a run knows its steps per epoch from the dataset (train/epochs.py).
    `{every: N, gamma: g}`: step n at `lr * g ** ((n - 1) // N)` (torch's StepLR), `{milestones:
    [...], gamma: g}` at `lr * g ** k`, k the milestones below n (MultiStepLR). One form only:
    `language/schedules.py` refuses a mix, at its place.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    constant: int | None = Field(default=None, ge=0)
    decay: int | None = Field(default=None, gt=0)
    constant_epochs: int | None = Field(default=None, ge=0)
    decay_epochs: int | None = Field(default=None, gt=0)
    every: int | None = Field(default=None, gt=0)
    milestones: list[Annotated[int, Field(gt=0)]] | None = None
    gamma: float | None = Field(default=None, gt=0)

    @property
    def in_epochs(self) -> bool:
        return self.decay_epochs is not None

    def factor(self, step: int, steps_per_epoch: int | None = None) -> float:
        """The learning rate of 1-based `step` as a fraction of the optimizer's `lr`; an epoch
        schedule needs `steps_per_epoch` (step n is in epoch (n - 1) // steps_per_epoch + 1)."""
        if self.every is not None or self.milestones is not None:
            done = step - 1  # iterations finished before this one, as torch's step schedulers count
            drops = done // self.every if self.every is not None else sum(1 for m in self.milestones if m <= done)
            return self.gamma ** drops
        if self.in_epochs:
            if steps_per_epoch is None or steps_per_epoch < 1:
                raise ValueError("a schedule in epochs needs the number of steps per epoch")
            count, constant, decay = (step - 1) // steps_per_epoch + 1, self.constant_epochs or 0, self.decay_epochs
        else:
            count, constant, decay = step, self.constant or 0, self.decay
        return max(0.0, 1.0 - max(0, count - constant) / (decay + 1))
