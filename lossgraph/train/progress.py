"""What a run shows on stderr while it trains: a progress bar, or a plain line per log interval.

A tqdm bar (each player's loss in its postfix, refreshed every log interval) when stderr is a
terminal outside CI, else a line every log interval with the losses, the rate and the time
left; `RunOptions.progress` forces one or the other. Notes (resuming, a skipped step, the
judges' fit) go above the bar or to stderr. A torchrun process other than rank 0 shows nothing.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Literal, Mapping, Sequence

Display = Literal["bar", "lines", "none"]


class Progress:
    """The display of a run of `name` up to step `steps`, starting at `start_step`."""

    def __init__(self, name: str, steps: int, players: Sequence[str], start_step: int, display: Display):
        self.name = name
        self.steps = steps
        self.players = list(players)
        self.display = display
        self.bar = None
        self.last_step = start_step - 1
        self.last_time = time.perf_counter()
        if display == "bar":
            from tqdm import tqdm

            try:
                columns = os.get_terminal_size(sys.stderr.fileno()).columns
            except (OSError, ValueError):
                columns = 0
            # A terminal reporting a 0x0 size (some containers and CI runners) makes tqdm draw nothing.
            width = {"dynamic_ncols": True} if columns > 0 else {"ncols": 100, "nrows": 20}
            self.bar = tqdm(total=steps, initial=start_step - 1, desc=name, unit="it", file=sys.stderr,
                            smoothing=0.1, **width)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def _losses(self, stats: Mapping[str, float]) -> list[tuple[str, float]]:
        shown = [player for player in self.players if player in stats] or list(stats)[:4]
        return [(player, stats[player]) for player in shown]

    def log(self, step: int, stats: Mapping[str, float], seconds: float) -> None:
        if self.bar is not None:
            # refresh=False: tqdm redraws on its own clock, so logging adds no terminal write.
            self.bar.set_postfix_str(", ".join(f"{name}={value:.3f}" for name, value in self._losses(stats)),
                                     refresh=False)
            return
        if self.display == "none":
            return
        now = time.perf_counter()
        rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_step, self.last_time = step, now
        left = (self.steps - step) / rate if rate > 0 else math.inf
        width = len(str(self.steps))
        losses = "  ".join(f"{name} {value:.4f}" for name, value in self._losses(stats))
        print(f"{self.name} step {step:>{width}}/{self.steps} | {losses} | {rate:.2f} it/s | "
              f"{clock(seconds)} elapsed, {clock(left)} left", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif self.display != "none":
            print(text, file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def clock(seconds: float) -> str:
    """`h:mm:ss`, or `?` for an unknown (infinite) time."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def format_metrics(metrics: Mapping[str, float]) -> str:
    return "  ".join(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"
                     for key, value in metrics.items())
