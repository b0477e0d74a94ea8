"""Evaluate IR directly with torch, one node at a time.

Used by the shape check (on meta tensors, so a bad shape is reported at the node that failed)
and by tests that compare passes and generated code against a straightforward evaluation. It
runs the op table's own lowerings, so it cannot disagree with the code generator about what an
op means.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from lossgraph.compiler import runtime
from lossgraph.compiler.expr import Expr
from lossgraph.compiler.ops import HELPER_OPS, OPS, Ops


@lru_cache(maxsize=None)
def _kernel(op: Ops, ranks: tuple[int, ...]) -> Callable[..., Any]:
    names = [f"a{i}" for i in range(len(ranks))]
    body = OPS[op].torch(names, ranks)
    # The body is lossgraph's own lowering of one op, never user text.
    return eval(f"lambda {', '.join(names)}: {body}", {"torch": torch, "F": F} | {name: getattr(runtime, name) for name in HELPER_OPS.values()})  # noqa: S307


def _rank(value: Any) -> int:
    return value.dim() if isinstance(value, torch.Tensor) else 0


def evaluate_node(node: Expr, args: list[Any], nets: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    op = node.op
    if op is Ops.CONST:
        return node.arg
    if op in (Ops.DATA, Ops.RANDOM, Ops.WEIGHT):
        return inputs[node.arg]
    if op is Ops.APPLY:
        return nets[node.arg](*args)
    if op is Ops.HEAD:
        return args[0][node.arg[1]]
    if op is Ops.FROZEN:
        network = nets[node.arg]
        return torch.func.functional_call(network, runtime.frozen(network), tuple(args))
    return _kernel(op, tuple(_rank(a) for a in args))(*args)


def interpret(roots: list[Expr], nets: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[Expr, Any]:
    """Every node under `roots`, evaluated once (shared nodes are computed once)."""
    values: dict[Expr, Any] = {}
    for root in roots:
        for node in root.walk():
            if node not in values:
                values[node] = evaluate_node(node, [values[a] for a in node.args], nets, inputs)
    return values
