"""Make a probability network's sigmoid explicit.

A network declared `output: probability` returns logits from its module; in a formula `D(v)`
means `sigmoid(logits)` (METHODS.md). Writing the sigmoid into the IR lets the stable-log rules
see `log(sigmoid(l))` and turn it into `-softplus(-l)`.
"""

from __future__ import annotations

from ..expr import Expr
from ..graph import Graph
from ..ops import Ops
from . import PassResult


def insert_sigmoids(graph: Graph) -> PassResult:
    probability = {name for name, net in graph.networks.items() if net.output == "probability"}
    count = 0

    def wrap(node: Expr) -> Expr | None:
        nonlocal count
        if node.op is Ops.APPLY and node.arg in probability:
            count += 1
            return Expr.make(Ops.SIGMOID, node)
        return None

    if not probability:
        return PassResult(graph, False)
    result = graph.map_exprs(wrap)
    return PassResult(result, count > 0, (f"{count} probability outputs read as sigmoid(logits)",) if count else ())
