"""Domains: what kind of value each node is, and which numbers it can take. Rules as data.

Every value has a *kind* (a label of K classes, an image, or another real value) and a *range*,
an interval of the reals with open or closed ends. Leaves get theirs from the spec: images lie
in [-1, 1], `label(K)` is a label, a probability network's output lies in (0, 1), a raw one is
any real (a registered arch may declare its outputs' range, e.g. a tanh generator's [-1, 1]).
Every op then has one row in `DOMAIN_RULES`, beside the op table: what its arguments must be
(`log` a positive one, `ce` a label target) and the range of its result (`sigmoid` in (0, 1),
`exp` and `softplus` positive, `abs`, squares, `l1`, `l2sq` non-negative; sums and products by
interval arithmetic).

Ranges are intervals, so the analysis never sees that `v - v` is 0; it is sound (a value always
lies in its range) and may be loose, which is why it only refuses what is *possibly* wrong for
every value a declared input allows: `log(D_Y(y))` with a raw D_Y can take the log of a
negative number. Forms that are sound stay valid: `log(sigmoid(v))`, `log(1 + v^2)`,
`sqrt(l2sq(a - b) + 1e-8)`, `log(exp(v) + 1)`, hinge losses.

`hazards` reads the same rules on the objective as it will run (after the stable rewrites) for
what can still overflow or lose its gradient in float32 (an `exp` of an unbounded value, a `log`
or a divisor that can come arbitrarily close to 0, a `sqrt` at 0): the likely cause a run names
when a loss stops being finite.

This module does not import torch.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

from lossgraph.compiler.ops import Ops

INF = math.inf


@dataclass(frozen=True)
class Range:
    """An interval of the reals: [low, high], each end open or closed (infinite ends are open)."""

    low: float = -INF
    high: float = INF
    low_open: bool = True
    high_open: bool = True

    def __post_init__(self):
        if math.isinf(self.low):
            object.__setattr__(self, "low_open", True)
        if math.isinf(self.high):
            object.__setattr__(self, "high_open", True)

    @classmethod
    def point(cls, value: float) -> "Range":
        return cls(value, value, False, False)

    def contains(self, value: float) -> bool:
        above = self.low < value or (self.low == value and not self.low_open)
        below = value < self.high or (value == self.high and not self.high_open)
        return above and below

    @property
    def positive(self) -> bool:
        return self.low > 0 or (self.low == 0 and self.low_open)

    @property
    def nonnegative(self) -> bool:
        return self.low >= 0

    @property
    def nonzero(self) -> bool:
        return not self.contains(0.0)

    @property
    def bounded_above(self) -> bool:
        return not math.isinf(self.high)

    def near_zero(self) -> bool:
        """Values come arbitrarily close to 0 without reaching it: (0, ...) or (..., 0)."""
        return (self.low == 0 and self.low_open) or (self.high == 0 and self.high_open)

    def describe(self) -> str:
        if math.isinf(self.low) and math.isinf(self.high):
            return "any real number"
        low = "(" if self.low_open else "["
        high = ")" if self.high_open else "]"
        return f"in {low}{_number(self.low)}, {_number(self.high)}{high}"


ANY = Range()
UNIT = Range(0.0, 1.0)                         # a probability
POSITIVE = Range(0.0, INF)
NONNEGATIVE = Range(0.0, INF, low_open=False)
IMAGE = Range(-1.0, 1.0, False, False)          # docs/methods.md: images lie in [-1, 1]


def _number(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


# -- interval arithmetic ---------------------------------------------------------------------


def _bound(values: Sequence[tuple[float, bool]], pick: Callable) -> tuple[float, bool]:
    """The lowest (`min`) or highest (`max`) end among candidates (value, open): attained (closed)
    if any candidate reaching it is closed."""
    best = pick(value for value, _ in values)
    return best, all(is_open for value, is_open in values if value == best)


def _make(lows: Sequence[tuple[float, bool]], highs: Sequence[tuple[float, bool]]) -> Range:
    low, low_open = _bound(lows, min)
    high, high_open = _bound(highs, max)
    return Range(low, high, low_open, high_open)


def add(a: Range, b: Range) -> Range:
    return Range(_sum(a.low, b.low), _sum(a.high, b.high), a.low_open or b.low_open, a.high_open or b.high_open)


def _sum(x: float, y: float) -> float:
    return x + y if not (math.isinf(x) and math.isinf(y) and x != y) else -INF if x < 0 else INF


def neg(a: Range) -> Range:
    return Range(-a.high, -a.low, a.high_open, a.low_open)


def sub(a: Range, b: Range) -> Range:
    return add(a, neg(b))


def _times(x: float, y: float) -> float:
    # an end of 0 against an infinite end: the values near them multiply to values near 0
    return 0.0 if x == 0 or y == 0 else x * y


def mul(a: Range, b: Range) -> Range:
    zero = Range.point(0.0)
    if a == zero or b == zero:
        return zero
    ends = [(_times(x, y), x_open or y_open)
            for x, x_open in ((a.low, a.low_open), (a.high, a.high_open))
            for y, y_open in ((b.low, b.low_open), (b.high, b.high_open))]
    return _make(ends, ends)


def reciprocal(a: Range) -> Range:
    """1 / a for an `a` that excludes 0 (on one side of it)."""

    positive = a.low >= 0

    def inverse(value: float, is_open: bool, nearer_zero: bool) -> tuple[float, bool]:
        if value == 0:
            return (INF if positive else -INF), True
        if math.isinf(value):
            return 0.0, True
        inverse = 1.0 / value
        if math.isinf(inverse):
            # a subnormal value: its true reciprocal lies beyond the largest float. The end of `a`
            # nearer 0 bounds the reciprocal's outer side (unbounded, open); the other end bounds
            # its inner side, and the largest float is a bound on that side that holds.
            return (math.copysign(INF, value), True) if nearer_zero else (math.copysign(sys.float_info.max, value), is_open)
        return inverse, is_open

    ends = [inverse(a.low, a.low_open, positive), inverse(a.high, a.high_open, not positive)]
    return _make(ends, ends)


def div(a: Range, b: Range) -> Range:
    return mul(a, reciprocal(b)) if b.nonzero else ANY


def monotone(function: Callable[[float], float], low: float = -INF, high: float = INF) -> Callable[[Range], Range]:
    """The image of an increasing function, whose limits at -inf and inf are `low` and `high`."""

    def at(value: float) -> float:
        if value == -INF:
            return low
        if value == INF:
            return high
        try:
            return function(value)
        except OverflowError:
            return INF
        except (ValueError, ZeroDivisionError):
            return low

    return lambda a: Range(at(a.low), at(a.high), a.low_open, a.high_open)


def absolute(a: Range) -> Range:
    if a.nonnegative:
        return a
    if a.high <= 0:
        return neg(a)
    top = max(-a.low, a.high)
    top_open = (a.low_open if -a.low == top else True) and (a.high_open if a.high == top else True)
    return Range(0.0, top, False, top_open)


def power(a: Range, b: Range) -> Range:
    exponent = b.low if b.low == b.high else None
    if exponent is None:
        return POSITIVE if a.positive else ANY  # a^b = exp(b log a)
    if exponent == 0:
        return Range.point(1.0)
    if float(exponent).is_integer():
        if exponent < 0:
            return power(reciprocal(a), Range.point(-exponent)) if a.nonzero else ANY
        if exponent % 2 == 0:
            return power(absolute(a), b) if not a.nonnegative else monotone(lambda v: v ** exponent, 0.0, INF)(a)
        return monotone(lambda v: v ** exponent, -INF, INF)(a)
    if exponent > 0:
        return monotone(lambda v: v ** exponent, 0.0, INF)(a) if a.nonnegative else ANY
    return reciprocal(monotone(lambda v: v ** -exponent, 0.0, INF)(a)) if a.positive else ANY


def hull(a: Range, b: Range) -> Range:
    """The smallest interval holding both: where a point between a value of each can lie."""
    return _make([(a.low, a.low_open), (b.low, b.low_open)], [(a.high, a.high_open), (b.high, b.high_open)])


def relu(a: Range) -> Range:
    if a.nonnegative:
        return a
    return Range(0.0, max(a.high, 0.0), False, a.high_open if a.high > 0 else False)


def _sigmoid(value: float) -> float:
    return 1 / (1 + math.exp(-value)) if value > -700 else 0.0


def _softplus(value: float) -> float:
    return value + math.log1p(math.exp(-value)) if value > 0 else math.log1p(math.exp(value))


# -- what arguments must be ------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """A condition on an argument's range, with the words for it."""

    name: str                            # "a positive", "a non-negative", "a non-zero"
    holds: Callable[[Range], bool]


