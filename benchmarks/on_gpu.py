"""One prepared run on a CUDA machine: the GPU tests, then the benchmark at both sizes, most
important first, each part in its own process under its own time limit, its output written to
`--out` as it comes, so that a run cut short keeps what it measured.

    python -m benchmarks.on_gpu --out results [--budget 540] [--parts tests,bench-128,...]
                                [--methods cyclegan,pix2pix] [--workers 8] [--dry-run]

The parts, in order (`--parts` picks some, in this order):

- tests: `pytest -m gpu` (every spec's CUDA steps against the CPU's), spread over `--workers`
  processes when pytest-xdist is installed: they compile, and compiles use the CPU's cores;
- bench-128: the nine survey methods at 128x128, batch 16;
- bench-256: the same at 256x256, batch 1;
- authors: the realistic scale (the authors' CycleGAN and pix2pix recipes at 256x256, batch 1);
- bench-128-more: the other four shipped methods (LPTN, MUNIT, StarGAN v2, TUNIT) at 128x128.

Each benchmark part first compiles its methods in `--workers` processes at once (one untimed
iteration of each step, `--precompile`): compiling a method's four steps takes longer than timing
them, and their compiled graphs land in inductor's on-disk caches, which the timed run then reads
(`--keep-caches`: its compile column is then a warm cache's, as the part's heading says). The
timed run measures the methods one after another, alone on the GPU.

A part gets the budget's share left to it (a part that finishes early leaves its time to the next
ones); a part that runs out of time is stopped and its output kept; a part with under a minute left
is not started. `summary.txt` says how each part ended and holds the tables the benchmark printed;
each part's whole output is in `<part>.log`. Run again with `--parts` (and `--methods`) for what
was left. The exit status is 0 when every part ran to the end and passed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import report
from .authors import AUTHORS
from .baselines import BASELINES

SURVEY = ("pix2pix", "bicyclegan", "cogan", "pixelda", "cyclegan", "discogan", "dualgan", "unit", "stargan")
MORE = tuple(name for name in BASELINES if name not in SURVEY)
BENCH = [sys.executable, "-m", "benchmarks.bench", "--iters", "20", "--warmup", "8"]
MIN_SECONDS = 60  # a part with less left is not started: a compile alone takes longer


@dataclass(frozen=True)
class Part:
    name: str
    command: tuple[str, ...]
    share: float                                # of the budget, before what earlier parts left
    precompile: tuple[tuple[str, ...], ...] = ()  # untimed commands run side by side first


@dataclass
class Outcome:
    part: Part
    status: str          # passed, failed (exit N), out of time, not started
    seconds: float = 0.0
    tables: list[str] = field(default_factory=list)


def bench_part(name: str, share: float, methods: tuple[str, ...], size_args: tuple[str, ...], device: str,
               workers: int) -> Part | None:
    if not methods:
        return None
    timed = (*BENCH, "--device", device, *size_args, "--keep-caches", "--methods", ",".join(methods))
    # one untimed iteration of each method's steps, compiled into the shared on-disk caches
    first = (sys.executable, "-m", "benchmarks.bench", "--device", device, *size_args, "--iters", "1", "--warmup", "1",
             "--keep-caches", "--methods")
    precompile = tuple((*first, method) for method in methods) if workers > 1 else ()
    return Part(name, timed, share, precompile)


def plan(parts: list[str], methods: list[str] | None, device: str, workers: int) -> list[Part]:
    """The parts asked for, in their order; `methods` narrows each benchmark part to those it has."""

    def chosen(names) -> tuple[str, ...]:
        return tuple(name for name in names if methods is None or name in methods)

    tests = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    if workers > 1 and importlib.util.find_spec("xdist") is not None:
        tests += ["-n", str(workers)]
    every = {
        "tests": Part("tests", tuple(tests), 0.3),
        "bench-128": bench_part("bench-128", 0.25, chosen(SURVEY), ("--image-size", "128", "--batch-size", "16"), device, workers),
        "bench-256": bench_part("bench-256", 0.2, chosen(SURVEY), ("--image-size", "256", "--batch-size", "1"), device, workers),
        "authors": bench_part("authors", 0.1, chosen(AUTHORS), ("--scale", "realistic", "--iters", "10", "--warmup", "4"),
                              device, workers),
        "bench-128-more": bench_part("bench-128-more", 0.15, chosen(MORE), ("--image-size", "128", "--batch-size", "16"),
                                     device, workers),
    }
    return [every[name] for name in every if name in parts and every[name] is not None]


def start(command: tuple[str, ...], path: Path, mode: str = "ab") -> subprocess.Popen:
    """`command` in a session of its own (so that stopping it stops what it started), its output
    written to `path` unbuffered."""
    with path.open(mode) as out:  # the child holds its own copy of the file
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_limited(command: tuple[str, ...], log: Path, seconds: float) -> int | None:
    """Runs `command` with its output appended to `log`; None when it ran out of time (it is
    stopped with everything it started)."""
    process = start(command, log)
    try:
        return process.wait(timeout=max(seconds, 0.0))
    except subprocess.TimeoutExpired:
        stop(process)
        return None


def run_side_by_side(commands: tuple[tuple[str, ...], ...], log: Path, seconds: float, workers: int) -> bool:
    """Runs `commands`, `workers` at a time, each one's output appended to `log` when it ends;
    False when the time ran out first."""
    deadline = time.monotonic() + seconds
    pending, running = list(commands), []
    while pending or running:
        while pending and len(running) < workers:
            command = pending.pop(0)
            out = log.parent / f".{log.name}.{len(pending)}"
            running.append((start(command, out, "wb"), out, command))
        for entry in list(running):
            process, out, command = entry
            if process.poll() is not None:
                running.remove(entry)
                indented = "".join(f"    {line}\n" for line in out.read_text(errors="replace").splitlines())
                with log.open("a") as sink:  # indented: the part's tables are the timed run's alone
                    sink.write(f"    $ {' '.join(command)}  (exit {process.returncode})\n{indented}")
                out.unlink()
        if time.monotonic() > deadline:
            for process, out, _ in running:
                stop(process)
                out.unlink(missing_ok=True)
            return False
        time.sleep(0.2)
    return True


def tables(text: str) -> list[str]:
    """The markdown the benchmark printed: headings, table rows and the ratio lines under them."""
    keep = ("###", "|", "lossgraph compiled /", "failed:")
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(keep) or (not line.strip() and lines and lines[-1]):  # a blank line ends a table
            lines.append(line if line.strip() else "")
    return lines[:-1] if lines and not lines[-1] else lines


def run(parts: list[Part], out: Path, budget: float, workers: int, header: str = "",
        min_seconds: float = MIN_SECONDS) -> list[Outcome]:
    out.mkdir(parents=True, exist_ok=True)
    clock = time.monotonic
    end = clock() + budget
    outcomes = []
    for index, part in enumerate(parts):
        left = end - clock()
        shares = sum(p.share for p in parts[index:])
        seconds = left * part.share / shares
        if seconds < min_seconds:
            seconds = left if left >= min_seconds else 0.0  # the last minutes go to one part whole
        if seconds <= 0:
            outcomes.append(Outcome(part, "not started"))
            continue
        log_path = out / f"{part.name}.log"
        began = clock()
        with log_path.open("wb") as log:
            log.write(f"$ {' '.join(part.command)}\n".encode())
        if part.precompile:
            with log_path.open("ab") as log:
                log.write(f"# compiling first, {workers} processes at once (untimed)\n".encode())
            run_side_by_side(part.precompile, log_path, seconds * 0.6, workers)
        code = run_limited(part.command, log_path, seconds - (clock() - began))
        status = "out of time" if code is None else "passed" if code == 0 else f"failed (exit {code})"
        outcomes.append(Outcome(part, status, clock() - began, tables(log_path.read_text(errors="replace"))))
    (out / "summary.txt").write_text(summary(outcomes, header))
    return outcomes


def summary(outcomes: list[Outcome], header: str = "") -> str:
    lines = [header, ""] if header else []
    lines += ["| part | status | seconds |", "|---|---|---|"]
    lines += [f"| {o.part.name} | {o.status} | {o.seconds:.0f} |" for o in outcomes]
    for outcome in outcomes:
        if outcome.tables:
            lines += ["", f"## {outcome.part.name}", "", *outcome.tables]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    names = ["tests", "bench-128", "bench-256", "authors", "bench-128-more"]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.on_gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for summary.txt and each part's log")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for all the parts together (default 540)")
    parser.add_argument("--parts", default=",".join(names), help=f"comma-separated, of {', '.join(names)}")
    parser.add_argument("--methods", default=None, help="comma-separated: only these in the benchmark parts")
    parser.add_argument("--workers", type=int, default=8, help="processes compiling side by side (default 8)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: to try the run on a machine without one")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and run nothing")
    args = parser.parse_args(argv)
    parts = [name.strip() for name in args.parts.split(",") if name.strip()]
    unknown = [name for name in parts if name not in names]
    methods = None if args.methods is None else [name.strip() for name in args.methods.split(",") if name.strip()]
    known = {*BASELINES, *AUTHORS}
    unknown += [name for name in methods or () if name not in known]
    if unknown:
        parser.error(f"unknown part(s) or method(s): {', '.join(unknown)}")
    chosen = plan(parts, methods, args.device, args.workers)
    for part in chosen:
        print(f"{part.name} ({part.share:.0%} of the budget{', compiled first side by side' if part.precompile else ''}): "
              f"{' '.join(part.command)}")
    if args.dry_run:
        return 0
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("CUDA is not available here; --device cpu tries the run on the CPU")
    header = report.machine(torch.device(args.device))
    print(header, flush=True)
    outcomes = run(chosen, args.out, args.budget, args.workers, header=header)
    for outcome in outcomes:
        print(f"{outcome.part.name}: {outcome.status} ({outcome.seconds:.0f} s)")
    print(f"summary: {args.out / 'summary.txt'}")
    return 0 if all(o.status == "passed" for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
