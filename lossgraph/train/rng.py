"""A run's random streams: kept in checkpoints, and set aside for work beside training.

`rng_state()` is every stream training draws from (torch's CPU stream, every CUDA device's,
Python's `random`); a checkpoint holds it and `restore_rng` puts it back, so a resumed run draws
what the uninterrupted run drew.

Samples, evaluation, judge fitting, a rank's own draws inside a step and the probe that finds the
parameters DDP averages all run inside `forked_rng`: the CPU stream, the device's CUDA stream
and Python's `random` are set aside and put back afterwards, so training draws what it would have
drawn without them, and a resumed run repeats exactly. `side_computation` adds what samples,
evaluation and judge fitting also must leave as they found it: the networks' train/eval modes.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator, Mapping

import torch
from torch import nn


@contextlib.contextmanager
def forked_rng(device: torch.device, seed: int | None = None) -> Iterator[None]:
    """Inside: the streams of the CPU, of `device` (when CUDA) and of Python's `random`, each
    started at `seed` when one is given; outside, afterwards: each as it was before."""
    cuda = device.type == "cuda"
    index = device.index if device.index is not None else (torch.cuda.current_device() if cuda else None)
    python_state = random.getstate()
    try:
        with torch.random.fork_rng(devices=[index] if cuda else []):
            if seed is not None:
                torch.random.default_generator.manual_seed(seed)
                if cuda:
                    with torch.cuda.device(index):
                        torch.cuda.manual_seed(seed)
                random.seed(seed)
            yield
    finally:
        random.setstate(python_state)


@contextlib.contextmanager
def side_computation(nets: Mapping[str, nn.Module], seed: int, device: torch.device, grad: bool = False) -> Iterator[None]:
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


def rng_state() -> dict[str, Any]:
    """Every stream training draws from, as a checkpoint keeps it (`state.pt`'s `rng`)."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
    }


def restore_rng(state: Mapping[str, Any]) -> None:
    """Put back what `rng_state` returned; CUDA streams only onto as many devices as were saved."""
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([cuda_state.cpu() for cuda_state in cuda_states])
    python_state = state["python"]
    # torch.load gives back the tuples; setstate needs the inner one to be a tuple too.
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