NEED_POSITIVE = Need("a positive", lambda r: r.positive)
NEED_NONNEGATIVE = Need("a non-negative", lambda r: r.nonnegative)
NEED_NONZERO = Need("a non-zero", lambda r: r.nonzero)


def _power_needs(exponent: Range) -> Need | None:
    """x ^ c: a fractional c needs x >= 0 (x > 0 when c < 0), a negative integer c needs x != 0."""
    if exponent.low != exponent.high:
        return NEED_POSITIVE
    c = exponent.low
    if float(c).is_integer():
        return NEED_NONZERO if c < 0 else None
    return NEED_POSITIVE if c < 0 else NEED_NONNEGATIVE


# -- the rules ---------------------------------------------------------------------------------

# Kinds of argument: REAL is any real-valued tensor (an image, a vector, a map, a number);
# LABEL an integer class label; ANY_KIND either (a network's inputs, roll, stop_gradient).
REAL, LABEL, ANY_KIND = "real", "label", "any"


@dataclass(frozen=True)
class DomainRule:
    """One op: the kind each argument must have, what its range must satisfy, its result."""

    kinds: tuple[str, ...] | str          # per argument, or one kind for every argument
    result: Callable[..., Range]          # argument ranges -> the result's range
    needs: tuple[Need | None, ...] = ()   # per argument: what its values must be
    gives_label: bool = False             # the result is a label (argmax)
    keeps_kind: bool = False              # the result has its argument's kind (roll, stop_gradient)


