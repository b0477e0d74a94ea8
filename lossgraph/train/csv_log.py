"""The CSV logs of a run: metrics.csv (losses every log interval) and eval.csv (held-out metrics).

Both are written through `CsvLog`: a `step` column first, a row per write, flushed as written, so
a crashed run leaves every row it logged. Values are written as the shortest text that reads back
as the same float. `stat_order` keeps metrics.csv's columns in schedule order: each player's
total, then its terms.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Callable, Mapping

from lossgraph.train.checkpoint import atomic_write_text


def _format_value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return repr(float(value))  # shortest text that reads back as the same float


class CsvLog:
    """A CSV file with a `step` column first: a row per `write`, flushed as written.

    Columns come from the first row, in `order` (a sort key; None keeps the dict's order), then
    the `trailing` columns. A key first seen later adds a column: the file is rewritten once with
    it, earlier rows left blank there. `keep_through=N` continues an existing file, dropping its
    rows after step N (and a torn last line); without it an existing file is replaced.
    """

    def __init__(self, path: Path, order: Callable[[str], Any] | None = None, trailing: tuple[str, ...] = (),
                 keep_through: int | None = None):
        self.path = path
        self.order = order
        self.trailing = trailing
        self.keys: list[str] = []
        self.handle = None
        self.writer = None
        if keep_through is not None and path.is_file():
            header, rows = self._read()
            if header:
                self.keys = [key for key in header[1:] if key not in trailing]
                kept = [row for row in rows if len(row) == len(header) and _step_of(row) is not None
                        and _step_of(row) <= keep_through]
                self._rewrite(kept_header=header, rows=kept)
                self._open("a")

    def _read(self) -> tuple[list[str], list[list[str]]]:
        with open(self.path, newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))
        return (lines[0], lines[1:]) if lines else ([], [])

    @property
    def columns(self) -> list[str]:
        return ["step", *self.keys, *self.trailing]

    def _rewrite(self, kept_header: list[str], rows: list[list[str]]) -> None:
        """Replace the file with `rows` (laid out as `kept_header`) under the current columns."""
        positions = {column: index for index, column in enumerate(kept_header)}
        lines = [self.columns]
        for row in rows:
            lines.append([row[positions[column]] if column in positions else "" for column in self.columns])
        text = _csv_text(lines)
        atomic_write_text(self.path, text)

    def _open(self, mode: str) -> None:
        self.handle = open(self.path, mode, newline="", encoding="utf-8")
        self.writer = csv.writer(self.handle)

    def write(self, step: int, values: Mapping[str, Any], **trailing: Any) -> None:
        new = [key for key in values if key not in self.keys]
        if new:
            new = sorted(new, key=self.order) if self.order else new
            if self.handle is None:
                self.keys = new
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._open("w")
                self.writer.writerow(self.columns)
            else:
                self.handle.close()
                header, rows = self._read()
                merged = self.keys + new
                self.keys = sorted(merged, key=self.order) if self.order else merged
                self._rewrite(kept_header=header, rows=rows)
                self._open("a")
        row = [str(step)]
        row += [_format_value(values[key]) if key in values else "" for key in self.keys]
        row += [_format_value(trailing.get(name, "")) for name in self.trailing]
        self.writer.writerow(row)
        self.handle.flush()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _step_of(row: list[str]) -> int | None:
    try:
        return int(row[0])
    except (ValueError, IndexError):
        return None


def _csv_text(lines: list[list[str]]) -> str:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(lines)
    return buffer.getvalue()


def stat_order(players: list[str]) -> Callable[[str], Any]:
    """Sort key for stat names: each player's total then its terms, players in schedule order."""
    rank = {player: index for index, player in enumerate(players)}

    def key(name: str) -> tuple:
        player, slash, term = name.partition("/")
        return (rank.get(player, len(rank)), player, slash != "", term)

    return key
