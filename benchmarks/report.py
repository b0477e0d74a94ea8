"""The benchmark's tables, markdown to paste into the README: one per method and a summary."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Mapping

import torch

import lossgraph

LG, HW, LGC, HWC = "lossgraph", "hand-written", "lossgraph compiled", "hand-written compiled"


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
             f"torch {torch.__version__}", f"Python {platform.python_version()}", f"lossgraph {lossgraph.__version__}"]
    if device.type == "cuda":
        parts.insert(1, f"GPU: {torch.cuda.get_device_name(device)}")
    return "; ".join(parts)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def mib(value: int) -> str:
    return f"{value / 2**20:.1f} MiB"


def forwards_by_network(forwards: Mapping[str, int], called: set[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in forwards.items() if name in called)


def method_table(result, device: torch.device, spec_repeats: int) -> str:
    sides = result.sides
    names = [name for name in (LG, HW, LGC, HWC) if name in sides]
    hand = sides[HW]
    # a network no step calls (a judge that only evaluates) is left out of the by-network row
    called = {name for side in sides.values() for name, count in side.forwards.items() if count}
    memory = "peak memory (max allocated)" if device.type == "cuda" else "peak memory (allocated in step)"

    def row(label: str, cell) -> str:
        return f"| {label} | " + " | ".join(cell(sides[name]) for name in names) + " |"

    rows = [
        row("median step time", lambda side: f"{side.median * 1e3:.1f} ms"),
        row("/ hand-written eager", lambda side: ratio(side.median, hand.median)),
        row(memory, lambda side: mib(side.peak_bytes)),
        row("/ hand-written eager", lambda side: ratio(side.peak_bytes, hand.peak_bytes)),
        row("network forwards / iteration", lambda side: str(sum(side.forwards.values())) if side.counted else "as eager"),
        row("forwards by network", lambda side: forwards_by_network(side.forwards, called) if side.counted else ""),
        row("GFLOP / iteration (fwd + bwd)", lambda side: f"{side.flops / 1e9:.3f}" if side.counted else "as eager"),
    ]
    if LGC in sides:
        rows += [
            row("compile (first, beyond median steps)", lambda side: f"{side.compile_seconds:.1f} s" if not side.counted else ""),
            row("graphs compiled / graph breaks", lambda side: f"{side.graphs} / {side.breaks}" if not side.counted else ""),
        ]
    compiled = f"; compiled pair: {result.compiled_as}" if result.compiled_as else ""
    started = f" from iteration {result.start}, past the warm-up" if result.start else ""
    lines = [
        f"### {result.method} (batch {result.batch_size}, {result.image_size}x{result.image_size}, "
        f"{len(hand.times)} timed iterations{started}; eager pair: fp32{compiled})",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        *rows,
        "",
    ]
    if LGC in sides:
        lg, lgc, hwc = sides[LG], sides[LGC], sides[HWC]
        lines.append(f"lossgraph compiled / lossgraph eager: {ratio(lgc.median, lg.median)}; "
                     f"/ hand-written compiled: {ratio(lgc.median, hwc.median)}"
                     + (f"; graphs compiled during the timed loop: {lgc.recompiled}" if lgc.recompiled else ""))
    lines.append(f"spec -> program (`lossgraph.compile`, median of {spec_repeats}): {result.spec_seconds * 1e3:.1f} ms")
    return "\n".join(lines)


def summary_table(results) -> str:
    compiled = any(LGC in result.sides for result in results)
    head = "| method | batch | lossgraph | hand-written | lg / hw"
    rule = "|---|---|---|---|---"
    if compiled:
        head += " | lg compiled | hw compiled | lgc / hw | lgc / hwc | lgc / lg"
        rule += "|---|---|---|---|---"
    head += " | peak MiB (lg / hw" + (" / lgc / hwc)" if compiled else ")") + " | forwards (lg / hw) | GFLOP (lg / hw)"
    rule += "|---|---|---"
    if compiled:
        head += " | compile s (lgc / hwc)"
        rule += "|---"
    lines = [head + " |", rule + "|"]
    for result in results:
        sides = result.sides
        lg, hw = sides[LG], sides[HW]
        cells = [result.method, str(result.batch_size), f"{lg.median * 1e3:.1f} ms", f"{hw.median * 1e3:.1f} ms",
                 ratio(lg.median, hw.median)]
        memory = [lg, hw]
        if LGC in sides:
            lgc, hwc = sides[LGC], sides[HWC]
            cells += [f"{lgc.median * 1e3:.1f} ms", f"{hwc.median * 1e3:.1f} ms", ratio(lgc.median, hw.median),
                      ratio(lgc.median, hwc.median), ratio(lgc.median, lg.median)]
            memory += [lgc, hwc]
        elif compiled:
            cells += [""] * 5
        cells += [" / ".join(f"{side.peak_bytes / 2**20:.1f}" for side in memory),
                  f"{sum(lg.forwards.values())} / {sum(hw.forwards.values())}", f"{lg.flops / 1e9:.3f} / {hw.flops / 1e9:.3f}"]
        if LGC in sides:
            cells.append(f"{sides[LGC].compile_seconds:.0f} / {sides[HWC].compile_seconds:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
