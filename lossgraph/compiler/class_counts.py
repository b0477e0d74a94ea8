"""Class counts: what only shapes tell about labels (the domain rules check kinds and ranges,
passes/domains.py). A label's class count is declared (`label(K)`) or read off the logits an
`argmax` takes; `ce`'s logits and `pick`'s outputs must have one value per class of their label.
Part of the shape check (shape_check.py), which runs these on its dry run's values.
"""

from __future__ import annotations

import torch

from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph
from lossgraph.compiler.ops import Ops
from lossgraph.compiler.printing import formula_text
from lossgraph.language.spec import Spec


def label_classes(spec: Spec, graph: Graph, node: Expr) -> int | None:
    """The number of classes of a label-valued leaf, or None when `node` is not a label."""
    if node.op is Ops.DATA:
        kind = spec.kinds.get(node.arg) or graph.held_out[node.arg]
        return kind.size if kind.kind == "label" else None
    if node.op is Ops.RANDOM and graph.random[node.arg].dist == "label":
        return graph.random[node.arg].size
    return None


def _label_classes(spec: Spec, graph: Graph, values: dict, node: Expr) -> int | None:
    """A label's class count: declared, or the logits' class dimension an argmax reads."""
    if node.op is Ops.ARGMAX:
        logits = values.get(node.args[0])
        return logits.shape[1] if isinstance(logits, torch.Tensor) and logits.dim() >= 2 else None
    if node.op in (Ops.ROLL, Ops.STOP_GRADIENT):
        return _label_classes(spec, graph, values, node.args[0])
    return label_classes(spec, graph, node) if node.op in (Ops.DATA, Ops.RANDOM) else None


def check_classes(spec: Spec, graph: Graph, values: dict, fail) -> None:
    """What only shapes tell (the domain rules check kinds and ranges, passes/domains.py): `ce`'s
    logits and `pick`'s outputs have one value per class of their label, and `kl`'s mean and
    log-variance one shape."""
    for node in graph.nodes():
        if node.op is Ops.CE:
            logits, label = node.args
            value = values.get(logits)
            classes = _label_classes(spec, graph, values, label)
            if not isinstance(value, torch.Tensor) or value.dim() < 2:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else "a number"
                fail(node, f"ce(logits, c) needs logits with one value per class, shape (N, K); {formula_text(logits, graph.names)} has shape {shape}")
            elif classes and value.shape[1] != classes:
                fail(node, f"ce: {formula_text(logits, graph.names)} gives {value.shape[1]} class logits, but "
                           f"{formula_text(label, graph.names)} is a label of {classes} classes",
                     "give the network one output per class (classes: or out_channels: in its networks: entry)")
        elif node.op is Ops.PICK:
            outputs, label = node.args
            value = values.get(outputs)
            classes = _label_classes(spec, graph, values, label)
            if not isinstance(value, torch.Tensor) or value.dim() < 2:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else "a number"
                fail(node, f"pick(v, c) needs v with one output per class in dimension 1, shape (N, K, ...); "
                           f"{formula_text(outputs, graph.names)} has shape {shape}")
            elif classes and value.shape[1] != classes:
                fail(node, f"pick: {formula_text(outputs, graph.names)} gives {value.shape[1]} outputs per sample, but "
                           f"{formula_text(label, graph.names)} is a label of {classes} classes",
                     "give the network one output per class (classes: or out_channels: in its networks: entry)")
        elif node.op is Ops.KL:
            mu, logvar = (values.get(arg) for arg in node.args)
            if isinstance(mu, torch.Tensor) and isinstance(logvar, torch.Tensor) and mu.shape != logvar.shape:
                fail(node, f"kl(mu, logvar) takes a mean and a log-variance of one shape; "
                           f"{formula_text(node.args[0], graph.names)} has shape {tuple(mu.shape)} and "
                           f"{formula_text(node.args[1], graph.names)} {tuple(logvar.shape)}")
