"""What is alive at a step's peak memory on the CPU, and where it was allocated.

    python -m benchmarks.peak --methods bicyclegan,pixelda [--top 15] [--batch-size N] [--image-size S]

For each method, lossgraph's eager iteration and the hand-written step run as the benchmark runs
them (same networks, same batch, past the warm-up, one thread); one more iteration of each is
recorded by `torch.profiler` with memory events and Python stacks. The events are summed in time
order as `measure.peak_memory` sums them, and at the peak the blocks allocated during the step and
not yet freed are listed, grouped by where they were made: the line of the step's own code (the generated
iteration, the baseline) that led to them, the network whose call made them (the top-level module,
whose forward allocations are its saved activations while its graph lives), and whether autograd
made them in a backward (gradients, the backward's temporaries). It also names the line the step
was running at the peak.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping

import torch
from torch._C._profiler import _EventType

from .bench import SCALES, load_program, make_sides
from .measure import Step, allocation_events
from lossgraph.train import accelerate

PYTHON = (_EventType.PyCall, _EventType.PyCCall)


@dataclass
class Allocation:
    bytes: int
    site: str      # the step's own line that led to it, "file:line function" ("file(def line)" for an
                   # operator written in the step's function itself, whose line the profiler does not give)
    network: str   # the outermost module whose call made it ("" outside any)
    backward: str  # the autograd node that made it in a backward ("" in a forward)


def _own(file_name: str) -> bool:
    """A step's own code: lossgraph's generated module or a hand-written baseline."""
    return file_name.startswith("<lossgraph") or "/baselines/" in file_name


def _site(event) -> tuple[str, str, str]:
    """(the step's own line, the outermost module, the autograd node) above an allocation event."""
    site = network = backward = ""
    parent = event.parent
    while parent is not None:
        name = parent.name
        if parent.tag in PYTHON:
            caller = parent.extra_fields.caller
            if not site and _own(caller.file_name):
                site = f"{caller.file_name.rsplit('/', 1)[-1]}:{caller.line_number} {caller.function_name}"
            elif not site and parent.tag == _EventType.PyCall and _own(name):
                site = name.rsplit("/", 1)[-1]
            if name.startswith("nn.Module: "):
                network = name[len("nn.Module: "):]
        elif name.startswith("autograd::engine::evaluate_function: "):
            backward = backward or name.split(": ", 1)[1]
        parent = parent.parent
    return site, network, backward


@dataclass
class Peak:
    bytes: int                     # as `measure.peak_memory` counts them
    at: str                        # the step's line, the network and the autograd node at the peak
    held: list[Allocation]         # what the step allocated and still holds at the peak
    by_line: dict[str, int]        # the most bytes live while each of the step's lines ran


def live_at_peak(step: Step, inputs: Mapping[str, torch.Tensor]) -> Peak:
    events = allocation_events(step, inputs, with_stack=True)
    live = peak = 0
    peak_index = -1
    by_line: dict[str, int] = {}
    for index, event in enumerate(events):
        live += event.extra_fields.alloc_size  # negative for a free
        line = _site(event)[0]
        by_line[line] = max(by_line.get(line, 0), live)
        if live > peak:
            peak, peak_index = live, index
    held: dict[int, object] = {}
    for event in events[: peak_index + 1]:
        fields = event.extra_fields
        if fields.alloc_size > 0:
            held[fields.ptr] = event
        else:
            del held[fields.ptr]
    at = " ".join(part for part in _site(events[peak_index]) if part) if peak_index >= 0 else ""
    allocations = [Allocation(event.extra_fields.alloc_size, *_site(event)) for event in held.values()]
    return Peak(peak, at, allocations, by_line)


def report(name: str, peak: Peak, top: int) -> str:
    mib = 2.0 ** 20
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for allocation in peak.held:
        groups[(allocation.site, allocation.network, allocation.backward)].append(allocation.bytes)
    lines = [f"{name}: peak {peak.bytes / mib:.3f} MiB at {peak.at or '?'}"]
    ranked = sorted(groups.items(), key=lambda item: -sum(item[1]))
    for (site, network, backward), sizes in ranked[:top]:
        kind = f"backward {backward}" if backward else "forward"
        lines.append(f"  {sum(sizes) / mib:8.3f} MiB {len(sizes):4d} blocks  {site or '?'}  {network or '-'}  {kind}")
    rest = sum(sum(sizes) for _, sizes in ranked[top:])
    if rest:
        lines.append(f"  {rest / mib:8.3f} MiB in {len(ranked) - top} more groups")
    highest = sorted(peak.by_line.items(), key=lambda item: -item[1])[:5]
    lines.append("  highest while running: " + "; ".join(f"{line or '?'} {bytes_ / mib:.3f}" for line, bytes_ in highest))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", required=True, help="comma-separated")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--top", type=int, default=15, help="groups listed per side (default 15)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device("cpu")
    baselines = SCALES["small"][0]
    for method in [name.strip() for name in args.methods.split(",") if name.strip()]:
        program = load_program(method, args.image_size)
        batch_size = args.batch_size or program.spec.train.batch_size
        inputs = program.example_inputs(batch_size=batch_size, seed=args.seed)
        sides = make_sides(method, program, baselines[method], batch_size=batch_size, device=device, seed=args.seed,
                           acceleration=accelerate.Acceleration.for_device(device, compile=False),
                           start=program.full_iteration)
        print(f"## {method}")
        for side in sides:
            for _ in range(args.warmup):
                side.step(inputs)
            print(report(side.name, live_at_peak(side.step, inputs), top=args.top))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
