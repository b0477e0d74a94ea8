"""Work that draws random numbers without disturbing training's streams.

Samples, evaluation, judge fitting, a rank's own draws inside a step and the probe that finds the
parameters DDP averages all run inside `forked_rng`: torch's CPU stream, the device's CUDA stream
and Python's `random` are set aside and put back afterwards, so training draws what it would have
drawn without them, and a resumed run repeats exactly.
"""

from __future__ import annotations

import contextlib
import random
from typing import Iterator

import torch


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
