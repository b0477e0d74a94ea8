"""A run's curves as one picture: `lossgraph plot RUN [-o FILE.png]`.

Reads the logs `lossgraph run` writes (run.py):

    RUN/metrics.csv   step, each player's loss (`D`, `G`), each term (`G/cycle`), seconds
    RUN/eval.csv      step, each held-out metric (optional: a spec without `evaluate:` has none)

and draws a panel per player (its loss, bold, in the player's colour from `lossgraph graph`, and
its terms as written, weights included), then a panel of the held-out metrics when eval.csv
exists. Stats whose prefix is not a player column get a panel of their own. A blank cell (a
column that appeared later in the run) is a gap, not a zero.

Note [Held-out scale]: held-out metrics are errors and accuracies, positive, and one of them is
often a baseline that does nothing (`identity_XY: E[l1(x - y)]`), constant and well above the
trained curve. On a linear axis from 0 the baseline flattens the curve that matters; so a metric
panel whose values are all positive has a log axis (ratios read as distances: halving the
error is the same step at any level), and a constant series is drawn as a dashed level with its
value in the legend. A panel with a zero or negative value stays linear.

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
    run = _run_folder(run)
    output = Path(output) if output is not None else run / "losses.png"
    _check_output(output)
    figure = run_figure(run)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(os.fspath(output), dpi=DPI)
    return output


def _run_folder(run: str | os.PathLike) -> Path:
    run = Path(run)
    if not run.is_dir():
        problem = "is not a folder" if run.exists() else "does not exist"
        raise LossgraphError(f"run folder {run} {problem}")
    if not (run / "metrics.csv").is_file():
        raise LossgraphError(f"{run} is not a run folder: it has no metrics.csv "
                             f"(`lossgraph run` writes metrics.csv, eval.csv, samples/ and checkpoints/ into its --out folder)")
    return run


def run_figure(run: str | os.PathLike):
    """The matplotlib Figure of RUN's curves: a panel per player, then the held-out metrics."""
    run = _run_folder(run)
    metrics = run / "metrics.csv"
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
        _held_out(axes_list[len(groups)], *evaluation)
    for axes in axes_list[count:]:
        axes.set_visible(False)
    figure.suptitle(f"{run.resolve().name}: {len(steps)} logged steps, last {int(steps[-1])}", fontsize=11)
    figure.tight_layout()
    return figure


def _held_out(axes, steps: list[float], columns: dict[str, list[float]]) -> None:
    """The held-out metrics; a log axis when every value is positive (Note [Held-out scale])."""
    marker = "o" if len(steps) <= 20 else None
    for member, colour in zip(columns, _cycle(TERM_COLOURS)):
        values = columns[member]
        if _constant(values):  # a reference, such as the error of doing nothing: a dashed level
            level = next(value for value in values if math.isfinite(value))
            axes.plot(steps, values, label=f"{member} = {level:.3g}, constant", color=colour, linewidth=1.2,
                      linestyle=(0, (5, 3)), zorder=2)
        else:
            axes.plot(steps, values, label=member, color=colour, linewidth=1.8, marker=marker, markersize=3, zorder=3)
    finite = [value for values in columns.values() for value in values if math.isfinite(value)]
    log = bool(finite) and min(finite) > 0
    if log:
        _log_axis(axes)
    _finish(axes, "held-out metrics (eval.csv" + (", log scale)" if log else ")"))


def _constant(values: list[float]) -> bool:
    finite = [value for value in values if math.isfinite(value)]
    return len(finite) >= 2 and _same([finite[0]] * len(finite), finite)


def _log_axis(axes) -> None:
    """A log y axis labelled in plain numbers (0.2, 0.3, 0.5, 1): finer steps over a narrow range,
    every decade over a wide one."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axes.set_yscale("log")
    low, high = axes.get_ylim()
    decades = math.log10(high / low) if low > 0 else math.inf
    subs = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0) if decades <= 1.2 else (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
    axes.yaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.yaxis.set_minor_formatter(NullFormatter())


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
