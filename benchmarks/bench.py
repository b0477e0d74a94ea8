"""Side by side: lossgraph's generated training step against the hand-written one, per method,
eager and compiled.

    python -m benchmarks.bench [--methods cyclegan,discogan] [--scale small|realistic]
                               [--batch-size N] [--image-size S] [--iters N] [--warmup N]
                               [--device cpu|cuda] [--threads N] [--clock wall|thread] [--seed S] [--keep-caches]
                               [--compile | --no-compile] [--precision fp32|bf16] [--cuda-graphs | --no-cuda-graphs]

For each method up to four steps run, each on identical networks (`program.build_networks(seed)`,
built anew for each) and the same batch (`program.example_inputs(batch_size, seed)`, random
variables included), so every iteration does the same work on each. A spec whose warm-up leaves
steps idle (TUNIT's D and G) is measured past it: both sides count their iterations from the
warm-up's end.

- lossgraph: `program.trainer(nets, **accelerate.EAGER)`, the generated iteration, eager fp32;
- hand-written: the method's baseline (`baselines/`, or `authors.py` at the realistic scale), eager fp32;
- lossgraph compiled: the trainer with the compiled settings (`--compile`, `--precision`,
  `--cuda-graphs`; by default compiled, and on CUDA bf16 with CUDA graphs);
- hand-written compiled: the baseline on the same networks wrapped by the same call
  (`Acceleration.wrap`: `accelerate.compiled` per network, `torch.compile(net, dynamic=False)`
  with lossgraph's CPU pass, the autocast and CUDA graphs the settings ask for).

`--no-compile` (with fp32) leaves out the compiled pair. Each step first runs `--warmup`
iterations on its own (the compiled ones compile there: compile time is the warm-up's wall time
beyond as many of its fastest step, timed for each compiled step in a process of its own, whose
compiled graphs this one then reads (`--keep-caches`: this process's warm-up, with the caches as
an earlier run left them), and torch.compile's one-off start paid before the first method);
then the steps alternate in one process, the order rotating every iteration, and the median of
each one's times is reported. Outside the timed loop: peak memory of one iteration of each, and
network forwards and FLOPs of the eager steps (measure.py says how). Compiled graphs and graph
breaks are TorchDynamo's counts during each compiled step's warm-up, and any graph compiled during
the timed loop (a recompile) is reported.

Spec-to-program time is the median of several `lossgraph.compile(path)` calls (no torch.compile),
after one that warms the caches. The tables are markdown (report.py), to paste into the README.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
import torch._functorch.config
import torch._inductor.config

import lossgraph
from lossgraph.cli import add_acceleration_arguments
from lossgraph.train import accelerate

from . import report
from .authors import AUTHORS, STEPS_PER_EPOCH
from .baselines import BASELINES
from .measure import Step, count_flops, count_forwards, dynamo_counts, peak_memory, synchronize, timed

SPECS = Path(__file__).resolve().parent.parent / "specs"
COMPILE_REPEATS = 5
SCALES = {
    # scale: (the hand-written steps by method, default timed iterations, default warm-up)
    "small": (BASELINES, 20, 3),
    "realistic": (AUTHORS, 3, 1),
}


@dataclass
class Side:
    """One implementation of one method: its step, its networks and what was measured of it."""

    name: str
    step: Step
    nets: Mapping[str, torch.nn.Module]
    counted: bool = True  # forwards and FLOPs counted (eager steps; compiled graphs hide calls)
    times: list[float] = field(default_factory=list)
    warmup_times: list[float] = field(default_factory=list)
    forwards: dict[str, int] = field(default_factory=dict)
    flops: int = 0
    peak_bytes: int = 0
    graphs: int = 0        # graphs TorchDynamo compiled during the warm-up
    breaks: int = 0        # graph breaks during the warm-up
    recompiled: int = 0    # graphs compiled during the timed loop
    first_compile: float | None = None  # seconds, timed in a process of its own (compile_in_child)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def compile_seconds(self) -> float:
        """The warm-up's wall time beyond as many of its fastest step (the median step with one
        warm-up step): torch.compile's first compiles; where it was timed in a process of its
        own, that process's."""
        if self.first_compile is not None:
            return self.first_compile
        steady = min(self.warmup_times) if len(self.warmup_times) > 1 else self.median
        return max(0.0, sum(self.warmup_times) - len(self.warmup_times) * steady)


