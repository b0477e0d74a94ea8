"""A run's curves as one picture: `lossgraph plot RUN [-o FILE.png]`.

Reads the logs `lossgraph run` writes (run.py):

    RUN/metrics.csv   step, each player's loss (`D`, `G`), each term (`G/cycle`), seconds
    RUN/eval.csv      step, each held-out metric (optional: a spec without `evaluate:` has none)

and draws a panel per player (its loss, bold, in the player's colour from `lossgraph graph`, and
its terms as written, weights included), then a panel of the held-out metrics when eval.csv
exists. Stats whose prefix is not a player column get a panel of their own. A blank cell (a
column that appeared later in the run) is a gap, not a zero.

Each panel is `PANEL_SIZE` inches at `DPI`, at most `COLUMNS` panels a row, so the picture's size
in pixels follows from the number of panels alone. matplotlib draws it off-screen (Agg); no
display is needed.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from lossgraph.language.errors import LossgraphError
from lossgraph.views.picture.style import PLAYER_COLOURS

PANEL_SIZE = (5.2, 3.6)  # inches
DPI = 100
COLUMNS = 3
SUFFIXES = (".png", ".svg", ".pdf")
TERM_COLOURS = ("#2a9d3a", "#e07b00", "#8e44ad", "#17a2b8", "#8c564b", "#d6338f", "#7f7f7f", "#bcbd22")
NOT_STATS = ("step", "seconds")


def read_log(path: Path) -> tuple[list[float], dict[str, list[float]]]:
    """(steps, {column: values}) of a run CSV; blank or unreadable cells are NaN."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise LossgraphError(f"cannot read {path}: {error}") from None
    if not lines or not lines[0] or lines[0][0] != "step":
        raise LossgraphError(f"{path} is not a lossgraph log: its first column should be 'step'")
    header = lines[0]
    rows = [row for row in lines[1:] if len(row) == len(header) and _number(row[0]) == _number(row[0])]
    steps = [_number(row[0]) for row in rows]
    columns = {name: [_number(row[index]) for row in rows] for index, name in enumerate(header) if name not in NOT_STATS}
    return steps, columns


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def panels(columns: dict[str, list[float]]) -> list[tuple[str, list[str]]]:
    """(player or prefix, its columns): each player's total first, then its terms, in log order."""
    players = [name for name in columns if "/" not in name]
    groups: dict[str, list[str]] = {name: [name] for name in players}
    for name in columns:
        if "/" in name:
            groups.setdefault(name.partition("/")[0], []).append(name)
    return list(groups.items())


def _check_output(path: Path) -> None:
    if path.suffix.lower() not in SUFFIXES:
        shown = f"'{path.suffix}'" if path.suffix else "no suffix"
        raise LossgraphError(f"cannot write {path}: {shown} is not a picture format lossgraph plot writes; "
                             f"use {', '.join(SUFFIXES)}")
    if path.is_dir():
        raise LossgraphError(f"cannot write {path}: it is a folder")


def plot_run(run: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Draw RUN's loss curves (and held-out metrics) to `output` (default RUN/losses.png)."""
    run = Path(run)
    if not run.is_dir():
        problem = "is not a folder" if run.exists() else "does not exist"
        raise LossgraphError(f"run folder {run} {problem}")
    metrics = run / "metrics.csv"
    if not metrics.is_file():
        raise LossgraphError(f"{run} is not a run folder: it has no metrics.csv "
                             f"(`lossgraph run` writes metrics.csv, eval.csv, samples/ and checkpoints/ into its --out folder)")
    output = Path(output) if output is not None else run / "losses.png"
    _check_output(output)
    steps, columns = read_log(metrics)
    if not steps:
        raise LossgraphError(f"{metrics} has no rows yet: the run logs its first row after log_every steps")
    evaluation = None
    if (run / "eval.csv").is_file():
        eval_steps, eval_columns = read_log(run / "eval.csv")
        if eval_steps and eval_columns:
            evaluation = (eval_steps, eval_columns)

    groups = panels(columns)
    count = len(groups) + (1 if evaluation else 0)
    across = min(COLUMNS, count)
    down = math.ceil(count / across)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(PANEL_SIZE[0] * across, PANEL_SIZE[1] * down), dpi=DPI)
    FigureCanvasAgg(figure)
    axes_list = figure.subplots(down, across, squeeze=False).flatten()
    players = [name for name, members in groups if name in columns]
    marker = "o" if len(steps) <= 20 else None
    for axes, (name, members) in zip(axes_list, groups):
        colour = PLAYER_COLOURS[players.index(name) % len(PLAYER_COLOURS)] if name in players else "#333333"
        terms = iter(TERM_COLOURS)
        labels = {member: member.partition("/")[2] for member in members if member != name}
        if name in columns and len(labels) == 1 and _same(columns[name], columns[members[-1]]):
            # one term with weight 1 is the loss itself: one line, named both ways
            labels = {name: f"{name} = {labels[members[-1]]}"}
            members = [name]
        for member in members:
            total = member == name
            axes.plot(steps, columns[member], label=labels.get(member, member),
                      color=colour if total else next(terms, None), linewidth=2.2 if total else 1.2,
                      marker=marker, markersize=3, zorder=3 if total else 2)
        title = f"player {name}: loss and terms" if name in players else f"{name}/…"
        _finish(axes, title)
    if evaluation:
        axes = axes_list[len(groups)]
        eval_steps, eval_columns = evaluation
        eval_marker = "o" if len(eval_steps) <= 20 else None
        for member, colour in zip(eval_columns, _cycle(TERM_COLOURS)):
            axes.plot(eval_steps, eval_columns[member], label=member, color=colour, linewidth=1.6,
                      marker=eval_marker, markersize=3)
        _finish(axes, "held-out metrics (eval.csv)")
    for axes in axes_list[count:]:
        axes.set_visible(False)
    figure.suptitle(f"{run.resolve().name}: {len(steps)} logged steps, last {int(steps[-1])}", fontsize=11)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(os.fspath(output), dpi=DPI)
    return output


def _same(first: list[float], second: list[float]) -> bool:
    return all(a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6 * max(abs(a), abs(b))
               for a, b in zip(first, second))


def _cycle(colours: tuple[str, ...]):
    index = 0
    while True:
        yield colours[index % len(colours)]
        index += 1


def _finish(axes, title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.set_title(title, fontsize=10)
    axes.set_xlabel("step", fontsize=9)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, color="#e4e4e4", linewidth=0.8)
    axes.tick_params(labelsize=8)
    axes.legend(fontsize=8, loc="best", frameon=False)
