"""The expression IR: immutable, interned nodes.

An `Expr` is `(op, args, arg)`: an `Ops` member, a tuple of child `Expr`, and one hashable
attribute (a constant's value, a variable's or network's name, a head's name and index).
Building a node that already exists returns the existing object, so structural equality is
identity and common subexpressions are merged by construction: `D_Y(G_XY(x))` written in two
losses is one node.

Invariants:
- nodes are never mutated; `replace` builds a new node;
- nothing but structure lives on a node. Origins (file:line:col), display names and analysis
  results are side tables keyed by node, owned by whoever needs them;
- two random draws are never merged: a random node's `arg` carries the draw's unique name.

This module does not import torch, sympy or networkx.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Iterator

from lossgraph.compiler.ops import OPS, Ops


class Expr:
    __slots__ = ("op", "args", "arg", "__weakref__")

    _interned: "weakref.WeakValueDictionary[tuple, Expr]" = weakref.WeakValueDictionary()

    op: Ops
    args: tuple["Expr", ...]
    arg: Any

    def __new__(cls, op: Ops, args: tuple["Expr", ...] = (), arg: Any = None) -> "Expr":
        key = (op, args, arg)
        node = cls._interned.get(key)
        if node is None:
            node = object.__new__(cls)
            object.__setattr__(node, "op", op)
            object.__setattr__(node, "args", args)
            object.__setattr__(node, "arg", arg)
            cls._interned[key] = node
        return node

    @classmethod
    def make(cls, op: Ops, *args: "Expr", arg: Any = None) -> "Expr":
        definition = OPS[op]
        if definition.arity is not None and len(args) != definition.arity:
            raise ValueError(f"{op.name} takes {definition.arity} arguments, got {len(args)}")
        return cls(op, tuple(args), arg)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Expr nodes are immutable; use replace()")

    def __reduce__(self):  # pickling re-interns
        return (Expr, (self.op, self.args, self.arg))

    def replace(self, *, op: Ops | None = None, args: tuple["Expr", ...] | None = None, arg: Any = ...) -> "Expr":
        return Expr(self.op if op is None else op, self.args if args is None else args, self.arg if arg is ... else arg)

    # -- traversal ------------------------------------------------------------------------------

    def walk(self) -> Iterator["Expr"]:
        """Every distinct node reachable from here, children before parents (a topological order)."""
        seen: set[int] = set()
        stack: list[tuple[Expr, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in seen:
                continue
            if expanded:
                seen.add(id(node))
                yield node
                continue
            stack.append((node, True))
            for child in reversed(node.args):
                if id(child) not in seen:
                    stack.append((child, False))

    def __repr__(self) -> str:
        return f"Expr({self.op.name}, {self.arg!r}, {len(self.args)} args)" if self.args else f"Expr({self.op.name}, {self.arg!r})"

    def __str__(self) -> str:
        from lossgraph.compiler.printing import formula_text

        return formula_text(self)


def const(value: float) -> Expr:
    return Expr(Ops.CONST, (), float(value))


def substitute(root: Expr, mapping: dict[Expr, Expr]) -> Expr:
    """`root` with every occurrence of a key of `mapping` replaced by its value."""
    return transform(root, lambda node: mapping.get(node))


def transform(root: Expr, rule: Callable[[Expr], Expr | None]) -> Expr:
    """Rebuild `root` bottom-up; `rule(node)` may return a replacement (already rebuilt children)."""
    done: dict[Expr, Expr] = {}
    for node in root.walk():
        args = tuple(done[child] for child in node.args)
        rebuilt = node if args == node.args else node.replace(args=args)
        replacement = rule(rebuilt)
        done[node] = rebuilt if replacement is None else replacement
    return done[root]
