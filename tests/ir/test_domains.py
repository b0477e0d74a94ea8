"""The domain rules (domains.py) and the check that reads them (passes/domains.py).

- Soundness, by property: for every op with a range rule, values drawn from the argument ranges
  give results inside the computed range.
- The check refuses what is possibly wrong, located and with the fix spelled out (the mistakes
  that passed `check` before are regression tests here), and accepts every shipped spec, every
  standard macro and the sound forms a researcher writes.

No torch here: specs are lowered to IR and checked without compiling.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import lossgraph
from lossgraph.compiler.domains import (
    ANY,
    DOMAIN_RULES,
    IMAGE,
    LABEL,
    UNIT,
    Domain,
    Range,
    REAL,
    absolute,
    add,
    div,
    hazard_of,
    mul,
    needs_of,
    power,
    result_domain,
    sub,
)
from lossgraph.language.errors import SpecError
from lossgraph.language.macros import standard_library
from lossgraph.compiler.ops import Ops
from lossgraph.compiler.passes.domains import check_domains, hazards
from lossgraph.compiler.passes.lower import lower

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(path for path in (ROOT / "specs").glob("*.yaml") if path.stem != "stdlib")

# -- soundness of the range rules -------------------------------------------------------------

ENDS = st.one_of(st.floats(-50, 50, allow_nan=False), st.just(-math.inf), st.just(math.inf), st.sampled_from([-1.0, 0.0, 1.0]))


@st.composite
def ranges(draw):
    low, high = sorted((draw(ENDS), draw(ENDS)))
    assume(low < high or (low == high and math.isfinite(low)))
    low_open = draw(st.booleans()) if math.isfinite(low) and low < high else math.isinf(low)
    high_open = draw(st.booleans()) if math.isfinite(high) and low < high else math.isinf(high)
    return Range(low, high, low_open, high_open)


@st.composite
def points(draw, value: Range):
    """A number inside `value` (finite; near an infinite end: large)."""
    low = value.low if math.isfinite(value.low) else -1e6
    high = value.high if math.isfinite(value.high) else 1e6
    low, high = min(low, high), max(low, high)
    x = draw(st.floats(low, high, allow_nan=False))
    assume(value.contains(x))
    return x


def _sigmoid(v):
    return 1 / (1 + math.exp(-v)) if v > -700 else 0.0


UNARY = {
    Ops.NEG: lambda a: -a,
    Ops.LOG: math.log,
    Ops.EXP: math.exp,
    Ops.SQRT: math.sqrt,
    Ops.ABS: abs,
    Ops.SIGMOID: _sigmoid,
    Ops.SOFTPLUS: lambda a: math.log1p(math.exp(-abs(a))) + max(a, 0.0),
    Ops.TANH: math.tanh,
    Ops.RELU: lambda a: max(a, 0.0),
    Ops.L1: abs,
    Ops.L2SQ: lambda a: a * a,
    Ops.MEAN: lambda a: a,
    Ops.NORM: abs,         # of one element; more elements only add
    Ops.LEAF: lambda a: a,
}
BINARY = {Ops.ADD: lambda a, b: a + b, Ops.SUB: lambda a, b: a - b, Ops.MUL: lambda a, b: a * b, Ops.DIV: lambda a, b: a / b,
          Ops.INTERPOLATE: lambda a, b: 0.37 * a + 0.63 * b}  # a point between the two


def _inside(value: float, expected: Range) -> bool:
    """`value` in `expected`, allowing float rounding at a finite end (open ends are limits)."""
    if math.isinf(value) or math.isnan(value):
        return False
    slack = 1e-9 * max(1.0, abs(value))
    return expected.low - slack <= value <= expected.high + slack


@pytest.mark.parametrize("op", sorted(UNARY, key=lambda op: op.name), ids=lambda op: op.name)
# most ranges drawn are refused by log's and sqrt's needs (filtered by `assume`), by design
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_unary_rules_are_sound(op, data):
    value = data.draw(ranges())
    needs = needs_of(op, [value])
    assume(not needs or needs[0] is None or needs[0].holds(value))
    x = data.draw(points(value))
    try:
        result = UNARY[op](x)
    except OverflowError:
        assert result_domain(op, [Domain(REAL, value)]).range.high == math.inf
        return
    assume(math.isfinite(result))
    assert _inside(result, result_domain(op, [Domain(REAL, value)]).range), (op, value, x, result)


@pytest.mark.parametrize("op", sorted(BINARY, key=lambda op: op.name), ids=lambda op: op.name)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_binary_rules_are_sound(op, data):
    first, second = data.draw(ranges()), data.draw(ranges())
    needs = needs_of(op, [first, second])
    assume(all(need is None or need.holds(value) for need, value in zip(needs, (first, second))))
    a, b = data.draw(points(first)), data.draw(points(second))
    result = BINARY[op](a, b)
    assume(math.isfinite(result))
    assert _inside(result, result_domain(op, [Domain(REAL, first), Domain(REAL, second)]).range), (first, second, a, b)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), exponent=st.sampled_from([2.0, 3.0, -1.0, -2.0, 0.5, 1.5, -0.5, 0.0, 1.0]))
def test_power_rule_is_sound(data, exponent):
    base = data.draw(ranges())
    need = needs_of(Ops.POW, [base, Range.point(exponent)])[0]
    assume(need is None or need.holds(base))
    x = data.draw(points(base))
    try:
        result = x ** exponent
    except (OverflowError, ZeroDivisionError):
        return
    assume(isinstance(result, float) and math.isfinite(result))
    assert _inside(result, power(base, Range.point(exponent))), (base, x, exponent, result)


@pytest.mark.parametrize("tiny", [2.225073858507203e-309, 5e-324, -2.225073858507203e-309])
def test_a_subnormal_divisor(tiny):
    """1/tiny is beyond the largest float: the quotient's range must still hold tiny / tiny = 1
    (it once came out as the point 0.4, the largest float times tiny)."""
    point = Range.point(tiny)
    assert div(point, point).contains(1.0)
    assert div(Range.point(1.0), Range(tiny, 1.0, False, False)).contains(1.0 / 1e-300)


def test_every_op_with_a_lowering_has_a_rule():
    from lossgraph.compiler.ops import OPS

    leaves = {Ops.CONST, Ops.DATA, Ops.RANDOM, Ops.WEIGHT, Ops.APPLY, Ops.HEAD, Ops.FROZEN}
    assert {op for op in OPS if op not in leaves} <= set(DOMAIN_RULES)


def test_pick_lies_where_its_outputs_do_and_a_gradient_anywhere():
    label = Domain(LABEL, Range(0.0, 3.0, False, False), classes=4)
    assert result_domain(Ops.PICK, [Domain(REAL, UNIT), label]).range == UNIT
    assert result_domain(Ops.GRAD, [Domain(REAL, UNIT), Domain(REAL, UNIT)]).range == ANY
    assert result_domain(Ops.NORM, [Domain(REAL, ANY)]).range.nonnegative


def test_the_ranges_the_issue_names():
    assert result_domain(Ops.SIGMOID, [Domain(REAL, ANY)]).range == UNIT
    assert result_domain(Ops.EXP, [Domain(REAL, ANY)]).range.positive
    assert result_domain(Ops.SOFTPLUS, [Domain(REAL, ANY)]).range.positive
    assert power(ANY, Range.point(2.0)).nonnegative and absolute(ANY).nonnegative
    assert add(power(ANY, Range.point(2.0)), Range.point(1.0)).positive        # 1 + v^2
    assert add(absolute(ANY), Range.point(1e-8)).positive                     # l2sq(a - b) + 1e-8
    assert sub(Range.point(1.0), UNIT).positive                               # 1 - D(x), D a probability
    assert mul(UNIT, UNIT) == UNIT
    assert not sub(Range.point(1.0), ANY).positive
    assert div(Range.point(1.0), Range(0.0, math.inf, False, True)) == ANY     # 1/v with v >= 0: v may be 0
    assert IMAGE.contains(-1.0) and IMAGE.contains(1.0) and not IMAGE.contains(1.5)


# -- the check on specs -----------------------------------------------------------------------


def check(spec: str, *overrides: str):
    return check_domains(lower(lossgraph.load(spec, list(overrides))))


def error(spec: str, *overrides: str) -> str:
    with pytest.raises(SpecError) as caught:
        check(spec, *overrides)
    return str(caught.value)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_shipped_spec_is_valid(spec):
    result = check(str(spec))
    assert result.changed is False


def test_log_of_a_raw_network_is_refused_with_the_fix():
    """The regression: this passed check, then stopped at step 1 advising a lower learning rate."""
    message = error("cyclegan", "players.G.minimize.adv=-E[log(D_Y(fake_y))]")
    assert message.startswith("<override 1>:1:27: players.G.minimize.adv: log needs a positive argument, but D_Y(fake_y) can be any real number")
    assert "(D_Y is declared output: raw: write log(sigmoid(D_Y(fake_y))) or declare it output: probability)" in message
    assert "^~~~~~~~~~~~~~~~" in message


def test_an_image_as_the_target_of_ce_is_refused():
    message = error("cyclegan", "players.G.minimize.adv=E[ce(G_YX(x), y)]")
    assert "<override 1>:1:26: players.G.minimize.adv: ce(logits, c) takes a label as its target c, but y is an image" in message
    assert "declare the target as label(K)" in message


@pytest.mark.parametrize("formula, expected", [
    ("E[log(1 - D_Y(fake_y))]", "write log(1 - sigmoid(D_Y(fake_y)))"),
    ("E[sqrt(D_Y(fake_y))]", "sqrt needs a non-negative argument, but D_Y(fake_y) can be any real number"),
    ("E[l1(fake_y) / l1(x - y)]", "a divisor must be non-zero, but l1(x - y) can be 0"),
    ("E[log(l1(fake_y - y))]", "add a small constant, e.g. log(l1(fake_y - y) + 1e-8)"),
    ("E[D_Y(fake_y) ^ 0.5]", "a power ^0.5 needs a non-negative base"),
    ("E[log(x)]", "log needs a positive argument, but x can be negative (its values are in [-1, 1])"),
])
def test_possibly_undefined_values_are_refused(formula, expected):
    assert expected in error("cyclegan", f"players.G.minimize.adv={formula}")


def test_labels_are_not_numbers():
    message = error("pixelda", "players.G.minimize.task=E[ce(T(x_s), c_s + 1)]")
    assert "c_s is a label (a class index), not a number: '+' cannot take it" in message
    assert "1 problem" not in message and "2 problems" not in message  # reported once, not again at ce
    assert "ce(logits, c) takes logits as its first argument, but c_s is a label" in error("pixelda", "players.G.minimize.task=E[ce(c_s, c_s)]")
    assert "argmax takes logits, but c_s is already a label" in error("pixelda", "evaluate.accuracy=E[argmax(c_s) == c_s]")
    assert "== compares labels, but x_s is an image" in error("pixelda", "evaluate.accuracy=E[x_s == c_s]")


def test_every_mistake_is_collected():
    message = error("cyclegan", "players.G.minimize.adv=E[log(D_Y(fake_y))]", "players.D.minimize.adv_X=E[sqrt(D_X(x))]")
    assert message.startswith("2 problems:")


@pytest.mark.parametrize("formula", [
    "E[log(sigmoid(D_Y(fake_y)))]",
    "E[log(1 + D_Y(fake_y)^2)]",
    "E[sqrt(l2sq(fake_y - y) + 1e-8)]",
    "E[log(exp(D_Y(fake_y)) + 1)]",
    "E[relu(1 - D_Y(y))] + E[relu(1 + D_Y(fake_y))]",        # hinge loss
    "E[log(softplus(D_Y(fake_y)))]",
    "E[1 / (1 + exp(-D_Y(fake_y)))]",
    "E[log(2 + fake_y)]",                                   # a tanh generator's output is in [-1, 1]
    "E[sqrt(abs(D_Y(fake_y)))]",
    "E[(D_Y(fake_y) - 1)^2]",
    "E[log(1 - sigmoid(D_Y(fake_y)) * sigmoid(D_X(fake_x)))]",
    "E[exp(D_Y(fake_y)) / (1 + exp(D_Y(fake_y)))]",
])
def test_sound_forms_stay_valid(formula):
    ranges = {"G_XY": (-1.0, 1.0), "G_YX": (-1.0, 1.0)}
    check_domains(lower(lossgraph.load("cyclegan", [f"players.G.minimize.adv={formula}"])), ranges)


def test_a_raw_network_may_declare_its_outputs_range():
    graph = lower(lossgraph.load("cyclegan", ["players.G.minimize.adv=E[log(2 + fake_y)]"]))
    with pytest.raises(SpecError):
        check_domains(graph)  # G_XY's outputs unknown: any real
    check_domains(graph, {"G_XY": (-1.0, 1.0)})


@pytest.mark.parametrize("name", sorted(standard_library()))
def test_every_standard_macro_is_valid(name):
    """Each macro used the way its comment says: on a probability D for nsgan, raw otherwise."""
    macro = standard_library()[name]
    arguments = {"D": "D_Y", "real": "y", "fake": "fake_y", "v": "y", "l": "D_Y(y)"}
    call = f"{name}({', '.join(arguments[param] for param in macro.params)})"
    output = "probability" if name.startswith("nsgan") else "raw"
    check("cyclegan", f"networks.D_Y.output={output}", f"players.G.minimize.adv={call}")


def test_hazards_name_what_can_overflow_in_the_running_objective():
    from lossgraph.compiler.passes.pipeline import run_pipeline

    _, running, _ = run_pipeline(lossgraph.load("cyclegan", ["players.G.minimize.adv=E[exp(D_Y(fake_y))]"]))
    found = hazards(running)
    assert found["G/adv"] == ["exp(D_Y(fake_y)) overflows float32 (to inf) once its argument exceeds 88 at <override 1>:1:26"]
    assert found["G/cycle"] == [] and found["D/adv_Y"] == []
    # the stable rewrites leave nothing to overflow in a log of a probability
    _, running, _ = run_pipeline(lossgraph.load("discogan"))
    assert not any(hazards(running).values())
    assert hazard_of(Ops.SQRT, [Range(0.0, math.inf, False, True)]) is not None
    assert hazard_of(Ops.SQRT, [Range(1e-8, math.inf, False, True)]) is None