DOMAIN_RULES: dict[Ops, DomainRule] = {
    Ops.ADD: DomainRule(REAL, add),
    Ops.SUB: DomainRule(REAL, sub),
    Ops.MUL: DomainRule(REAL, mul),
    Ops.DIV: DomainRule(REAL, div, (None, NEED_NONZERO)),
    Ops.POW: DomainRule(REAL, power),                    # needs: `_power_needs` of the exponent
    Ops.NEG: DomainRule(REAL, neg),
    Ops.LOG: DomainRule(REAL, monotone(math.log, -INF, INF), (NEED_POSITIVE,)),
    Ops.EXP: DomainRule(REAL, monotone(math.exp, 0.0, INF)),        # (0, inf)
    Ops.SQRT: DomainRule(REAL, monotone(math.sqrt, 0.0, INF), (NEED_NONNEGATIVE,)),
    Ops.ABS: DomainRule(REAL, absolute),                            # [0, inf)
    Ops.SIGMOID: DomainRule(REAL, monotone(_sigmoid, 0.0, 1.0)),    # (0, 1)
    Ops.SOFTPLUS: DomainRule(REAL, monotone(_softplus, 0.0, INF)),  # (0, inf)
    Ops.TANH: DomainRule(REAL, monotone(math.tanh, -1.0, 1.0)),     # (-1, 1)
    Ops.RELU: DomainRule(REAL, relu),                               # [0, inf)
    Ops.STOP_GRADIENT: DomainRule(ANY_KIND, lambda a: a, keeps_kind=True),
    Ops.ROLL: DomainRule(ANY_KIND, lambda a: a, keeps_kind=True),
    Ops.MEAN: DomainRule(REAL, lambda a: a),                        # a mean lies among its values
    Ops.L1: DomainRule(REAL, absolute),                             # a mean of |v|
    Ops.L2SQ: DomainRule(REAL, lambda a: power(a, Range.point(2.0))),
    Ops.CE: DomainRule((REAL, LABEL), lambda logits, c: NONNEGATIVE),
    Ops.KL: DomainRule((REAL, REAL), lambda mu, logvar: NONNEGATIVE),
    Ops.NORM: DomainRule(REAL, lambda a: NONNEGATIVE),               # a sum over the sample: unbounded
    Ops.LEAF: DomainRule(ANY_KIND, lambda a: a, keeps_kind=True),   # the value itself, cut
    Ops.GRAD: DomainRule((REAL, REAL), lambda out, v: ANY),
    Ops.INTERPOLATE: DomainRule(REAL, hull),                        # between its two arguments
    Ops.PICK: DomainRule((REAL, LABEL), lambda v, c: v),            # one of v's values
    Ops.SOFTMAX: DomainRule(REAL, lambda v: Range(0.0, 1.0, True, True)),  # (0, 1), though float32 rounds to 0 and 1
    Ops.NCE: DomainRule(REAL, lambda q, k, negatives, tau: NONNEGATIVE, (None, None, None, NEED_POSITIVE)),  # a cross-entropy
    Ops.MI: DomainRule(REAL, lambda p, p2, lamb: ANY, (NEED_NONNEGATIVE, NEED_NONNEGATIVE, NEED_POSITIVE)),  # >= 0 at lamb 1 but for the clamps
    Ops.ARGMAX: DomainRule((REAL,), lambda a: Range(0.0, INF, False, True), gives_label=True),
    Ops.EQ: DomainRule((LABEL, LABEL), lambda a, b: Range(0.0, 1.0, False, False)),
}


