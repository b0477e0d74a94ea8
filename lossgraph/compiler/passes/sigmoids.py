"""Make a probability network's sigmoid explicit.

A network declared `output: probability` (or a head declared `probability`) returns logits from
its module; in a formula `D(v)` (or `D.src(v)`) means `sigmoid(logits)` (docs/methods.md, Conventions). Writing the sigmoid into the IR lets the stable-log rules
see `log(sigmoid(l))` and turn it into `-softplus(-l)`. A probability network's per-domain output
picked by a label, `pick(D(x), c)`, is the sigmoid of the picked logit, `sigmoid(pick(logits, c))`
(the sigmoid is elementwise), so the same rules see `log(pick(D(x), c))` too.
"""

from __future__ import annotations

from dataclasses import replace

from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph
from lossgraph.compiler.ops import Ops
from lossgraph.compiler.passes.result import PassResult


def insert_sigmoids(graph: Graph) -> PassResult:
    if graph.sigmoids_explicit:
        return PassResult(graph, False)  # already written out: a second run must not wrap them again
    networks = graph.networks
    count = 0

    def wrap(node: Expr) -> Expr | None:
        nonlocal count
        single = node.op in (Ops.APPLY, Ops.FROZEN) and not networks[node.arg].heads and networks[node.arg].reads_probability(None)
        head = node.op is Ops.HEAD and networks[node.args[0].arg].reads_probability(node.arg[0])
        if single or head:
            count += 1
            return Expr.make(Ops.SIGMOID, node)
        if node.op is Ops.PICK and node.args[0].op is Ops.SIGMOID:  # children are wrapped first
            return Expr.make(Ops.SIGMOID, Expr.make(Ops.PICK, node.args[0].args[0], node.args[1]))
        return None

    if not any(net.output == "probability" or "probability" in dict(net.heads).values() for net in networks.values()):
        return PassResult(replace(graph, sigmoids_explicit=True), True)  # nothing to wrap, but now said so
    result = replace(graph.map_exprs(wrap), sigmoids_explicit=True)
    return PassResult(result, count > 0, (f"{count} probability outputs read as sigmoid(logits)",) if count else ())
