"""What an op asks of its arguments' shapes, checked on the dry run's meta values before the op
runs (shape_check.py), so that a mismatch reads in the op's own terms rather than as the torch
error it would raise. Rules as data: one function per op, from the argument values (tensors, or
numbers for constants) to a message, or None where the shapes fit.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from lossgraph.compiler.ops import Ops


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else "a number"


def _rows(value: Any) -> int | None:
    """The per-row size of a batch of vectors (or maps, flattened); None for a number or a per-sample value."""
    if not isinstance(value, torch.Tensor) or value.dim() < 2:
        return None
    return value[0].numel()


def _nce(query, key, negatives, tau) -> str | None:
    q, k, n = _rows(query), _rows(key), _rows(negatives)
    if q is None or k is None or n is None:
        return ("nce(q, k, Q, tau) takes a query and a key per sample and negatives as rows, each of two or more "
                f"dimensions; they have shapes {_shape(query)}, {_shape(key)}, {_shape(negatives)}")
    if query.shape != key.shape:
        return f"nce(q, k, Q, tau) compares each query with its own key, of one shape; q has shape {_shape(query)}, k {_shape(key)}"
    if n != q:
        return (f"nce(q, k, Q, tau) compares each query with every row of Q, so a row of Q has the query's "
                f"{q} values; Q has shape {_shape(negatives)}")
    if isinstance(tau, torch.Tensor) and tau.numel() != 1:
        return f"nce(q, k, Q, tau) takes one temperature tau, a number; it has shape {_shape(tau)}"
    return None


def _mi(p, p2, lamb) -> str | None:
    if not (isinstance(p, torch.Tensor) and isinstance(p2, torch.Tensor) and p.dim() == 2 and p.shape == p2.shape):
        return ("mi(p, p2) takes two batches of class probabilities of one shape (N, K), paired sample by sample; "
                f"they have shapes {_shape(p)} and {_shape(p2)}")
    if isinstance(lamb, torch.Tensor):
        return f"mi(p, p2, lamb) takes one number lamb, the marginals' weight; it has shape {_shape(lamb)}"
    return None


def _softmax(v) -> str | None:
    if not isinstance(v, torch.Tensor) or v.dim() < 2:
        return f"softmax(v) is taken over dimension 1, the classes, so v has shape (N, K, ...); it has shape {_shape(v)}"
    return None


def _elementwise(name: str) -> Callable[[Any, Any], str | None]:
    """`a - b` and the other arithmetic pair the elements of two values as PyTorch broadcasts them;
    where the shapes do not broadcast the message shows both and what usually went wrong, rather
    than torch's words about a dimension at index -1."""
    def rule(a: Any, b: Any) -> str | None:
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return None
        try:
            torch.broadcast_shapes(a.shape, b.shape)
        except RuntimeError:
            return (f"the two sides of '{name}' do not fit: shapes {_shape(a)} and {_shape(b)} do not broadcast "
                    f"(elementwise arithmetic needs equal sizes, or 1, in each trailing dimension; compare values of "
                    f"one kind, an image with an image, or reduce first: l1(a), E[a])")
        return None
    return rule


SHAPE_RULES: dict[Ops, Callable[..., str | None]] = {
    Ops.NCE: _nce, Ops.MI: _mi, Ops.SOFTMAX: _softmax,
    Ops.ADD: _elementwise("+"), Ops.SUB: _elementwise("-"), Ops.MUL: _elementwise("*"), Ops.DIV: _elementwise("/"),
    Ops.POW: _elementwise("^"),
}


def shape_problem(op: Ops, args: Sequence[Any]) -> str | None:
    rule = SHAPE_RULES.get(op)
    return rule(*args) if rule is not None else None