@dataclass
class Result:
    method: str
    batch_size: int
    image_size: int
    spec_seconds: float
    compiled_as: str | None  # the compiled pair's settings in words, None when not run
    sides: dict[str, Side]
    start: int = 0  # the iteration the steps start from (past a warm-up: program.full_iteration)


def load_program(method: str, image_size: int | None):
    spec = lossgraph.load(str(SPECS / f"{method}.yaml"))
    if image_size is not None and image_size != spec.train.image_size:
        spec = spec.model_copy(update={"train": spec.train.model_copy(update={"image_size": image_size})})
    return lossgraph.compile(spec)


def time_spec_compile(method: str, repeats: int = COMPILE_REPEATS) -> float:
    path = str(SPECS / f"{method}.yaml")
    lossgraph.compile(path)  # warms the import and macro caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        lossgraph.compile(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compiled_settings(device: torch.device, given: Mapping[str, object]) -> accelerate.Acceleration:
    """The compiled pair's settings: compiled unless `--no-compile`, the rest the device's default."""
    return accelerate.Acceleration.for_device(device, **{"compile": True, **given})


def make_sides(method: str, program, baseline, *, batch_size: int, device: torch.device, seed: int,
               acceleration: accelerate.Acceleration, start: int = 0) -> list[Side]:
    extra = {"steps_per_epoch": STEPS_PER_EPOCH} if method in AUTHORS else {}

    def started(step_owner):  # a trainer or a baseline, counting its iterations from `start`
        if start:
            step_owner.iteration = start
        return step_owner

    trainer = started(program.trainer(program.build_networks(seed=seed), device=device, **accelerate.EAGER, **extra))
    hand = started(baseline(program.build_networks(seed=seed), device=device))
    sides = [Side("lossgraph", trainer.step, trainer.nets), Side("hand-written", hand.step, hand.nets)]
    if not acceleration.active:
        return sides
    settings = {"compile": acceleration.compile, "precision": acceleration.precision, "cuda_graphs": acceleration.cuda_graphs}
    trainer = started(program.trainer(program.build_networks(seed=seed), device=device, **settings, **extra))
    nets = program.build_networks(seed=seed)
    # torch.compile has no double backward: a network a gradient penalty differentiates (WGAN-GP's,
    # R1's critic) stays eager in a hand-written compiled step too, as in lossgraph's
    penalized = accelerate.double_backward_networks(program.graph)
    hand = started(baseline(acceleration.wrap({name: net.to(device) for name, net in nets.items()}, device, eager=penalized), device=device))

    def hand_step(inputs: Mapping[str, torch.Tensor], step=hand.step):
        if acceleration.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # as the trainer does: last step's outputs are read
        return step(inputs)

    return sides + [Side("lossgraph compiled", trainer.step, trainer.nets, counted=False),
                    Side("hand-written compiled", hand_step, nets, counted=False)]


COMPILE_SECONDS = "first compile, seconds: "


def compile_in_child(argv: list[str], method: str, side: str, cache: str) -> float:
    """A compiled side's first compile, timed in a process of its own (`--compile-only`): in this
    one, the compiled side that warms up second finds the first one's graphs in TorchDynamo's and
    inductor's in-process caches (the same network classes, inputs of the same shapes) and compiles
    in a tenth of the time. The child leaves its compiled graphs in the inductor cache `cache`,
    which this process's warm-up then reads."""
    command = [sys.executable, "-m", "benchmarks.bench", *argv, "--methods", method, "--compile-only", side]
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(COMPILE_SECONDS):
            return float(line[len(COMPILE_SECONDS):])
    raise RuntimeError(f"compiling {method}'s {side} step in a process of its own failed (exit {done.returncode}):\n"
                       f"{done.stdout[-2000:]}{done.stderr[-4000:]}")


@contextlib.contextmanager
def disk_caches(on: bool):
    """Inductor's on-disk caches of compiled graphs (forward and backward) on or off."""
    with torch._inductor.config.patch(fx_graph_cache=on), torch._functorch.config.patch(enable_autograd_cache=on):
        yield


