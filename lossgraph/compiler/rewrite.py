"""Rewrite rules as data, written in the formula language itself.

A rule is one line, `rule("log(sigmoid(l))", "-softplus(-l)")`, with the identity it relies on as
a trailing comment. Both sides are parsed by `formula.parse` with every free name a pattern
variable, so the rule reads exactly as the maths does. Each rule remembers the file and line
that defined it, so `lossgraph check --explain` can say which rule fired and where.

Rule sets, combined with `+`:
- `STABLE_LOG_RULES`: logs of sigmoids and exponentials computed without overflow or log(0).
  They are unconditional identities, never cost heuristics (each is proved symbolically and
  numerically in tests/ir/test_rewrite.py, including finiteness at logits of +-100).
- `ALGEBRA_RULES`: identities that tidy what lowering and the stable rules leave behind
  (`--a -> a`, `a + -b -> a - b`, linearity of E over negation).

`rewrite(expr, rules)` applies rules bottom-up until nothing changes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from lossgraph.compiler.expr import Expr, transform
from lossgraph.compiler.formula import Site, parse
from lossgraph.compiler.ops import Ops

MAX_ROUNDS = 50


class _PatternScope:
    """Every free name in a rule is a pattern variable; only builtins can be called."""

    def __init__(self) -> None:
        self.variables: set[str] = set()

    def name(self, name: str, where: Site, span: tuple[int, int]) -> Expr:
        self.variables.add(name)
        return Expr(Ops.DATA, (), f"?{name}")

    def call(self, name, head, args, where, span):
        return None

    def callables(self) -> list[str]:
        return []


@dataclass(frozen=True)
class Rule:
    lhs: Expr
    rhs: Expr
    text: str
    where: str  # file:line that defined the rule

    def match(self, node: Expr) -> dict[Expr, Expr] | None:
        bindings: dict[Expr, Expr] = {}
        return bindings if _match(self.lhs, node, bindings) else None

    def apply(self, node: Expr) -> Expr | None:
        bindings = self.match(node)
        if bindings is None:
            return None
        return transform(self.rhs, lambda n: bindings.get(n))


def _is_variable(pattern: Expr) -> bool:
    return pattern.op is Ops.DATA and str(pattern.arg).startswith("?")


def _match(pattern: Expr, node: Expr, bindings: dict[Expr, Expr]) -> bool:
    if _is_variable(pattern):
        bound = bindings.get(pattern)
        if bound is None:
            bindings[pattern] = node
            return True
        return bound is node
    if pattern.op is not node.op or pattern.arg != node.arg or len(pattern.args) != len(node.args):
        return False
    return all(_match(p, n, bindings) for p, n in zip(pattern.args, node.args))


def rule(lhs: str, rhs: str) -> Rule:
    caller = sys._getframe(1)
    where = f"{caller.f_code.co_filename.rsplit('/', 1)[-1]}:{caller.f_lineno}"
    left_scope = _PatternScope()
    left = parse(lhs, left_scope, Site(lhs))
    right_scope = _PatternScope()
    right = parse(rhs, right_scope, Site(rhs))
    unbound = right_scope.variables - left_scope.variables
    if unbound:
        raise ValueError(f"rule {lhs} -> {rhs}: {sorted(unbound)} appear only on the right")
    return Rule(left, right, f"{lhs} -> {rhs}", where)


class RuleSet(tuple):
    def __add__(self, other: "RuleSet") -> "RuleSet":  # type: ignore[override]
        return RuleSet(tuple(self) + tuple(other))


def rules(*items: Rule) -> RuleSet:
    return RuleSet(items)


STABLE_LOG_RULES = rules(
    rule("log(sigmoid(l))", "-softplus(-l)"),         # log σ(l) = -log(1 + e^-l)
    rule("log(1 - sigmoid(l))", "-softplus(l)"),      # log(1 - σ(l)) = log σ(-l) = -log(1 + e^l)
    rule("log(exp(a))", "a"),                         # log e^a = a
    rule("log(1 + exp(a))", "softplus(a)"),           # log(1 + e^a) = softplus(a)
)

ALGEBRA_RULES = rules(
    rule("--a", "a"),                                 # -(-a) = a
    rule("a + -b", "a - b"),                          # a + (-b) = a - b
    rule("a - -b", "a + b"),                          # a - (-b) = a + b
    rule("E[-a]", "-E[a]"),                           # E is linear
    rule("-a + b", "b - a"),                          # -a + b = b - a
    rule("1 * a", "a"),                               # 1a = a
    rule("a * 1", "a"),                               # a1 = a
    rule("a ^ 1", "a"),                               # a¹ = a
    rule("E[l1(a)]", "E[abs(a)]"),                    # the mean of per-sample means of |a| (samples of one size) is the mean of |a|
    rule("E[l2sq(a)]", "E[a ^ 2]"),                   # likewise for a²
)


@dataclass(frozen=True)
class Fired:
    rule: Rule
    node: Expr  # the node it replaced


def rewrite_once(rule_set: RuleSet, fired: list[Fired] | None = None):
    """A node rule for `transform`: the first rule of `rule_set` that matches, or None."""

    def step(node: Expr) -> Expr | None:
        for candidate in rule_set:
            replacement = candidate.apply(node)
            if replacement is not None and replacement is not node:
                if fired is not None:
                    fired.append(Fired(candidate, node))
                return replacement
        return None

    return step


def rewrite(expr: Expr, rule_set: RuleSet, fired: list[Fired] | None = None) -> Expr:
    """`expr` with `rule_set` applied bottom-up until nothing changes."""
    step = rewrite_once(rule_set, fired)
    for _ in range(MAX_ROUNDS):
        rewritten = transform(expr, step)
        if rewritten is expr:
            return expr
        expr = rewritten
    return expr