@dataclass(frozen=True)
class Domain:
    kind: str            # "label" or "real"
    range: Range
    classes: int = 0     # a label's class count (0: known only when the data opens)
    image: bool = False  # a declared image, or a generator's output (for messages)


def needs_of(op: Ops, ranges: Sequence[Range]) -> tuple[Need | None, ...]:
    if op is Ops.POW:
        return (_power_needs(ranges[1]), None)
    return DOMAIN_RULES[op].needs


def result_domain(op: Ops, args: Sequence[Domain]) -> Domain:
    """The domain of an op's result from its arguments' (assumed to satisfy the op's needs)."""
    rule = DOMAIN_RULES[op]
    if rule.keeps_kind:
        return args[0]
    value = rule.result(*(arg.range for arg in args))
    return Domain(LABEL if rule.gives_label else REAL, value)


def expected_kinds(op: Ops, count: int) -> tuple[str, ...]:
    kinds = DOMAIN_RULES[op].kinds
    return (kinds,) * count if isinstance(kinds, str) else kinds


def hazard_of(op: Ops, ranges: Sequence[Range]) -> str | None:
    """Why this op can overflow or lose its gradient in float32 on arguments in `ranges`."""
    if op is Ops.EXP and ranges[0].high > 88:
        return "overflows float32 (to inf) once its argument exceeds 88"
    if op is Ops.KL and ranges[1].high > 88:
        return "takes exp of its log-variance, which overflows float32 once that exceeds 88"
    if op is Ops.LOG and ranges[0].near_zero():
        return "is -inf where its argument rounds to 0 in float32"
    if op is Ops.DIV and ranges[1].near_zero():
        return "overflows where its divisor comes close to 0"
    if op is Ops.SQRT and ranges[0].low == 0 and not ranges[0].low_open:
        return "has an infinite gradient where its argument is 0 (NaN in the backward pass)"
    if op is Ops.POW and ranges[1].low == ranges[1].high and 0 < ranges[1].low < 1 and ranges[0].low == 0:
        return "has an infinite gradient where its base is 0 (NaN in the backward pass)"
    return None
