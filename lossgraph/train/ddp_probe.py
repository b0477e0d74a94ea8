"""Which parameters DDP averages, found before training (distributed.py, Note [DDP per network]).

`used_parameters` runs one iteration of the schedule on copies of the networks and records the
parameters each backward pass reaches; `partly_reached` names the networks that two passes reach in
different parts, which DDP cannot average pass by pass.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import nn

from lossgraph.train.accelerate import EAGER
from lossgraph.train.protocols import DistributedProgram
from lossgraph.train.rng import forked_rng

if TYPE_CHECKING:
    from lossgraph.train.trainer import Trainer


def used_parameters(program: DistributedProgram, trainer: Trainer, part: slice, device: torch.device) -> tuple[set[int], list[set[int]]]:
    """The ids of the parameters that get a gradient in an iteration of the schedule, and those
    each backward pass reaches (a pass ends where an optimizer steps).

    Found by running one iteration on copies of the networks, with an example batch of this rank's
    size; the RNG streams and the networks themselves are left as they were. The iteration probed
    is the first that takes every step (`program.full_iteration`): a warm-up's idle steps would leave their
    networks' parameters looking unused. Parameters that never take a gradient (a moving average's)
    are not watched.
    """
    size = part.stop - part.start
    used: set[int] = set()
    passes: list[set[int]] = [set()]  # the parameters each backward pass reached, in order

    def reached(key: int) -> None:
        used.add(key)
        passes[-1].add(key)

    def next_pass(*_: Any) -> None:  # an optimizer steps: the backward before it is over
        if passes[-1]:
            passes.append(set())

    with forked_rng(device):
        copies = copy.deepcopy(trainer.nets)  # one deepcopy: modules shared between networks stay shared
        for name, net in trainer.nets.items():
            for original, twin in zip(net.parameters(), copies[name].parameters()):
                if twin.requires_grad:
                    twin.register_post_accumulate_grad_hook(lambda _, key=id(original): reached(key))
        # eager: nothing compiled or graphed for one probing iteration (and torch's tree of
        # CUDA graphs, which a graphed trainer resets, is left to the run's own trainer)
        per_epoch = getattr(trainer, "steps_per_epoch", None)  # a schedule in epochs needs it (epochs.py)
        probe = program.trainer(copies, device=device, **EAGER, **({} if per_epoch is None else {"steps_per_epoch": per_epoch}))
        probe.iteration = program.full_iteration
        for optimizer in {id(o): o for o in getattr(probe, "optimizers", {}).values()}.values():
            optimizer.register_step_pre_hook(next_pass)
        inputs = program.example_inputs(batch_size=size, seed=0)
        probe.step({name: value.to(device) for name, value in inputs.items()})
    return used, [reach for reach in passes if reach]


def partly_reached(nets: Mapping[str, nn.Module], trained: Mapping[str, Any], passes: list[set[int]]) -> list[str]:
    """The trained networks that two backward passes of an iteration reach in different parts
    (TUNIT's C: its own step reaches both heads, G's step only the style head). DDP averages a
    network's gradients pass by pass and expects each pass to reach every parameter it watches, so
    it would stop the run at such a network's next forward: distributed.py averages these by hand."""
    found = []
    for name in trained:
        parameters = {id(p) for p in nets[name].parameters()}
        reaches = [reach & parameters for reach in passes if reach & parameters]
        every = set().union(*reaches) if reaches else set()
        if any(reach != every for reach in reaches):
            found.append(name)
    return found
