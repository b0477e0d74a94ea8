"""Every rewrite rule is proved twice: symbolically with sympy, and numerically with torch,
including that the right-hand side stays finite where the left overflows (logits of +-100)."""

import pytest
import sympy as sp
import torch

from lossgraph.compiler.graph import to_sympy
from lossgraph.compiler.interpret import interpret
from lossgraph.compiler.ops import Ops
from lossgraph.compiler.rewrite import ALGEBRA_RULES, STABLE_LOG_RULES, rewrite, rule

ALL_RULES = list(STABLE_LOG_RULES + ALGEBRA_RULES)


def variables(rule_):
    return sorted({n.arg for n in rule_.lhs.walk() if n.op is Ops.DATA})


def without_expectation(expr):
    """E of a single sample is the sample itself, and l1 and l2sq of a one-element sample are |v|
    and v²: enough to prove the pointwise part (the per-sample means are proved numerically on
    image-shaped batches below)."""
    pointwise = {"E": lambda v: v, "l1": sp.Abs, "l2sq": lambda v: v ** 2}
    return expr.replace(lambda e: isinstance(e, sp.Function) and e.func.__name__ in pointwise,
                        lambda e: pointwise[e.func.__name__](e.args[0]))


@pytest.mark.parametrize("rule_", ALL_RULES, ids=lambda r: r.text)
def test_rule_is_an_identity_symbolically(rule_):
    real = {sp.Symbol(v): sp.Symbol(v, real=True) for v in variables(rule_)}
    lhs = without_expectation(to_sympy(rule_.lhs)).subs(real)
    rhs = without_expectation(to_sympy(rule_.rhs)).subs(real)
    difference = sp.simplify(sp.expand_log(lhs - rhs, force=True))
    assert difference == 0, f"{rule_.text}: lhs - rhs = {difference}"


@pytest.mark.parametrize("rule_", ALL_RULES, ids=lambda r: r.text)
def test_rule_is_an_identity_numerically(rule_):
    generator = torch.Generator().manual_seed(0)
    inputs = {v: torch.randn(64, generator=generator, dtype=torch.float64) * 3 for v in variables(rule_)}
    lhs = interpret([rule_.lhs], {}, inputs)[rule_.lhs]
    rhs = interpret([rule_.rhs], {}, inputs)[rule_.rhs]
    torch.testing.assert_close(torch.as_tensor(rhs, dtype=torch.float64), torch.as_tensor(lhs, dtype=torch.float64), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("rule_", list(STABLE_LOG_RULES), ids=lambda r: r.text)
def test_stable_rule_is_finite_at_extreme_logits(rule_):
    extreme = torch.tensor([-100.0, -30.0, 0.0, 30.0, 100.0])  # float32, as training runs
    inputs = {v: extreme for v in variables(rule_)}
    rhs = interpret([rule_.rhs], {}, inputs)[rule_.rhs]
    assert torch.isfinite(rhs).all(), f"{rule_.text} gives {rhs}"
    # the exact value, from the left-hand side evaluated with 50 significant digits
    import mpmath

    names = variables(rule_)
    exact_fn = sp.lambdify([sp.Symbol(v) for v in names], without_expectation(to_sympy(rule_.lhs)), "mpmath")
    with mpmath.workdps(50):
        exact = torch.tensor([float(exact_fn(*[mpmath.mpf(float(value))] * len(names))) for value in extreme], dtype=torch.float64)
    torch.testing.assert_close(rhs.double(), exact, rtol=1e-6, atol=1e-6)


def test_naive_forms_do_overflow_in_float32():
    """The reason for the rules: without them float32 gives -inf at logits of +-100."""
    logits = torch.tensor([-100.0, 100.0])
    assert torch.isinf(torch.log(torch.sigmoid(logits))).any()
    assert torch.isinf(torch.log(1 - torch.sigmoid(logits))).any()


def test_rules_record_where_they_are_defined():
    for rule_ in ALL_RULES:
        assert rule_.where.startswith("rewrite.py:")


def test_rewrite_reaches_a_fixpoint_and_is_idempotent():
    log_d = rule("log(sigmoid(l))", "l").lhs  # only to build a pattern-free expression below
    del log_d
    from lossgraph.compiler.expr import Expr

    logits = Expr(Ops.DATA, (), "logits")
    expr = Expr.make(Ops.MEAN, Expr.make(Ops.LOG, Expr.make(Ops.SUB, Expr(Ops.CONST, (), 1.0), Expr.make(Ops.SIGMOID, logits))))
    once = rewrite(expr, STABLE_LOG_RULES + ALGEBRA_RULES)
    assert str(once) == "-E[softplus(logits)]"
    assert rewrite(once, STABLE_LOG_RULES + ALGEBRA_RULES) is once


def test_rule_with_unbound_right_variable_is_refused():
    with pytest.raises(ValueError, match="only on the right"):
        rule("log(a)", "b")


@pytest.mark.parametrize("rule_", [r for r in ALL_RULES if "l1" in r.text or "l2sq" in r.text], ids=lambda r: r.text)
def test_mean_of_per_sample_means_is_the_mean_on_image_batches(rule_):
    generator = torch.Generator().manual_seed(1)
    inputs = {v: torch.randn(8, 3, 5, 7, generator=generator, dtype=torch.float64) for v in variables(rule_)}
    lhs = interpret([rule_.lhs], {}, inputs)[rule_.lhs]
    rhs = interpret([rule_.rhs], {}, inputs)[rule_.rhs]
    assert lhs.dim() == 0
    torch.testing.assert_close(rhs, lhs, rtol=1e-12, atol=1e-12)
