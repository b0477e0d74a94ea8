"""What a loss may not hold: values with no gradient (`==`, an `argmax` read as a number) and
evaluation-only data. An `argmax` read only as a label (a pseudo-label) is data to its loss."""

from __future__ import annotations

from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Term
from lossgraph.compiler.ops import NOT_DIFFERENTIABLE, OPS, Ops
from lossgraph.language.errors import Origin, Problems
from lossgraph.language.spec import Spec


# Where a value is read only as a class index, no gradient is asked of it: the label of `pick` and
# `ce`, and a network's input (a label input is one-hot encoded). `roll`, `stop_gradient` and
# grad's variable pass a label on as it is.
_LABEL_PLACES = {Ops.PICK: (1,), Ops.CE: (1,)}
_LABEL_CARRIERS = frozenset({Ops.ROLL, Ops.STOP_GRADIENT, Ops.LEAF})


def _used_as_labels(root: Expr) -> frozenset[Expr]:
    """The nodes under `root` whose every use is a label's place (Note: a pseudo-label, TUNIT's
    `argmax(C.cls(x))`, is data to the loss that reads it, never a value it differentiates)."""
    other_use: set[Expr] = {root}
    nodes = list(root.walk())
    for node in reversed(nodes):  # parents first: a carrier's uses are known before its argument's
        for index, child in enumerate(node.args):
            label_place = (node.op in (Ops.APPLY, Ops.FROZEN) or index in _LABEL_PLACES.get(node.op, ())
                           or (node.op in _LABEL_CARRIERS and node not in other_use))
            if not label_place:
                other_use.add(child)
    return frozenset(node for node in nodes if node not in other_use)


def check_loss(term: Term, held_out: dict, origins: dict[Expr, list[Origin]], spec: Spec, problems: Problems) -> None:
    """A loss is differentiated and trained on: no ==, argmax only as a label, no evaluation-only data."""
    labels = _used_as_labels(term.expr)
    for node in term.expr.walk():
        if node.op is Ops.ARGMAX and node in labels:
            continue
        if node.op is Ops.ARGMAX:
            message = f"argmax has no gradient, so term '{term.name}' can use it only as a label, never as a value"
            hint = ("use it as the label of pick or ce, or as a network's label input, e.g. "
                    "E[ce(C(x2), argmax(C(x)))]; as a value it belongs in evaluate:")
        elif node.op in NOT_DIFFERENTIABLE:
            message = f"{OPS[node.op].spelling} has no gradient, so term '{term.name}' cannot use it"
            hint = "use it in evaluate:, e.g. accuracy: E[argmax(C(x)) == c]"
        elif node.op is Ops.DATA and node.arg in held_out:
            message = f"'{node.arg}' is held-out data (dataset.held_out), which training batches do not have"
            hint = "use it in evaluate: or samples:"
        else:
            continue
        found = origins.get(node)
        origin = found[0] if found else spec.source.origin(tuple(term.key.split(".")))
        problems.add(message, origin, hint)
        return
