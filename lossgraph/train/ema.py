"""Exponential moving averages of network weights, and the learning-rate schedules of the spec.

`ema: {G_XY: 0.999}` keeps a shadow copy of network G_XY (parameters and buffers) that follows its
weights: once per iteration of the schedule, after its last step (`Trainer.step`),

    shadow <- decay * shadow + (1 - decay) * live        (every floating-point tensor)
    shadow <- live                                       (integer buffers, e.g. BatchNorm's counter)

starting from the initial weights, with no bias correction. With `{decay: 0.999, start: 710}` the
shadow is a copy of the live weights after iterations 0 to 709 and an average from 710 on. However many steps update G_XY in an
iteration (a critic's `{D: 5}`, StarGAN v2's two steps of G), the average moves once, after the last
of them (and after a clip's clamp), as the released code of StarGAN v2 moves its averages once per
iteration, after both generator steps. The run loop samples and evaluates with the averages, and
saves them in checkpoints as extra networks named `G_XY@ema` (`lossgraph translate --ema` applies them).

`optim: {G: {adam: {...}, schedule: {constant: 1000, decay: 1000}}}` scales G's learning rate as
`LRScheduleSpec.factor` says, stepped once per iteration of the schedule (not once per repeated
critic step), through a `torch.optim.lr_scheduler.LambdaLR` whose state is in the trainer's. A
schedule in epochs (`{constant_epochs: 100, decay_epochs: 100}`) moves once every
`steps_per_epoch` iterations (train/epochs.py).
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import torch
from torch import nn

EMA_SUFFIX = "@ema"


def ema_name(network: str) -> str:
    """The name a network's average is saved under in a checkpoint: `G_XY@ema`."""
    return network + EMA_SUFFIX


def is_ema_name(name: str) -> bool:
    return name.endswith(EMA_SUFFIX)


class EMA:
    """A shadow copy of `network` whose floating-point parameters and buffers are a moving average."""

    def __init__(self, network: nn.Module, decay: float, start: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"an EMA decay is strictly between 0 and 1, got {decay}")
        self.decay, self.start = float(decay), int(start)
        self.live = network
        self.module = copy.deepcopy(network)
        self.module.requires_grad_(False)
        self.module.eval()
        live = network.state_dict(keep_vars=True)
        shadow = self.module.state_dict(keep_vars=True)
        self._averaged: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        self._copied: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        seen: set[int] = set()
        for key, target in shadow.items():
            if not isinstance(target, torch.Tensor) or id(target) in seen:
                continue  # a tensor tied under two names is updated once
            seen.add(id(target))
            pairs = self._averaged if target.is_floating_point() else self._copied
            pairs[0].append(target.detach())
            pairs[1].append(live[key].detach())

    @torch.no_grad()
    def update(self, iteration: int | None = None) -> None:
        """One step of the average towards the live weights after iteration `iteration` (from 0);
        before `start` a copy of them."""
        if iteration is not None and iteration < self.start:
            self.reset()
            return
        shadow, live = self._averaged
        if shadow:
            torch._foreach_lerp_(shadow, live, 1.0 - self.decay)
        for target, source in zip(*self._copied):
            target.copy_(source)

    @torch.no_grad()
    def reset(self) -> None:
        """Restart the average at the live weights."""
        for target, source in zip(*self._averaged):
            target.copy_(source)
        for target, source in zip(*self._copied):
            target.copy_(source)

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.module.load_state_dict(state)  # copies in place, so the update lists stay valid


class LossAverage:
    """A network a loss reads that is another's moving average (`average:` in its networks entry,
    language/averages.py). After the steps of iteration i (from 0) the trainer calls `update(i)`:
    while i < start the network copies its source; from start on its parameters move as
    `avg <- decay * avg + (1 - decay) * source`. Its buffers (batch norm's statistics, integer
    counters) are copied from the source after iterations 0, buffers_every, 2 * buffers_every, ...;
    in between, its own forward passes in training mode update them as any batch norm does.
    The update is a function of i and the weights alone, so the network itself is its whole
    state: checkpoints save and restore it as the network it is."""

    def __init__(self, module: nn.Module, source: nn.Module, decay: float, start: int = 0, buffers_every: int = 1):
        self.module, self.source = module, source
        self.decay, self.start, self.buffers_every = float(decay), int(start), int(buffers_every)
        self._parameters = ([p.detach() for p in module.parameters()], [p.detach() for p in source.parameters()])
        self._buffers = ([b for b in module.buffers()], [b for b in source.buffers()])
        if [p.shape for p in self._parameters[0]] != [p.shape for p in self._parameters[1]]:
            raise ValueError("a moving average has its source's parameters, shape for shape")

    @torch.no_grad()
    def update(self, iteration: int) -> None:
        mine, theirs = self._parameters
        if iteration < self.start:
            torch._foreach_copy_(mine, theirs)
        elif mine:
            torch._foreach_lerp_(mine, theirs, 1.0 - self.decay)
        if iteration < self.start or iteration % self.buffers_every == 0:
            for target, source in zip(*self._buffers):
                target.copy_(source)


def make_scheduler(schedule: Any, optimizer: torch.optim.Optimizer,
                   steps_per_epoch: int | None = None) -> torch.optim.lr_scheduler.LambdaLR | None:
    """A LambdaLR for a spec's `schedule:` (None without one); its `last_epoch` counts the
    iterations done, so the rate in effect for 1-based step n is `lr * schedule.factor(n)`.
    A schedule in epochs reads `steps_per_epoch` (train/epochs.py); without it, a ValueError."""
    if schedule is None:
        return None
    if getattr(schedule, "in_epochs", False) and steps_per_epoch is None:
        raise ValueError("the schedule counts epochs, so the trainer needs steps_per_epoch (lossgraph run "
                         "passes the dataset's items per epoch divided by the batch size, rounded up)")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda done: schedule.factor(done + 1, steps_per_epoch))


def sync_scheduler(scheduler: torch.optim.lr_scheduler.LambdaLR, base_lr: float | list[float], done: int) -> None:
    """Put the spec's learning rate at `done` iterations into the optimizer (after a state load):
    one rate, or one per parameter group (a network with a rate of its own).

    For the spec the state was saved with this changes nothing; after `--allow-spec-change` it
    makes the new `lr` and `schedule` take effect from the resumed step on.
    """
    groups = scheduler.optimizer.param_groups
    rates = list(base_lr) if isinstance(base_lr, (list, tuple)) else [base_lr] * len(groups)
    scheduler.base_lrs = rates
    scheduler.last_epoch = done
    for group, rate in zip(groups, rates):
        group["initial_lr"] = rate
        group["lr"] = rate * scheduler.lr_lambdas[0](done)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


__all__ = ["EMA", "EMA_SUFFIX", "LossAverage", "ema_name", "is_ema_name", "make_scheduler", "sync_scheduler"]
