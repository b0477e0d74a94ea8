"""On the CPU, a network runs compiled in a compiled step only where that is measured faster.

Note [Compiled only where faster on the CPU]
    On the CPU inductor calls the same oneDNN convolutions as eager and can only save the
    elementwise work around them, while each compiled call adds guards and runtime wrappers.
    Whether that pays depends on the network and its input size, not on the objective: measured
    side by side at batch 16, 32x32, ResNet generators take 0.76 to 0.93 of eager's forward and
    backward, U-Nets and DCGAN networks 0.90 to 1.09, and pix2pix's compiled iteration (its U-Net
    compiled) took 1.12 of its eager one. So at a network's first call in a compiled CPU step,
    `Measured` times the call's forward and backward both ways on that call's own input shapes
    (process CPU time, so that other processes on the machine count less, median of `REPEATS`
    after one warm-up each, the compile included in the warm-up) and keeps the compiled graph only
    where it takes at most `MARGIN` of eager's time. The trial leaves no trace: it runs on copies of the
    network's buffers (batch-norm statistics), the RNG state is restored, and no `.grad` is written.
    The choice follows timings, so two runs may choose differently; both paths compute the same
    function (compiled kernels round differently, as compiled steps always do).

Note [Tied networks choose together]
    Networks that share weights or buffers (CoGAN's trunks) take one choice: the group's first
    call measures, and the others follow it. Mixed, a step can fail: an eager batch norm saves its
    running statistics for its backward, and a compiled call of the same module later in the step
    writes them back in place (`copy_`), bumping their version before that backward reads them.
    CoGAN with G2 compiled and G1 eager under bf16 failed so ("modified by an inplace operation").
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

REPEATS = 3
MARGIN = 0.97  # compiled must save at least 3%: below that, guards and timing noise decide


class Choice:
    """Compiled or eager, once decided: one per network, or one for networks tied together."""

    def __init__(self) -> None:
        self.compiled: bool | None = None


class Measured:
    """Calls `eager` or `compiled`, whichever the first call measures faster (Notes above)."""

    def __init__(self, net: nn.Module, compiled: Callable[..., Any], on_choice: Callable[[Callable[..., Any]], None],
                 choice: Choice | None = None):
        self.net = net
        self.compiled = compiled
        self.on_choice = on_choice
        self.choice = choice or Choice()
        self.timings: dict[str, float] = {}

    def __call__(self, *args: Any) -> Any:
        if self.choice.compiled is None:  # the first call of its group measures
            self.choice.compiled = self.choose(args) is self.compiled
        chosen = self.compiled if self.choice.compiled else self.net
        self.on_choice(chosen)
        return chosen(*args)

    def choose(self, args: tuple[Any, ...]) -> Callable[..., Any]:
        with preserved(self.net):
            trial = [a.detach().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a for a in args]
            backward = torch.is_grad_enabled()
            candidates = {"eager": self.net, "compiled": self.compiled}
            for call in candidates.values():
                run_once(call, self.net, trial, backward)  # warm-up: the compile happens here
            times: dict[str, list[float]] = {name: [] for name in candidates}
            for _ in range(REPEATS):
                for name, call in candidates.items():
                    start = time.process_time()
                    run_once(call, self.net, trial, backward)
                    times[name].append(time.process_time() - start)
        self.timings = {name: statistics.median(values) for name, values in times.items()}
        faster = self.timings["compiled"] <= MARGIN * self.timings["eager"]
        return self.compiled if faster else self.net


def run_once(call: Callable[..., Any], net: nn.Module, args: list[Any], backward: bool) -> None:
    out = call(*args)
    if not backward:
        return
    values = [v for v in tree_leaves(out) if isinstance(v, torch.Tensor) and v.requires_grad]
    if not values:
        return
    wrt = [p for p in net.parameters() if p.requires_grad]
    wrt += [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    total = sum(v.float().sum() for v in values)
    torch.autograd.grad(total, wrt, allow_unused=True)


class preserved:
    """Runs a trial on copies of a network's buffers, then puts the originals back, and restores
    the CPU RNG state. The originals are never written: a graph built earlier in the step may have
    saved them (batch norm saves its running statistics), and an in-place restore would bump their
    version and fail that graph's backward."""

    def __init__(self, net: nn.Module):
        self.net = net

    def __enter__(self) -> None:
        self.originals = []
        for module in self.net.modules():
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    self.originals.append((module, name, buffer))
                    module._buffers[name] = buffer.detach().clone()
        self.rng = torch.get_rng_state()

    def __exit__(self, *exc: Any) -> None:
        for module, name, buffer in self.originals:
            module._buffers[name] = buffer
        torch.set_rng_state(self.rng)