@contextlib.contextmanager
def reading_cache(cache: str):
    """Inductor's on-disk caches on, in `cache`."""
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    try:
        with disk_caches(True):
            yield
    finally:
        if before is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR")
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = before


def prepare(method: str, baseline, *, batch_size: int | None, image_size: int | None, device: torch.device, seed: int,
            acceleration: accelerate.Acceleration):
    """The method's program, its batch and its sides, each counting its iterations from the warm-up's end."""
    torch._dynamo.reset()  # each method's compiles from scratch, clear of the recompile limit
    program = load_program(method, image_size)
    batch_size = batch_size or program.spec.train.batch_size
    inputs = {name: value.to(device) for name, value in program.example_inputs(batch_size=batch_size, seed=seed).items()}
    sides = make_sides(method, program, baseline, batch_size=batch_size, device=device, seed=seed, acceleration=acceleration,
                       start=program.full_iteration)
    return program, inputs, sides


def compile_only(args: argparse.Namespace, device: torch.device) -> int:
    """`--compile-only SIDE` (compile_in_child's process): one method's SIDE step warmed up alone,
    with inductor's on-disk caches on, and its first compile's seconds printed."""
    method = args.methods[0]
    _, inputs, sides = prepare(method, args.baselines[method], batch_size=args.batch_size, image_size=args.image_size,
                               device=device, seed=args.seed, acceleration=args.acceleration)
    side = next(side for side in sides if side.name == args.compile_only)
    if not side.counted:
        warm_compiler(device)  # torch.compile's one-off start, left out as in the parent
    with disk_caches(True):  # the parent reads what this process compiles
        side.warmup_times = [timed(side.step, inputs, device) for _ in range(args.warmup)]
        side.times = [timed(side.step, inputs, device)]
    print(f"{COMPILE_SECONDS}{side.compile_seconds}")
    return 0


def benchmark(method: str, baseline, *, batch_size: int | None, image_size: int | None, iters: int, warmup: int,
              device: torch.device, seed: int, acceleration: accelerate.Acceleration, clock: str = "wall",
              child_argv: list[str] | None = None) -> Result:
    """`child_argv`: the command line that times each compiled side's first compile in a process
    of its own (compile_in_child); None: the warm-up's own compile time (--keep-caches)."""
    program, inputs, sides = prepare(method, baseline, batch_size=batch_size, image_size=image_size, device=device,
                                     seed=seed, acceleration=acceleration)
    batch_size, first = batch_size or program.spec.train.batch_size, program.full_iteration

    for side in sides:
        graphs, breaks = dynamo_counts()
        with contextlib.ExitStack() as context:
            if not side.counted and child_argv is not None:
                cache = context.enter_context(tempfile.TemporaryDirectory(prefix="lossgraph-bench-"))
                side.first_compile = compile_in_child(child_argv, method, side.name, cache)
                context.enter_context(reading_cache(cache))
            side.warmup_times = [timed(side.step, inputs, device) for _ in range(warmup)]  # wall: compiles run in workers too
        after = dynamo_counts()
        side.graphs, side.breaks = after[0] - graphs, after[1] - breaks

    before = dynamo_counts()[0]
    gc.collect()
    gc.disable()  # as timeit does: a collection in one step would land on that step
    try:
        for iteration in range(iters):
            start = iteration % len(sides)
            for side in sides[start:] + sides[:start]:
                side.times.append(timed(side.step, inputs, device, clock))
    finally:
        gc.enable()
    recompiled = dynamo_counts()[0] - before
    for side in sides:
        side.recompiled = recompiled if not side.counted else 0

    # after the timed loop, so that hooks, dispatch modes and the profiler cannot touch it
    for side in sides:
        side.peak_bytes = peak_memory(side.step, inputs, device)
    for side in sides:
        if side.counted:
            side.forwards = count_forwards(side.nets, side.step, inputs)
            side.flops = count_flops(side.step, inputs)
    compiled_as = acceleration.describe() if acceleration.active else None
    return Result(method, batch_size, program.spec.train.image_size, time_spec_compile(method), compiled_as,
                  {side.name: side for side in sides}, first)


