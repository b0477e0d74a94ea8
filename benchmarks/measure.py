"""What the benchmark measures of one training step, each its own function.

- step time: wall clock around one call, the device synchronised before and after, or this
  thread's CPU time (`--clock thread`, one thread on the CPU: robust to other processes' load);
- network forwards: a forward hook on every network in `nets` (the top-level modules), so a call of
  a network counts once, whatever it calls inside, a batched call too;
- FLOPs: `torch.utils.flop_counter.FlopCounterMode` around the iteration (forward, backward and
  forwards without autograd alike; the optimizer's elementwise updates count no FLOPs; a gradient
  penalty's step without its module tracker, which refuses it);
- peak memory. CUDA: `torch.cuda.max_memory_allocated()` over the iteration (everything live,
  weights and optimizer state included). CPU: the CPU allocator's allocation and free events
  recorded by `torch.profiler` (`profile_memory=True`), summed in time order: the peak of bytes
  allocated during the iteration and live at once (frees of blocks allocated before it are left
  out: Note [Frees the profiler knows]);
- compiled graphs: TorchDynamo's count of graphs it compiled and of graph breaks, read before
  and after a block.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Callable, Iterator, Mapping

import torch
from torch.utils.flop_counter import FlopCounterMode

Step = Callable[[Mapping[str, torch.Tensor]], object]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}


def timed(step: Step, inputs: Mapping[str, torch.Tensor], device: torch.device, clock: str = "wall") -> float:
    """Seconds one step takes by `clock`: "wall", or "thread", the CPU time of this thread, which on
    a shared machine leaves out the time other processes hold the cores. The thread clock counts
    all of a step's work only when torch runs it on this thread alone: on the CPU with one thread
    (`torch.set_num_threads(1)`; the CPU autograd engine runs on the thread calling backward)."""
    read = CLOCKS[clock]
    synchronize(device)
    start = read()
    step(inputs)
    synchronize(device)
    return read() - start


def count_forwards(nets: Mapping[str, torch.nn.Module], step: Step, inputs: Mapping[str, torch.Tensor]) -> dict[str, int]:
    counts = dict.fromkeys(nets, 0)

    def hook(name: str):
        def count(module, args, output):
            counts[name] += 1

        return count

    handles = [net.register_forward_hook(hook(name)) for name, net in nets.items()]
    try:
        step(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return counts


# FlopCounterMode's module tracker refuses `torch.autograd.grad` to a leaf, which a gradient
# penalty takes to its mixed inputs in any PyTorch step (tests/run/test_standard_tools.py)
LEAF_ERROR = "A leaf node was passed to _will_engine_execute_node"


class _NoModuleTracker:
    """Stands in for FlopCounterMode's module tracker: every FLOP counted under "Global" only."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def count_flops(step: Step, inputs: Mapping[str, torch.Tensor]) -> int:
    """FLOPs of one step; a step its module tracker refuses (a gradient penalty's) is counted again
    without the tracker, which changes no total, only the per-module breakdown it would keep."""
    try:
        with FlopCounterMode(display=False) as counter:
            step(inputs)
    except RuntimeError as error:
        if LEAF_ERROR not in str(error):
            raise
        counter = FlopCounterMode(display=False)
        counter.mod_tracker = _NoModuleTracker()
        with counter:
            step(inputs)
    return counter.get_total_flops()


def peak_memory(step: Step, inputs: Mapping[str, torch.Tensor], device: torch.device) -> int:
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step(inputs)
        synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    live = peak = 0
    for event in allocation_events(step, inputs):
        live += event.extra_fields.alloc_size  # negative for a free
        peak = max(peak, live)
    return peak


def allocation_events(step: Step, inputs: Mapping[str, torch.Tensor], with_stack: bool = False) -> list:
    """The CPU allocator's allocation and free events during one step, in time order (the
    profiler's `_ProfilerEvent`s, each under the op that made it; `with_stack`: under its Python
    frames too). Frees are kept only of blocks allocated during the step: Note [Frees the profiler
    knows]."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True, with_stack=with_stack) as profiler:
        step(inputs)
    events, stack = [], list(profiler.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == "cpu":
            events.append(event)
        stack.extend(event.children)
    events.sort(key=lambda event: event.start_time_ns)
    allocated: set[int] = set()
    kept = []
    for event in events:
        fields = event.extra_fields
        if fields.alloc_size > 0:
            allocated.add(fields.ptr)
        elif fields.ptr in allocated:
            allocated.discard(fields.ptr)
        else:
            continue
        kept.append(event)
    return kept


# Note [Frees the profiler knows]: the CPU allocator (c10's ProfiledCPUMemoryReporter) notes a
# block's size only while a profiler records memory, and reports a free only for a block it has
# noted; a block freed while none records stays noted. A block allocated before the step is then
# reported freed or not depending on what earlier profiles in the process saw at its address (a
# stale note of another block there counts too): a step measured after another one's profile, as
# the benchmark measures its sides in turn, could come out lower (DiscoGAN's hand-written step,
# 2026-12-05: 23.35 or 23.07 MiB in two runs against 23.85 measured first in its process).
# Counting only the frees of blocks allocated during the step gives the same peak whatever ran
# before, the one a first profile gives: the most bytes allocated during the step and live at
# once. Memory that an earlier step allocated and this one frees (last step's gradients, which
# `zero_grad` releases) is not subtracted.


def dynamo_counts() -> tuple[int, int]:
    """(graphs TorchDynamo compiled, graph breaks) in this process so far."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """The profiler's native start/stop lines and allocator warnings go to file descriptor 2
    directly; send them to /dev/null for the block (Python exceptions still propagate)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
