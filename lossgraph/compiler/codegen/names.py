"""Names in generated code: the spec's own, and readable ones for what the spec leaves unnamed.

Note [Generated names]: data and networks keep their spec names, `let:` bindings their let names,
terms their term names (qualified by the player, `adv_D`, where two players have a term of one
name). A network call is named after the network and its arguments (`G_YX_G_XY_x` is
`G_YX(G_XY(x))`); any other value that needs a line of its own is described from what it
computes (`E_mu1_sq` for `E[mu1^2]`). A let keeps its name where a term's `updates:` freezes a
network in it. A `Namespace` keeps names unique within a function and never lets a spec name
shadow a keyword, a builtin or a name the generated code uses itself: a second value of one name
takes its player's name (`sr1_G_ref`, StarGAN v2's `sr1` read with S frozen), a number only where
that is taken too. A scheduled weight is named as its term's variable (`weight_ds_G`).

Note [Generated code's own names]: `GENERATED_NAMES` are the names the emitted module itself uses
(its imports, the functions' parameters, the runtime helpers, loop variables). A spec name equal
to one of them (data named `parameters`, a network named `torch`) is renamed in the generated
code, never allowed to shadow it; tests/codegen/test_namespace.py compiles a spec with each.
"""

from __future__ import annotations

import builtins
import keyword
import re
from typing import Mapping

from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph
from lossgraph.compiler.ops import HELPER_OPS, OPS, Ops

GENERATED_NAMES = frozenset({"torch", "F", "nets", "inputs", "optimizers", "parameters", "pools",
                             "frozen", "batched", "parameter", "_"}) | frozenset(HELPER_OPS.values())
MAX_NAME = 32
DESCRIBE_DEPTH = 3  # how deep a description looks into a value before naming it by its op


class Namespace:
    """Unique, readable Python names within one generated function."""

    def __init__(self, reserved: set[str] = frozenset()):
        self.used: set[str] = set(reserved)

    def claim(self, name: str) -> str:
        """A local variable for a spec name (data, networks): the name itself, unless the generated
        code needs it for itself or it is a builtin (Note [Generated code's own names])."""
        if name in GENERATED_NAMES or hasattr(builtins, name):
            return self.fresh(name)
        self.used.add(name)
        return name

    def fresh(self, hint: str, qualifier: str | None = None) -> str:
        """`hint` made a valid, unused name: as it is, else `hint_<qualifier>`, else numbered."""
        base = re.sub(r"\W", "_", hint).strip("_") or "value"
        if base[0].isdigit():
            base = f"v_{base}"
        if len(base) > MAX_NAME:
            base = base[:MAX_NAME].rstrip("_")
        candidates = [base] + ([f"{base}_{qualifier}"] if qualifier else [])
        candidate = next((name for name in candidates if self._free(name)), None)
        count = 1
        while candidate is None:
            count += 1
            candidate = f"{base}_{count}" if self._free(f"{base}_{count}") else None
        self.used.add(candidate)
        return candidate

    def release(self, name: str) -> None:
        """`name` may be bound again: the value it held is not read any more."""
        self.used.discard(name)

    def _free(self, name: str) -> bool:
        return name not in self.used and not keyword.iskeyword(name) and not hasattr(builtins, name)


def term_names(graph: Graph) -> dict[tuple[str, str], str]:
    """(player, term) -> the variable name of that term: its own name, or `name_player` where
    players have different terms of that name (CoGAN's `fake`, D's and G's). Terms of one name and
    one value (CoGAN's `real`, in both players' objectives) are one variable of that name."""
    values: dict[str, set[Expr]] = {}
    for player in graph.players:
        for term in player.terms:
            values.setdefault(term.name, set()).add(term.value)
    return {(player.name, term.name): term.name if len(values[term.name]) == 1 else f"{term.name}_{player.name}"
            for player in graph.players for term in player.terms}


def describe(node: Expr, graph: Graph, named: Mapping[Expr, str], depth: int = 0) -> str:
    """A variable name for `node`, from the spec's names and what it computes."""
    if node in named:
        return named[node]
    if node in graph.names:
        return graph.names[node]
    op = node.op
    if op in (Ops.DATA, Ops.RANDOM):
        return str(node.arg)
    if op is Ops.WEIGHT:  # weight/G/ds: the weight of G's term ds, qualified as that term's variable is
        _, player, term = node.arg.split("/", 2)
        return f"weight_{term_names(graph).get((player, term), term)}"
    if op in (Ops.APPLY, Ops.FROZEN):
        parts = [describe(arg, graph, named, depth + 1) for arg in node.args]
        joined = f"{node.arg}_{'_'.join(parts)}"
        return joined if len(joined) <= MAX_NAME else f"{node.arg}_out"
    if op is Ops.HEAD:
        call = node.args[0]
        parts = [describe(arg, graph, named, depth + 1) for arg in call.args]
        joined = f"{call.arg}_{node.arg[0]}_{'_'.join(parts)}"
        return joined if len(joined) <= MAX_NAME else f"{call.arg}_{node.arg[0]}"
    if op is Ops.CONST:
        return "c"
    if op is Ops.LEAF:  # grad's variable, as the cut leaves of phases.py are named
        return f"{describe(node.args[0], graph, named, depth)}_in"
    if op is Ops.GRAD:
        return f"grad_{describe(node.args[0], graph, named, depth + 1)}"
    if op is Ops.INTERPOLATE:
        return "mix"
    if depth >= DESCRIBE_DEPTH:
        return _spelled(op)
    inner = [describe(arg, graph, named, depth + 1) for arg in node.args]
    if op in (Ops.MUL, Ops.DIV) and node.args[0].op is Ops.CONST:
        return inner[1]
    if op in (Ops.MUL, Ops.DIV) and node.args[1].op is Ops.CONST:
        return inner[0]
    if op in (Ops.NEG, Ops.STOP_GRADIENT):
        return inner[0]
    if op is Ops.POW:
        return f"{inner[0]}_sq" if node.args[1].op is Ops.CONST and node.args[1].arg == 2 else f"{inner[0]}_pow"
    if op is Ops.MEAN:
        return f"E_{inner[0]}"
    if op in (Ops.ADD, Ops.SUB, Ops.MUL, Ops.DIV):
        word = {Ops.ADD: "plus", Ops.SUB: "minus", Ops.MUL: "times", Ops.DIV: "over"}[op]
        return f"{inner[0]}_{word}_{inner[1]}"
    return f"{_spelled(op)}_{'_'.join(inner)}"


def _spelled(op: Ops) -> str:
    spelling = OPS[op].spelling
    return spelling if spelling.isidentifier() else op.name.lower()
