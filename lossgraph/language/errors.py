"""One exception family for everything a user can get wrong.

`LossgraphError` is the root. `SpecError` (also a `ValueError`) is a bad spec: it carries every
`Problem` found, each with an `Origin` that points at the file, line, column and dotted key, and
renders as the offending line with a caret under the span. `FormulaError` is a `SpecError` raised
from inside a formula. `DataError` is a dataset that cannot be read; `CodegenError` an IR node the
code generator has no lowering for (a bug in lossgraph, not in the spec, but still located).

Invariant: a user mistake never reaches the user as a Python traceback; the CLI prints `str(error)`.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Iterable, Sequence

SNIPPET_WIDTH = 100  # characters of a source line shown around the caret
MAX_SHOWN = 20  # problems rendered in one message


@dataclass(frozen=True)
class Origin:
    """Where a value came from: `file:line:col` (1-based) plus the dotted key path.

    `end_col` is exclusive and on the same line; `text` is that file line, kept so an error can be
    rendered without reading the file again.
    """

    file: str
    line: int
    col: int
    key: str = ""
    end_col: int | None = None
    text: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where} {self.key}" if self.key else where

    def snippet(self) -> str:
        """The source line with a `^~~~` caret under the span, like a compiler diagnostic.

        A line longer than `SNIPPET_WIDTH` is cut to a window around the caret (`...` marks
        each cut), so a 4000-character formula does not flood the terminal.
        """
        if self.text is None:
            return ""
        line = self.text.rstrip("\n").expandtabs(1)
        col = self.col - 1
        width = max(1, (self.end_col or self.col + 1) - self.col)
        if len(line) > SNIPPET_WIDTH:
            start = max(0, min(col - SNIPPET_WIDTH // 4, len(line) - SNIPPET_WIDTH))
            end = start + SNIPPET_WIDTH
            head = "..." if start > 0 else ""
            tail = "..." if end < len(line) else ""
            width = max(1, min(width, end - col))
            line = head + line[start:end] + tail
            col = col - start + len(head)
        gutter = f"{self.line:>5} | "
        caret = " " * (len(gutter) - 2) + "| " + " " * col + "^" + "~" * (width - 1)
        return f"{gutter}{line}\n{caret}"


@dataclass(frozen=True)
class Problem:
    message: str
    origin: Origin | None = None
    hint: str | None = None

    def render(self) -> str:
        head = f"{self.origin.file}:{self.origin.line}:{self.origin.col}: " if self.origin else ""
        key = f"{self.origin.key}: " if self.origin and self.origin.key else ""
        text = f"{head}{key}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        snippet = self.origin.snippet() if self.origin else ""
        return f"{text}\n{snippet}" if snippet else text


class LossgraphError(Exception):
    """Root of every error lossgraph raises on purpose."""


class SpecError(LossgraphError, ValueError):
    """A spec with one or more problems, all collected before raising."""

    def __init__(self, problems: Problem | str | Sequence[Problem], origin: Origin | None = None, hint: str | None = None):
        if isinstance(problems, str):
            problems = [Problem(problems, origin, hint)]
        elif isinstance(problems, Problem):
            problems = [problems]
        # one mistake reached twice (a network built for each of its calls) is said once
        self.problems: tuple[Problem, ...] = tuple(dict.fromkeys(problems))
        super().__init__(self._render())

    def _render(self) -> str:
        # like a compiler's error limit: all problems stay in `problems`, the message shows the first
        shown = self.problems[:MAX_SHOWN]
        body = "\n".join(p.render() for p in shown)
        if len(self.problems) > len(shown):
            body += f"\n... and {len(self.problems) - len(shown)} more problems"
        if len(self.problems) > 1:
            return f"{len(self.problems)} problems:\n{body}"
        return body

    @property
    def origin(self) -> Origin | None:
        return self.problems[0].origin if self.problems else None


class FormulaError(SpecError):
    """A formula that does not parse or does not mean anything lossgraph can compute."""


class DataError(LossgraphError):
    """A dataset (folder or built-in) that cannot provide what the spec asks for."""


class CodegenError(LossgraphError):
    """An IR node with no lowering; names the op and where it came from."""

    def __init__(self, op: str, origin: Origin | None = None):
        self.op = op
        self.origin = origin
        where = f"{origin}: " if origin else ""
        super().__init__(f"{where}no code generation rule for op {op}")


@dataclass
class Problems:
    """Collects problems so that a spec reports all of its mistakes at once."""

    items: list[Problem] = field(default_factory=list)

    def add(self, message: str, origin: Origin | None = None, hint: str | None = None) -> None:
        self.items.append(Problem(message, origin, hint))

    def extend(self, error: SpecError) -> None:
        self.items.extend(error.problems)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self, kind: type[SpecError] = SpecError) -> None:
        if self.items:
            raise kind(self.items)


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """A `did you mean 'G_XY'?` hint for the closest valid name, or a list when none is close."""
    choices = sorted(set(choices))
    if not choices:
        return None
    # NOTE: difflib alone breaks ties in reverse alphabetical order, so `G_XZ` got `G_YX`;
    # among equally close names prefer the longest common prefix, then alphabetical order.
    scored = [(difflib.SequenceMatcher(None, name, c).ratio(), len(os.path.commonprefix([name, c])), c) for c in choices]
    best = max(scored, key=lambda item: item[:2])
    close = [best[2]] if best[0] >= 0.6 else []
    if not close:
        lowered = {c.lower(): c for c in choices}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    if close:
        return f"did you mean '{close[0]}'?"
    shown = ", ".join(f"'{c}'" for c in choices[:12])
    more = ", ..." if len(choices) > 12 else ""
    return f"expected one of {shown}{more}"