def warm_compiler(device: torch.device) -> float:
    """Seconds to compile and run a small network's forward and backward: what the first compile
    in a process pays once (imports, the compile workers, headers), so that no method's first
    compiled step is charged for it."""
    start = time.perf_counter()
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(4, 1, 3)).to(device)
    accelerate.compiled(net, device.type)(torch.randn(2, 3, 8, 8, device=device)).sum().backward()
    synchronize(device)
    torch._dynamo.reset()
    return time.perf_counter() - start


# -- command line -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="small", choices=list(SCALES),
                        help="small: the nine shipped specs at their own sizes (default); realistic: the authors' "
                             "recipes (cyclegan-authors, pix2pix-authors) at 256x256, batch 1")
    parser.add_argument("--methods", default=None, help="comma-separated (default: every method of the scale)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the spec's train.batch_size")
    parser.add_argument("--image-size", type=int, default=None, help="default: the spec's train.image_size")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per step (default 20; realistic 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed iterations per step first (default 3; realistic 1)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--clock", default="wall", choices=["wall", "thread"],
                        help="thread: step times in this thread's CPU time, which other processes' load leaves out; "
                             "needs --threads 1 on the CPU (default: wall)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile-only", default=None, choices=[report.LG, report.HW, report.LGC, report.HWC],
                        help=argparse.SUPPRESS)  # compile_in_child's process
    parser.add_argument("--keep-caches", action="store_true",
                        help="let torch.compile read and fill inductor's on-disk caches (default: off, so that "
                             "compile times are a first compile's)")
    add_acceleration_arguments(parser, "the compiled pair's ")
    args = parser.parse_args(argv)
    baselines, iters, warmup = SCALES[args.scale]
    args.baselines = baselines
    args.iters = iters if args.iters is None else args.iters
    args.warmup = warmup if args.warmup is None else args.warmup
    args.methods = [name.strip() for name in (args.methods or ",".join(baselines)).split(",") if name.strip()]
    unknown = [name for name in args.methods if name not in baselines]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)} at the {args.scale} scale; known: {', '.join(baselines)}")
    if args.iters < 1 or args.warmup < 1:
        parser.error("--iters and --warmup must be at least 1")
    if args.clock == "thread" and (args.device != "cpu" or args.threads != 1):
        parser.error("--clock thread counts one thread's work: it needs --device cpu and --threads 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    try:
        args.acceleration = compiled_settings(torch.device(args.device), accelerate.given(args))
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.compile_only:
        return compile_only(args, device)
    print(f"lossgraph {lossgraph.__version__} against hand-written steps, eager and compiled")
    print(report.machine(device) + ("; step times in thread CPU time" if args.clock == "thread" else ""))
    results, failures = [], {}
    # compile times as a first run sees them: each compiled step's first compile in a process of its
    # own (compile_in_child), and nothing read back from inductor's on-disk caches here but what that
    # process left; --keep-caches: the warm-up's own compile, reading what earlier runs left (as
    # on_gpu.py's runs do)
    keep = args.keep_caches
    if keep:
        print("compile times read inductor's on-disk caches (--keep-caches): a warm cache's, not a first compile's")
    with disk_caches(keep):
        if args.acceleration.compile:
            print(f"torch.compile's one-off start (imports, compile workers), on a small network: {warm_compiler(device):.1f} s")
        for method in args.methods:
            try:
                result = benchmark(method, args.baselines[method], batch_size=args.batch_size,
                                   image_size=args.image_size, iters=args.iters, warmup=args.warmup, device=device,
                                   seed=args.seed, acceleration=args.acceleration, clock=args.clock,
                                   child_argv=None if keep else list(sys.argv[1:] if argv is None else argv))
            except Exception as error:  # one method's failure is reported; the others are still measured
                traceback.print_exc()
                failures[method] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                print(f"\n### {method}: failed ({failures[method]})")
                sys.stdout.flush()
                continue
            results.append(result)
            print()
            print(report.method_table(result, device, COMPILE_REPEATS))
            sys.stdout.flush()
    if len(args.methods) > 1 and results:
        print()
        print("### summary")
        print()
        print(report.summary_table(results))
    for method, why in failures.items():
        print(f"failed: {method} ({why})")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
