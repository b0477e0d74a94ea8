"""What lowering does to the network calls of the players' terms, once they are parsed:

- `freeze`: a term's `updates:` leaves some of its player's networks out, whose calls become
  FROZEN (gradient to their inputs, none to their parameters);
- `share_variables`: a call a `grad` makes on its variable is the same call as one written on the
  value itself, where that value carries no gradient (Note [One forward for R1]).
"""

from __future__ import annotations

from lossgraph.compiler.expr import Expr
from lossgraph.compiler.ops import Ops
from lossgraph.language.errors import Origin


def freeze(expr: Expr, frozen: set[str], origins: dict[Expr, list[Origin]], names: dict[Expr, str]) -> Expr:
    """`expr` with every application of a `frozen` network made FROZEN: the term's gradient still
    flows through that network to its inputs, but not into its parameters (BicycleGAN's latent
    regression updates G, not E). A rebuilt node keeps its origins and its let name (`names`):
    StarGAN v2's `sr1` is still `sr1` in a term that updates G only."""

    done: dict[Expr, Expr] = {}
    for node in expr.walk():
        args = tuple(done[child] for child in node.args)
        new = node if args == node.args else node.replace(args=args)
        if new.op is Ops.APPLY and new.arg in frozen:
            new = Expr(Ops.FROZEN, new.args, new.arg)
        if new is not node and node in origins:  # a node rebuilt above a frozen call: its origins too
            origins.setdefault(new, list(origins[node]))
        if new is not node and node in names:
            names.setdefault(new, names[node])
        done[node] = new
    return done[expr]


def share_variables(exprs: list[Expr], origins: dict[Expr, list[Origin]]) -> dict[Expr, Expr]:
    """Each expression with the network calls a `grad` makes on its variable shared with the same
    calls written elsewhere, where the variable carries no gradient (Note [One forward for R1]).
    Returns {expression: shared expression}.

    Note [One forward for R1]: `grad(l, x)` differentiates `l` with x as a variable of its own,
    `LEAF(x)`, so `l`'s calls are made on the leaf: `D(LEAF(x))`. R1 is written beside a loss on
    the same output (`softplus(-D(x))`), and the step would run D on x twice, once on x and once on
    the leaf, where a hand-written step runs it once on `x.requires_grad_()`. Where x carries no
    gradient (data, a draw, a stopped value: no network reaches it), the leaf is x for every other
    use, so every call written on x becomes the call on the leaf, one node, one forward. Where x
    carries a gradient (R2 on `fake`, which G's loss differentiates through), the calls stay apart.
    """
    shared: dict[Expr, Expr] = {}
    for expr in exprs:
        for node in expr.walk():
            if node.op is not Ops.GRAD:
                continue
            out, leaf = node.args
            value = leaf.args[0]
            if not _carries_no_gradient(value):
                continue
            for inner in out.walk():
                if inner is not leaf and leaf in inner.args:
                    written = inner.replace(args=tuple(value if arg is leaf else arg for arg in inner.args))
                    shared.setdefault(written, inner)
    if not shared:
        return {expr: expr for expr in exprs}
    done: dict[Expr, Expr] = {}

    def rebuild(root: Expr) -> Expr:
        for node in root.walk():
            if node in done:
                continue
            if node.op is Ops.LEAF:  # a variable keeps the value it was cut from
                done[node] = node
                continue
            args = tuple(done[child] for child in node.args)
            new = node if args == node.args else node.replace(args=args)
            new = shared.get(new, new)
            if new is not node and node in origins:
                known = origins.setdefault(new, [])
                known.extend(origin for origin in origins[node] if origin not in known)
            done[node] = new
        return done[root]

    return {expr: rebuild(expr) for expr in exprs}


def _carries_no_gradient(value: Expr) -> bool:
    """No network is applied on a path into `value` that a gradient could take."""
    stack, seen = [value], set()
    while stack:
        node = stack.pop()
        if node in seen or node.op in (Ops.STOP_GRADIENT, Ops.LEAF):
            continue
        seen.add(node)
        if node.op in (Ops.APPLY, Ops.FROZEN):
            return False
        stack.extend(node.args)
    return True
