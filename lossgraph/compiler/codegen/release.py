"""Names a backward no longer needs, deleted before it runs.

Note [Released before the backward]: a backward frees each saved tensor of its graph as it passes
the node that saved it, unless something else still holds the tensor. In a hand-written step the
values of a helper function die when it returns; in the generated iteration, one function for the
whole schedule, every value stays bound to its local name until the function returns: a gradient
penalty's gradient, a history pool's batch, a network output the loss has already reduced. Each
such name keeps its tensor alive through the backward and pushes the step's peak memory up by its
size. So before a backward that frees its graph (no `retain_graph`), the names bound earlier that
neither it nor any later line reads are deleted: the backward then frees their tensors as it goes,
as a hand-written step's would. Only references go; no value, FLOP or order of work changes.

Inside a repeated step's loop only names the loop binds are deleted: a name bound before the loop
is bound once, and a later repeat would read it deleted. A name the loop reads before binding it
(the previous repeat's) stays.
"""

from __future__ import annotations

import ast
from typing import Iterable

from lossgraph.compiler.codegen.lines import Body, Line

COMMENT = "no later line reads them: the backward frees what only they held"


def _names(code: str) -> tuple[set[str], set[str]]:
    """(names the line binds, names it reads); a block's header (`for ...:`) as a statement."""
    text = code.strip()
    if not text or text.startswith("#"):
        return set(), set()
    try:
        tree = ast.parse(text)
    except SyntaxError:  # a block's header, its comment and all
        tree = ast.parse(text + "\n    pass")
    bound, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, (ast.Store, ast.Del)) else read).add(node.id)
    return bound, read


def _frees(code: str) -> bool:
    return (".backward(" in code or code.startswith("torch.autograd.backward(")) and "retain_graph=True" not in code


def release_before_backward(body: Body, returned: Iterable[str]) -> None:
    """Insert `del` lines into `body` (Note [Released before the backward]); `returned` is the code
    of the function's results, read after every line."""
    lines = body.lines
    parsed = [_names(line.code) for line in lines]
    loops = _loops(lines)
    results = set().union(*(_names(code)[1] for code in returned))
    bound: dict[str, int | None] = {}  # name -> the loop of the line that bound it last, in binding order
    inserts: list[tuple[int, Line]] = []
    for index, line in enumerate(lines):
        loop = loops[index]
        if _frees(line.code):
            carried = _carried([member for member in range(len(lines)) if loops[member] == loop], parsed) if loop is not None else set()
            dead = [name for name, owner in bound.items()
                    if (loop is None or owner == loop) and name not in carried and not _read_later(name, index, parsed, results)]
            if dead:
                inserts.append((index, Line(f"del {', '.join(dead)}", COMMENT, False, line.depth)))
                for name in dead:
                    del bound[name]
        if line.code.startswith("for "):
            continue  # a loop's variable (a repeat's `_`, the clipped `parameter`) holds no value of the step
        for name in sorted(parsed[index][0]):
            bound.pop(name, None)
            bound[name] = loop
    for position, insert in reversed(inserts):
        lines.insert(position, insert)


def _read_later(name: str, index: int, parsed: list[tuple[set[str], set[str]]], results: set[str]) -> bool:
    """Whether the line at `index` or one after it reads `name` before a line binds it again."""
    for bound, read in parsed[index:]:
        if name in read:
            return True
        if name in bound:
            return False
    return name in results


def _carried(members: list[int], parsed: list[tuple[set[str], set[str]]]) -> set[str]:
    """Names a loop's lines read before the loop binds them: a repeat reads the previous one's."""
    bound: set[str] = set()
    carried: set[str] = set()
    for member in members:
        carried |= parsed[member][1] - bound
        bound |= parsed[member][0]
    return carried


def _loops(lines: list[Line]) -> list[int | None]:
    """For each line, the index of the repeated step's loop (`for _ in range(n):`) it is in, or None."""
    owner: list[int | None] = []
    current: int | None = None
    for index, line in enumerate(lines):
        if current is not None and line.depth <= lines[current].depth:
            current = None
        owner.append(current)
        if line.code.startswith("for _ in range("):
            current = index
    return owner
