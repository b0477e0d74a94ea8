"""The op table: every operation of the IR defined once, in one row.

A row gives the op's arity, its spelling in formulas (a builtin name or an infix symbol), whether
it is pure (random draws are not), how it lowers to PyTorch source, its sympy form (for `show` and
for proving rewrite rules) and a one-line meaning. Printers, the parser, the interpreter and the
code generator all look ops up here and never hard-code one: adding an op is one row plus tests.

Lowerings are small functions from the argument *source strings* and their tensor ranks to a
source string, so that `E[l1(v)]` on an image becomes `v.abs().mean(dim=(1, 2, 3))`: what a
person would write, with no helper call per op. The interpreter evaluates the same lowerings, so
generated code and interpreter cannot disagree.

Conventions (docs/methods.md): `E[v]` is the mean over every element; `l1`/`l2sq` are per-sample means
over the non-batch dimensions; `ce(logits, c)` is the per-sample cross-entropy; `kl(mu, logvar)` the
per-sample KL divergence from N(0, I), summed over latent dimensions.

This module does not import torch or sympy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
import math
from typing import Any, Callable, Sequence


class Ops(enum.Enum):
    # leaves
    CONST = enum.auto()
    DATA = enum.auto()
    RANDOM = enum.auto()
    WEIGHT = enum.auto()
    # network application and head selection
    APPLY = enum.auto()
    HEAD = enum.auto()
    # arithmetic
    ADD = enum.auto()
    SUB = enum.auto()
    MUL = enum.auto()
    DIV = enum.auto()
    POW = enum.auto()
    NEG = enum.auto()
    # elementwise functions
    LOG = enum.auto()
    EXP = enum.auto()
    SQRT = enum.auto()
    ABS = enum.auto()
    SIGMOID = enum.auto()
    SOFTPLUS = enum.auto()
    TANH = enum.auto()
    RELU = enum.auto()
    STOP_GRADIENT = enum.auto()
    # a network applied with its parameters held constant
    FROZEN = enum.auto()
    # gradients inside a loss (R1, R2, WGAN-GP): a differentiation variable and a gradient w.r.t. it
    LEAF = enum.auto()
    GRAD = enum.auto()
    # a random point between two values, per sample (WGAN-GP's interpolates)
    INTERPOLATE = enum.auto()
    # per-domain outputs: the output of each sample's class
    PICK = enum.auto()
    # class probabilities, and the contrastive and clustering losses on them (TUNIT)
    SOFTMAX = enum.auto()
    NCE = enum.auto()
    MI = enum.auto()
    # reductions
    MEAN = enum.auto()
    L1 = enum.auto()
    L2SQ = enum.auto()
    CE = enum.auto()
    KL = enum.auto()
    NORM = enum.auto()
    # evaluation: no gradient flows through these (refused in losses)
    ARGMAX = enum.auto()
    EQ = enum.auto()
    ROLL = enum.auto()


Lowering = Callable[[Sequence[str], Sequence[int]], str]


@dataclass(frozen=True)
class OpDef:
    op: Ops
    arity: int | None
    spelling: str               # builtin name in formulas, or the infix symbol
    meaning: str
    torch: Lowering | None      # None: leaves and network calls, which codegen handles itself
    sympy: Callable[..., Any] | None  # (sympy module, *args) -> sympy expression
    infix: int = 0              # binding power of an infix/prefix operator; 0 for calls
    pure: bool = True
    reduces: str = ""           # "all": to a scalar; "sample": to one value per sample
    atomic: bool = False        # the lowering puts arguments where they must be atoms: `{0}.mean()`
    fold: Callable[..., float] | None = None  # value on plain numbers, for constant folding
    differentiable: bool = True  # False: a loss may not use it (it belongs in evaluate:)
    infix_lowering: bool = False  # the lowering is the infix operator itself (`a + b`), binding as `infix` says
    helper: str = ""            # the runtime.py function its lowering calls, imported by generated code
    defaults: tuple[float, ...] = ()  # values of its last arguments where a formula leaves them out (mi's lamb)

    def written(self, args: Sequence[Any]) -> list[Any]:
        """`args` (Exprs) as a formula writes them: trailing arguments at their default left out."""
        args = list(args)
        first = (self.arity or 0) - len(self.defaults)
        while len(args) > first and args[-1].op is Ops.CONST and args[-1].arg == self.defaults[len(args) - 1 - first]:
            args.pop()
        return args


def _call(template: str) -> Lowering:
    return lambda args, ranks: template.format(*args)


def _sample_dims(rank: int) -> str:
    """The non-batch dimensions of a rank-`rank` tensor, as a `dim=` argument."""
    dims = tuple(range(1, rank))
    return f"dim={dims[0]}" if len(dims) == 1 else f"dim={dims}"


def _per_sample_mean(inner: str) -> Lowering:
    def lower(args: Sequence[str], ranks: Sequence[int]) -> str:
        body = inner.format(*args)
        return body if ranks[0] <= 1 else f"{body}.mean({_sample_dims(ranks[0])})"

    return lower


def _mi(args: Sequence[str], ranks: Sequence[int]) -> str:
    p, p2, lamb = args
    try:
        default = float(lamb) == 1
    except ValueError:  # a named value
        default = False
    return f"mutual_information({p}, {p2})" if default else f"mutual_information({p}, {p2}, lamb={lamb})"


def _kl(args: Sequence[str], ranks: Sequence[int]) -> str:
    mu, logvar = args
    body = f"0.5 * ({mu} ** 2 + {logvar}.exp() - 1 - {logvar})"
    return f"({body})" if ranks[0] <= 1 else f"({body}).sum({_sample_dims(ranks[0])})"


def _norm(args: Sequence[str], ranks: Sequence[int]) -> str:
    """The per-sample Euclidean norm over the non-batch dimensions."""
    if ranks[0] <= 1:
        return f"{args[0]}.abs()"
    return f"{args[0]}.norm(dim=1)" if ranks[0] == 2 else f"{args[0]}.flatten(1).norm(dim=1)"


def _pick(args: Sequence[str], ranks: Sequence[int]) -> str:
    """`v[n, c[n], ...]` for every sample n: the label indexes dimension 1, broadcast over the rest."""
    index = f"{args[1]}[:, {', '.join(['None'] * (ranks[0] - 1))}]"
    return f"torch.take_along_dim({args[0]}, {index}, dim=1).squeeze(1)"


def _sigmoid_sympy(sp, x):
    return 1 / (1 + sp.exp(-x))


def _softplus_sympy(sp, x):
    return sp.log(1 + sp.exp(x))


def _function(name: str):
    return lambda sp, *args: sp.Function(name)(*args)


ROWS = [
    OpDef(Ops.CONST, 0, "", "a number", None, None),
    OpDef(Ops.DATA, 0, "", "a data variable of the batch", None, None),
    OpDef(Ops.RANDOM, 0, "", "a named random draw", None, None, pure=False),
    OpDef(Ops.WEIGHT, 0, "", "a term's weight at this iteration, from its schedule: an input of the step", None, None),
    OpDef(Ops.APPLY, None, "", "a network applied to its inputs", None, None),
    OpDef(Ops.HEAD, 1, "", "one named output of a network with several heads", None, None),
    OpDef(Ops.FROZEN, None, "", "a network applied with its parameters constant: gradient reaches its inputs only", None, None),
    OpDef(Ops.LEAF, 1, "", "the value cut from what computed it, as a variable to differentiate by (grad's second argument)", _call("{0}.detach().requires_grad_()"), lambda sp, a: a, atomic=True),
    OpDef(Ops.GRAD, 2, "grad", "the gradient of the sum of out over v, per sample the shape of v, differentiable again", _call("torch.autograd.grad({0}.sum(), {1}, create_graph=True)[0]"), _function("grad"), atomic=True),
    OpDef(Ops.INTERPOLATE, 2, "interpolate", "a v + (1 - a) w with a ~ U(0, 1) drawn per sample", _call("interpolate({0}, {1})"), _function("interpolate"), pure=False, helper="interpolate"),
    OpDef(Ops.PICK, 2, "pick", "v[n, c[n], ...]: each sample's output for its label c (v has one output per class in dimension 1)", _pick, _function("pick"), atomic=True),
    OpDef(Ops.SOFTMAX, 1, "softmax", "exp(v) / sum of exp(v) over dimension 1: class probabilities from logits", _call("F.softmax({0}, dim=1)"), _function("softmax"), atomic=True),
    OpDef(Ops.NCE, 4, "nce", "per-sample InfoNCE ce([q.k, q.Q_1, ..., q.Q_M] / tau, 0) of query q, key k (detached) and negatives Q (M rows, constant)", _call("info_nce({0}, {1}, {2}, {3})"), _function("nce"), reduces="sample", helper="info_nce"),
    OpDef(Ops.MI, 3, "mi", "mutual information of the batch's symmetric joint of paired class probabilities (IIC): one scalar; lamb (default 1) weighs the marginals' entropy", _mi, _function("mi"), reduces="all", helper="mutual_information", defaults=(1.0,)),
    OpDef(Ops.ADD, 2, "+", "sum", _call("{0} + {1}"), lambda sp, a, b: a + b, infix=10, infix_lowering=True),
    OpDef(Ops.SUB, 2, "-", "difference", _call("{0} - {1}"), lambda sp, a, b: a - b, infix=10, infix_lowering=True),
    OpDef(Ops.MUL, 2, "*", "product", _call("{0} * {1}"), lambda sp, a, b: a * b, infix=20, infix_lowering=True),
    OpDef(Ops.DIV, 2, "/", "quotient", _call("{0} / {1}"), lambda sp, a, b: a / b, infix=20, infix_lowering=True),
    OpDef(Ops.NEG, 1, "-", "negation", _call("-{0}"), lambda sp, a: -a, infix=30, infix_lowering=True),
    OpDef(Ops.POW, 2, "^", "power", _call("{0} ** {1}"), lambda sp, a, b: a ** b, infix=40, infix_lowering=True),
    OpDef(Ops.LOG, 1, "log", "natural logarithm", _call("torch.log({0})"), lambda sp, a: sp.log(a), fold=math.log),
    OpDef(Ops.EXP, 1, "exp", "exponential", _call("torch.exp({0})"), lambda sp, a: sp.exp(a), fold=math.exp),
    OpDef(Ops.SQRT, 1, "sqrt", "square root", _call("torch.sqrt({0})"), lambda sp, a: sp.sqrt(a), fold=math.sqrt),
    OpDef(Ops.ABS, 1, "abs", "absolute value", _call("{0}.abs()"), lambda sp, a: sp.Abs(a), atomic=True, fold=abs),
    OpDef(Ops.SIGMOID, 1, "sigmoid", "logistic sigmoid 1 / (1 + exp(-v))", _call("torch.sigmoid({0})"), _sigmoid_sympy, fold=lambda a: 1 / (1 + math.exp(-a)) if a > -700 else 0.0),
    OpDef(Ops.SOFTPLUS, 1, "softplus", "log(1 + exp(v)), computed stably", _call("F.softplus({0})"), _softplus_sympy, fold=lambda a: a + math.log1p(math.exp(-a)) if a > 0 else math.log1p(math.exp(a))),
    OpDef(Ops.TANH, 1, "tanh", "hyperbolic tangent", _call("torch.tanh({0})"), lambda sp, a: sp.tanh(a), fold=math.tanh),
    OpDef(Ops.RELU, 1, "relu", "max(v, 0)", _call("torch.relu({0})"), lambda sp, a: sp.Max(a, 0), fold=lambda a: max(a, 0.0)),
    OpDef(Ops.STOP_GRADIENT, 1, "stop_gradient", "the value, with no gradient flowing back", _call("{0}.detach()"), lambda sp, a: a, atomic=True),
    OpDef(Ops.MEAN, 1, "E", "expectation: mean over every element", _call("{0}.mean()"), _function("E"), reduces="all", atomic=True, fold=lambda a: a),
    OpDef(Ops.L1, 1, "l1", "per-sample mean of |v| over non-batch dimensions", _per_sample_mean("{0}.abs()"), _function("l1"), reduces="sample", atomic=True, fold=abs),
    OpDef(Ops.L2SQ, 1, "l2sq", "per-sample mean of v^2 over non-batch dimensions", _per_sample_mean("{0}.square()"), _function("l2sq"), reduces="sample", atomic=True, fold=lambda a: a * a),
    OpDef(Ops.CE, 2, "ce", "per-sample cross-entropy of logits against integer labels", _call("F.cross_entropy({0}, {1}, reduction='none')"), _function("ce"), reduces="sample"),
    OpDef(Ops.ARGMAX, 1, "argmax", "per-sample index of the largest logit: the predicted class", _call("{0}.argmax(dim=1)"), _function("argmax"), reduces="sample", atomic=True, differentiable=False),
    OpDef(Ops.EQ, 2, "==", "1 where the two values are equal, else 0 (accuracy is E[argmax(C(v)) == c])", _call("({0} == {1}).float()"), lambda sp, a, b: sp.Eq(a, b, evaluate=False), infix=5, differentiable=False),
    OpDef(Ops.ROLL, 1, "roll", "the batch shifted by one sample: pairs each sample with the next one's partner", _call("{0}.roll(1, 0)"), _function("roll"), atomic=True),
    OpDef(Ops.NORM, 1, "norm", "per-sample Euclidean norm over non-batch dimensions", _norm, _function("norm"), reduces="sample", atomic=True, fold=abs),
    OpDef(Ops.KL, 2, "kl", "per-sample KL(N(mu, exp(logvar)) || N(0, I)), summed over latent dims", _kl, _function("kl"), reduces="sample", atomic=True),
]

OPS: dict[Ops, OpDef] = {row.op: row for row in ROWS}

# Builtins callable by name in a formula: spelling -> op.
BUILTINS: dict[str, Ops] = {row.spelling: row.op for row in ROWS if row.spelling.isidentifier() and row.op is not Ops.MEAN}

# Ops whose lowering calls a helper of runtime.py: the helper's name.
HELPER_OPS: dict[Ops, str] = {row.op: row.helper for row in ROWS if row.helper}

# Ops that consume randomness or have effects; CSE and interning must keep them apart.
IMPURE = frozenset(row.op for row in ROWS if not row.pure)

# Ops with no gradient: a player's or judge's loss may not use them.
NOT_DIFFERENTIABLE = frozenset(row.op for row in ROWS if not row.differentiable)
