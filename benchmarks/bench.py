"""Side by side: lossgraph's generated training step against the hand-written one, per method.

    python -m benchmarks.bench [--methods cyclegan,discogan] [--batch-size N] [--image-size S]
                               [--iters N] [--warmup N] [--device cpu|cuda] [--threads N] [--seed S]

For each method both sides get identical networks (`program.build_networks(seed)`, built twice)
and the same batch (`program.example_inputs(batch_size, seed)`, random variables included), so
every iteration does the same work on each side. After warm-up the two steps alternate in one
process, the order swapping every iteration, and the median of each side's step times is
reported. Then, outside the timed loop, one iteration each is measured for:

- network forwards: a forward hook on every network in `nets` (the top-level modules), so a
  call of a network counts once, whatever it calls inside;
- FLOPs: `torch.utils.flop_counter.FlopCounterMode` around the iteration (forward, backward and
  forwards without autograd alike; the optimizer's elementwise updates count no FLOPs);
- peak memory. CUDA: `torch.cuda.max_memory_allocated()` over the iteration (everything live,
  weights and optimizer state included). CPU: the CPU allocator's allocation and free events
  recorded by `torch.profiler` (`profile_memory=True`), summed in time order: the peak of bytes
  allocated during the iteration and still live, over what was live when it began.

Spec-to-program time is the median of several `lossgraph.compile(path)` calls (no torch.compile),
after one that warms the caches. The tables are markdown, to paste into the README.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

import torch
from torch.utils.flop_counter import FlopCounterMode

import lossgraph
from lossgraph.train import accelerate
from lossgraph.cli import add_acceleration_arguments

from .baselines import BASELINES

SPECS = Path(__file__).resolve().parent.parent / "specs"
COMPILE_REPEATS = 5

Step = Callable[[Mapping[str, torch.Tensor]], Mapping[str, float]]


@dataclass
class Side:
    """The measurements of one implementation (lossgraph or hand-written) of one method."""

    times: list[float] = field(default_factory=list)
    forwards: dict[str, int] = field(default_factory=dict)
    flops: int = 0
    peak_bytes: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.times)


@dataclass
class Result:
    method: str
    batch_size: int
    image_size: int
    compile_seconds: float
    acceleration: str
    lossgraph: Side
    baseline: Side


# -- measurements -------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Step, inputs: Mapping[str, torch.Tensor], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    step(inputs)
    synchronize(device)
    return time.perf_counter() - start


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


def count_flops(step: Step, inputs: Mapping[str, torch.Tensor]) -> int:
    with FlopCounterMode(display=False) as counter:
        step(inputs)
    return counter.get_total_flops()


def peak_memory(step: Step, inputs: Mapping[str, torch.Tensor], device: torch.device) -> int:
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step(inputs)
        synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step(inputs)
    events = [
        event
        for event in profiler.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
    ]
    events.sort(key=lambda event: event.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()  # negative for a free
        peak = max(peak, live)
    return peak


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


def time_compile(path: Path, repeats: int = COMPILE_REPEATS) -> float:
    lossgraph.compile(str(path))  # warms the import and macro caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        lossgraph.compile(str(path))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compile_with_image_size(path: Path, image_size: int | None):
    spec = lossgraph.load(str(path))
    if image_size is not None and image_size != spec.train.image_size:
        spec = spec.model_copy(update={"train": spec.train.model_copy(update={"image_size": image_size})})
    return lossgraph.compile(spec)


def benchmark(method: str, *, batch_size: int | None, image_size: int | None, iters: int, warmup: int,
              device: torch.device, seed: int, acceleration: Mapping[str, object] | None = None) -> Result:
    path = SPECS / f"{method}.yaml"
    program = compile_with_image_size(path, image_size)
    batch_size = batch_size or program.spec.train.batch_size
    image_size = program.spec.train.image_size

    lossgraph_nets = program.build_networks(seed=seed)
    baseline_nets = program.build_networks(seed=seed)
    trainer = program.trainer(lossgraph_nets, device=device, **(acceleration or {}))
    baseline = BASELINES[method](baseline_nets, device=device)
    inputs = {name: value.to(device) for name, value in program.example_inputs(batch_size=batch_size, seed=seed).items()}
    sides = {"lossgraph": (Side(), trainer.step, trainer.nets), "baseline": (Side(), baseline.step, baseline.nets)}

    for _ in range(warmup):
        for _, step, _ in sides.values():
            step(inputs)

    order = list(sides.values())
    gc.collect()
    gc.disable()  # as timeit does: a collection in one side's step would land on that side
    try:
        for iteration in range(iters):
            for side, step, _ in order if iteration % 2 == 0 else order[::-1]:
                side.times.append(timed(step, inputs, device))
    finally:
        gc.enable()

    # after the timed loop, so that hooks, dispatch modes and the profiler cannot touch it
    for side, step, nets in sides.values():
        side.peak_bytes = peak_memory(step, inputs, device)
    if trainer.acceleration.active:
        # compiled and graphed networks hide their calls and kernels from hooks and the FLOP
        # counter; the generated iteration is the same code eager, so count on an eager trainer
        eager = program.trainer(program.build_networks(seed=seed), device=device, **accelerate.EAGER)
        sides["lossgraph"] = (sides["lossgraph"][0], eager.step, eager.nets)
    for side, step, nets in sides.values():
        side.forwards = count_forwards(nets, step, inputs)
        side.flops = count_flops(step, inputs)
    return Result(method, batch_size, image_size, time_compile(path), trainer.acceleration.describe(),
                  sides["lossgraph"][0], sides["baseline"][0])


# -- report -------------------------------------------------------------------------------------


def machine(device: torch.device) -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"CPU: {model} ({os.cpu_count()} cores), torch threads: {torch.get_num_threads()}",
             f"torch {torch.__version__}", f"Python {platform.python_version()}"]
    if device.type == "cuda":
        parts.insert(1, f"GPU: {torch.cuda.get_device_name(device)}")
    return "; ".join(parts)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def forwards_by_network(forwards: Mapping[str, int], called: set[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in forwards.items() if name in called)


def method_table(result: Result, device: torch.device) -> str:
    lg, hw = result.lossgraph, result.baseline
    # a network no step calls (a judge that only evaluates) is left out of the by-network row
    called = {name for side in (lg, hw) for name, count in side.forwards.items() if count}
    memory = "peak memory (max allocated)" if device.type == "cuda" else "peak memory (allocated in step)"
    rows = [
        ("median step time", f"{lg.median * 1e3:.1f} ms", f"{hw.median * 1e3:.1f} ms", ratio(lg.median, hw.median)),
        ("network forwards / iteration", str(sum(lg.forwards.values())), str(sum(hw.forwards.values())),
         ratio(sum(lg.forwards.values()), sum(hw.forwards.values()))),
        ("forwards by network", forwards_by_network(lg.forwards, called), forwards_by_network(hw.forwards, called), ""),
        ("GFLOP / iteration (fwd + bwd)", f"{lg.flops / 1e9:.3f}", f"{hw.flops / 1e9:.3f}", ratio(lg.flops, hw.flops)),
        (memory, f"{lg.peak_bytes / 2**20:.1f} MiB", f"{hw.peak_bytes / 2**20:.1f} MiB", ratio(lg.peak_bytes, hw.peak_bytes)),
    ]
    lines = [
        f"### {result.method} (batch {result.batch_size}, {result.image_size}x{result.image_size}, "
        f"{len(lg.times)} timed iterations; lossgraph {result.acceleration}, hand-written eager fp32)",
        "",
        "| | lossgraph | hand-written | lossgraph / hand-written |",
        "|---|---|---|---|",
        *(f"| {name} | {a} | {b} | {r} |" for name, a, b, r in rows),
        "",
        f"spec -> program (`lossgraph.compile`, median of {COMPILE_REPEATS}): {result.compile_seconds * 1e3:.1f} ms",
    ]
    return "\n".join(lines)


def summary_table(results: list[Result]) -> str:
    lines = [
        "| method | batch | lossgraph step | hand-written step | time ratio | forwards (lg / hw) | GFLOP (lg / hw) "
        "| peak MiB (lg / hw) | compile |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        lg, hw = result.lossgraph, result.baseline
        lines.append(
            f"| {result.method} | {result.batch_size} | {lg.median * 1e3:.1f} ms | {hw.median * 1e3:.1f} ms "
            f"| {ratio(lg.median, hw.median)} | {sum(lg.forwards.values())} / {sum(hw.forwards.values())} "
            f"| {lg.flops / 1e9:.3f} / {hw.flops / 1e9:.3f} | {lg.peak_bytes / 2**20:.1f} / {hw.peak_bytes / 2**20:.1f} "
            f"| {result.compile_seconds * 1e3:.0f} ms |"
        )
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(BASELINES), help="comma-separated (default: all nine)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the spec's train.batch_size")
    parser.add_argument("--image-size", type=int, default=None, help="default: the spec's train.image_size")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per side (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations per side first (default 3)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    add_acceleration_arguments(parser, "lossgraph's ")
    args = parser.parse_args(argv)
    args.methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = [name for name in args.methods if name not in BASELINES]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(BASELINES)}")
    if args.iters < 1:
        parser.error("--iters must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    try:
        accelerate.Acceleration.for_device(torch.device(args.device), **accelerate.given(args))
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"lossgraph {lossgraph.__version__} against hand-written eager steps")
    print(machine(device))
    results = []
    for method in args.methods:
        result = benchmark(method, batch_size=args.batch_size, image_size=args.image_size, iters=args.iters,
                           warmup=args.warmup, device=device, seed=args.seed, acceleration=accelerate.given(args))
        results.append(result)
        print()
        print(method_table(result, device))
        sys.stdout.flush()
    if len(results) > 1:
        print()
        print("### summary")
        print()
        print(summary_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
