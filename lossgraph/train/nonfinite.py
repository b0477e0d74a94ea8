"""Non-finite losses during a run: stop with a located message, or skip the step.

By default a step whose loss is NaN or infinite stops the run with `NonFiniteError` (a
`LossgraphError`: the CLI exits 2), naming the step, the player and its first non-finite term.
The last good checkpoint stays as it was: a poisoned state is never saved, because the run stops
before its next checkpoint and every checkpoint is refused unless all network tensors are finite
(an update can poison the parameters while the loss that produced it was still finite).

With `skip_nonfinite` (`--skip-nonfinite`) the run takes a `StepGuard` snapshot before each
step: the network tensors (parameters and buffers) and a deep copy of `trainer.state_dict()`
(optimizer moments and step counts, history pools, the iteration counter, learning-rate
schedulers, the moving averages of `ema:` networks, and whatever else a trainer keeps there). A step whose losses or resulting network tensors are not finite is undone
from the snapshot, so none of its updates is applied, and the run goes on with the next batch;
the random streams are not rewound, so a resumed run still repeats exactly. The snapshot costs a
copy of the networks and of the trainer state per step, which is why skipping is opt-in.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from lossgraph.language.errors import LossgraphError
from lossgraph.train.protocols import Trainer

SKIP_FLAG = "--skip-nonfinite"


@dataclass(frozen=True)
class NonFinite:
    """What was not finite: a player's loss (and its first non-finite term) or a network's tensors."""

    player: str | None = None
    key: str | None = None  # the first non-finite stat of that player: a term such as "D/adv_Y", or "D"
    value: float | None = None
    network: str | None = None

    def describe(self) -> str:
        if self.network is not None:
            return (f"network {self.network} has non-finite parameters or buffers after the update, "
                    "though every loss was finite (a gradient overflowed?)")
        what = f"player {self.player}'s loss is not finite"
        if self.key is not None and self.key != self.player:
            what += f": term {self.key} = {self.value}"
        else:
            what += f" ({self.player} = {self.value})"
        return what


class NonFiniteError(LossgraphError):
    """A run stopped at a non-finite loss or state; `step`, `player`, `term`, `network` say where."""

    def __init__(self, step: int, problem: NonFinite, checkpoint: Path | None, causes: Iterable[str] = ()):
        self.step = step
        self.problem = problem
        self.player = problem.player
        self.term = problem.key if problem.key != problem.player else None
        self.network = problem.network
        self.checkpoint = checkpoint
        kept = (f"the last good checkpoint is {checkpoint} (continue with --resume)" if checkpoint is not None
                else "no checkpoint was written")
        self.causes = list(causes)
        if self.causes:
            # the domain rules (passes/domains.py) found where this term can overflow in float32
            likely = "; ".join(self.causes)
            advice = f"Likely cause, from the spec: {likely}. Rewrite it in a bounded form, or pass {SKIP_FLAG} to skip such steps (their updates are not applied)."
        else:
            advice = (f"No log, exp, division or root in this term can overflow for the values its inputs allow, "
                      f"so the values going in did: training diverged. Lower the learning rate, or pass {SKIP_FLAG} "
                      f"to skip such steps (their updates are not applied).")
        super().__init__(
            f"step {step}: {problem.describe()}. The run stopped and this state was not saved; {kept}. {advice}")


def first_nonfinite(stats: Mapping[str, float], players: Iterable[str]) -> NonFinite | None:
    """The first player (in stats order) with a non-finite loss or term, and its first such stat.

    Terms come before their player's total in that search, so the culprit term is named; stats
    of other things (not `P` or `P/term` for a player P) are not losses and are ignored.
    """
    players = set(players)
    for key, value in stats.items():
        player = key.partition("/")[0]
        if player not in players or _finite(value):
            continue
        terms = [(name, value) for name, value in stats.items()
                 if name.startswith(player + "/") and not _finite(value)]
        name, value = terms[0] if terms else (player, stats.get(player, value))
        return NonFinite(player=player, key=name, value=value)
    return None


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True  # not a number: not a loss


def _floating(nets: Mapping[str, nn.Module]) -> dict[str, list[torch.Tensor]]:
    return {name: [tensor for tensor in net.state_dict().values()
                   if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.numel()]
            for name, net in nets.items()}


def nonfinite_network(nets: Mapping[str, nn.Module]) -> NonFinite | None:
    """The first network with a NaN or infinite parameter or buffer; one device sync when all are finite."""
    tensors = _floating(nets)
    every = [tensor for group in tensors.values() for tensor in group]
    if not every or bool(torch.stack([torch.isfinite(tensor).all() for tensor in every]).all()):
        return None
    for name, group in tensors.items():
        if not all(bool(torch.isfinite(tensor).all()) for tensor in group):
            return NonFinite(network=name)
    return None


class StepGuard:
    """A snapshot of the networks and the trainer state, taken before a step and put back if needed."""

    def __init__(self, nets: Mapping[str, nn.Module], trainer: Trainer):
        self.trainer = trainer
        seen: dict[int, torch.Tensor] = {}
        for net in nets.values():
            for tensor in net.state_dict(keep_vars=True).values():
                if isinstance(tensor, torch.Tensor):
                    seen.setdefault(id(tensor), tensor)  # a shared module is stored once
        self.tensors = list(seen.values())
        self.copies = [tensor.detach().clone() for tensor in self.tensors]
        self.trainer_state: dict[str, Any] | None = None

    @torch.no_grad()
    def save(self) -> None:
        _copy_all(self.copies, [tensor.detach() for tensor in self.tensors])
        self.trainer_state = copy.deepcopy(self.trainer.state_dict())

    @torch.no_grad()
    def restore(self) -> None:
        _copy_all([tensor.detach() for tensor in self.tensors], self.copies)
        self.trainer.load_state_dict(self.trainer_state)
        self.trainer_state = None  # the optimizers may now hold these tensors; save() copies afresh


def _copy_all(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    if not targets:
        return
    try:
        torch._foreach_copy_(targets, sources)
    except (AttributeError, RuntimeError, TypeError):
        for target, source in zip(targets, sources):
            target.copy_(source)
