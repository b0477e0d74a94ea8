"""An IR node as a Python expression, with just the parentheses it needs.

Each rendering is a (text, binding power) pair: a name, a call or a method chain binds tightest
(`ATOM`); an infix operator binds as its op-table row says (`+` 10, `*` 20, unary `-` 30, `**` 40).
An argument is parenthesised where its power is below what its place needs; `**` groups to the
right. The op table's lowerings say how each op reads in PyTorch (ops.py).
"""

from __future__ import annotations

from typing import Mapping

from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph
from lossgraph.compiler.ops import OPS, Ops
from lossgraph.compiler.printing import number_text
from lossgraph.language.errors import CodegenError

ATOM = 100
NEGATIVE = OPS[Ops.NEG].infix  # a negative number binds like unary minus


class Renderer:
    """Renders nodes of one function: named nodes by their names, the rest inline."""

    def __init__(self, graph: Graph, ranks: Mapping[Expr, int], networks: Mapping[str, str], named: Mapping[Expr, str]):
        self.graph = graph
        self.ranks = ranks
        self.networks = networks  # network name -> the local variable holding its module
        self.named = named
        self.detached: frozenset[Expr] = frozenset()  # named values read with .detach() here

    def text(self, node: Expr, detached: frozenset[Expr] = frozenset()) -> str:
        self.detached = detached
        try:
            return self._render(node)[0]
        finally:
            self.detached = frozenset()

    def _render(self, node: Expr) -> tuple[str, int]:
        if node in self.named:
            name = self.named[node]
            return (f"{name}.detach()" if node in self.detached else name), ATOM
        op = node.op
        if op is Ops.CONST:
            return number_text(node.arg), (NEGATIVE if node.arg < 0 else ATOM)
        if op is Ops.APPLY:
            return f"{self.networks[node.arg]}({self._arguments(node.args)})", ATOM
        if op is Ops.HEAD:
            return f"{_wrap(self._render(node.args[0]), ATOM)}[{node.arg[1]}]", ATOM
        if op is Ops.FROZEN:
            network = self.networks[node.arg]
            return f"torch.func.functional_call({network}, frozen({network}), ({self._arguments(node.args)},))", ATOM
        row = OPS.get(op)
        if row is None or row.torch is None:
            raise CodegenError(op.name, self.graph.origin(node))
        args = [self._render(arg) for arg in node.args]
        ranks = [self.ranks.get(arg, 0) for arg in node.args]
        if row.infix_lowering and len(args) == 2:
            power = row.infix
            right_grouping = op is Ops.POW
            texts = [_wrap(args[0], power + (1 if right_grouping else 0)), _wrap(args[1], power + (0 if right_grouping else 1))]
            return row.torch(texts, ranks), power
        if row.infix_lowering:
            return row.torch([_wrap(args[0], row.infix)], ranks), row.infix
        texts = [_wrap(arg, ATOM) if row.atomic else arg[0] for arg in args]
        return row.torch(texts, ranks), ATOM

    def _arguments(self, args) -> str:
        return ", ".join(self._render(arg)[0] for arg in args)


def _wrap(rendered: tuple[str, int], needed: int) -> str:
    text, power = rendered
    return f"({text})" if power < needed else text
