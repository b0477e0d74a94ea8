"""Formula text to IR, through Python's `ast` and a whitelist. Never `eval`.

The spec language is a small subset of Python expression syntax: numbers, names, `+ - * / ^ **`,
unary minus, calls `f(a, b)`, network heads `N.head(a)` and the expectation `E[...]` (the one
subscript allowed). `^` is power, as in papers; it is rewritten to `**` before parsing with a map
back to the original columns, because Python's `^` binds looser than `+`.

Syntax is checked here; meaning (which names exist, what a name is) is asked of a `Scope`, so the
same parser reads spec formulas and the rewrite rules' patterns. Every node built is recorded in
an origin table against the characters it came from, so later passes can point at `D_Y(y)`.

Hostile input is bounded before parsing: length, bracket nesting and operator chains; constant
arithmetic is folded in floating point, so `9**9**9**9` is an overflow error, not a hang.
"""

from __future__ import annotations

import ast
import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

from lossgraph.language.errors import FormulaError, Origin, Problem, did_you_mean
from lossgraph.compiler.expr import Expr, const
from lossgraph.compiler.ops import BUILTINS, NOT_DIFFERENTIABLE, OPS, Ops

MAX_LENGTH = 4000
MAX_DEPTH = 100  # brackets, calls and chained operators (a + b + c is 2 deep) all count
_DRAWS = itertools.count(1)  # draws parsed without a scope that names them (rule patterns)

# Python syntax that has no place in a formula, with the reason shown to the user.
_REJECTED = {
    ast.Lambda: "lambdas are not part of the formula language",
    ast.NamedExpr: "assignment expressions (:=) are not part of the formula language",
    ast.IfExp: "conditional expressions are not part of the formula language",
    ast.Compare: "the only comparison is ==, as in E[argmax(C(x)) == c]",
    ast.BoolOp: "'and'/'or' are not part of the formula language",
    ast.ListComp: "comprehensions are not part of the formula language",
    ast.SetComp: "comprehensions are not part of the formula language",
    ast.DictComp: "comprehensions are not part of the formula language",
    ast.GeneratorExp: "comprehensions are not part of the formula language",
    ast.Await: "'await' is not part of the formula language",
    ast.Yield: "'yield' is not part of the formula language",
    ast.YieldFrom: "'yield' is not part of the formula language",
    ast.JoinedStr: "strings are not part of the formula language",
    ast.List: "lists are not part of the formula language",
    ast.Tuple: "tuples are not part of the formula language; did you mean a call f(a, b)?",
    ast.Set: "sets are not part of the formula language",
    ast.Dict: "dicts are not part of the formula language",
    ast.Starred: "star-arguments are not part of the formula language",
    ast.Slice: "slices are not part of the formula language",
}

_BINARY = {ast.Add: Ops.ADD, ast.Sub: Ops.SUB, ast.Mult: Ops.MUL, ast.Div: Ops.DIV, ast.Pow: Ops.POW}
_FOLD = {
    Ops.ADD: lambda a, b: a + b,
    Ops.SUB: lambda a, b: a - b,
    Ops.MUL: lambda a, b: a * b,
    Ops.DIV: lambda a, b: a / b,
    Ops.POW: lambda a, b: a ** b,
}


@dataclass(frozen=True)
class NetworkRef:
    """A network (or one head of it) passed to a macro as an argument: `nsgan_d(D_Y, y, fake_y)`."""

    name: str
    head: str | None = None


class Scope(Protocol):
    """What names mean. The spec's lowering and the rule parser each provide one."""

    def name(self, name: str, where: "Site", span: tuple[int, int]) -> Expr: ...

    def call(self, name: str, head: str | None, args: list[Expr], where: "Site", span: tuple[int, int]) -> Expr | None:
        """A network application or macro, or None when `name` is not callable here."""

    def callables(self) -> list[str]: ...


@dataclass
class Site:
    """Where a formula lives: turns a span of its text into an `Origin`, and records origins."""

    text: str
    locate: Callable[[tuple[int, int]], Origin | None] = lambda span: None
    origins: dict[Expr, list[Origin]] = field(default_factory=dict)

    def origin(self, span: tuple[int, int]) -> Origin | None:
        return self.locate(span)

    def error(self, message: str, span: tuple[int, int], hint: str | None = None) -> FormulaError:
        origin = self.origin(span)
        if origin is None:
            return FormulaError(f"{message} in formula {self.text!r}" + (f" ({hint})" if hint else ""))
        return FormulaError(Problem(message, origin, hint))

    def record(self, node: Expr, span: tuple[int, int]) -> Expr:
        origin = self.origin(span)
        if origin is not None:
            known = self.origins.setdefault(node, [])
            if origin not in known:
                known.append(origin)
        return node


def parse(text: str, scope: Scope, site: Site) -> Expr:
    """Parse one formula into IR, or raise a located `FormulaError`."""
    if not isinstance(text, str):
        raise site.error(f"expected a formula, got {type(text).__name__}", (0, 1))
    if not text.strip():
        raise site.error("empty formula", (0, 1), "write an expression such as E[l1(G(x) - y)]")
    if len(text) > MAX_LENGTH:
        raise site.error(f"formula longer than {MAX_LENGTH} characters", (0, 1), "split it with let: bindings")
    if "#" in text:
        # NOTE: Python would read `#` as a comment and drop the rest of the line, silently;
        # in a block scalar (`|`) the rest of the formula too, once lines are joined.
        at = text.index("#")
        raise site.error("'#' is not part of the formula language", (at, at + 1), "put comments after the YAML value, outside the formula")
    _check_nesting(text, site)
    source, to_original = _prepare(text)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        offset = (error.offset or 1) - 1  # characters, unlike the UTF-8 bytes of ast columns
        start = to_original(max(0, min(offset, len(source) - 1)))
        # YAML ends an unquoted value at a comma inside { } or [ ], so `{fid_XY: fid(fake_y, y)}` arrives
        # here as `fid(fake_y`: the formula as written is fine, its quoting is not
        hint = ("inside a YAML { } or [ ], a comma ends an unquoted value: quote the formula, "
                "\"f(a, b)\", or write it on a line of its own") if "never closed" in error.msg else None
        raise site.error(f"syntax error: {error.msg}", (start, start + 1), hint) from None
    except (RecursionError, MemoryError, ValueError) as error:
        raise site.error(f"cannot parse formula: {error}", (0, 1)) from None
    return _Builder(source, to_original, scope, site).build(tree.body, 0)


def _check_nesting(text: str, site: Site) -> None:
    depth = 0
    for index, char in enumerate(text):
        if char in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise site.error(f"formula nested deeper than {MAX_DEPTH} levels", (index, index + 1), "use let: bindings")
        elif char in ")]}":
            depth -= 1


def _prepare(text: str) -> tuple[str, Callable[[int], int]]:
    """`^` becomes `**` and line breaks become spaces; returns a map back to original offsets."""
    pieces: list[str] = []
    original: list[int] = []
    for index, char in enumerate(text):
        if char == "^":
            pieces.append("**")
            original.extend((index, index))
        else:
            pieces.append(" " if char in "\r\n\t" else char)
            original.append(index)
    original.append(len(text))
    return "".join(pieces), lambda offset: original[max(0, min(offset, len(original) - 1))]


def _char_offset(source: str, byte_offset: int) -> int:
    return len(source.encode("utf-8")[:byte_offset].decode("utf-8", "ignore"))


class _Builder:
    def __init__(self, source: str, to_original: Callable[[int], int], scope: Scope, site: Site):
        self.source = source
        self.to_original = to_original
        self.scope = scope
        self.site = site

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = _char_offset(self.source, node.col_offset)
        end = _char_offset(self.source, node.end_col_offset or node.col_offset + 1)
        return self.to_original(start), self.to_original(max(start, end - 1)) + 1

    def fail(self, message: str, node: ast.AST, hint: str | None = None) -> FormulaError:
        return self.site.error(message, self.span(node), hint)

    def build(self, node: ast.AST, depth: int) -> Expr:
        if depth > MAX_DEPTH:
            raise self.fail(f"formula nested deeper than {MAX_DEPTH} levels", node, "use let: bindings")
        result = self._build(node, depth + 1)
        return self.site.record(result, self.span(node))

    def _build(self, node: ast.AST, depth: int) -> Expr:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            if node.id == "E":
                raise self.fail("E is the expectation and takes brackets", node, "write E[...]")
            return self.scope.name(node.id, self.site, self.span(node))
        if isinstance(node, ast.BinOp):
            op = _BINARY.get(type(node.op))
            if op is None:
                symbol = _operator_symbol(self.source, node)
                raise self.fail(f"operator '{symbol}' is not part of the formula language", node, "use + - * / ^")
            left = self.build(node.left, depth)
            right = self.build(node.right, depth)
            return self.fold(op, node, left, right)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand, depth)
            if not isinstance(node.op, ast.USub):
                raise self.fail("only unary minus is part of the formula language", node)
            operand = self.build(node.operand, depth)
            if operand.op is Ops.CONST:
                return const(-operand.arg)
            return Expr.make(Ops.NEG, operand)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq):
            left = self.build(node.left, depth)
            right = self.build(node.comparators[0], depth)
            if left.op is Ops.CONST and right.op is Ops.CONST:
                return const(float(left.arg == right.arg))
            return Expr.make(Ops.EQ, left, right)
        if isinstance(node, ast.Subscript):
            return self.expectation(node, depth)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("__"):
                raise self.fail(f"dunder attribute '{node.attr}' is not allowed", node)
            raise self.fail(f"a network head must be applied to inputs: {ast.unparse(node)}(...)", node)
        for kind, reason in _REJECTED.items():
            if isinstance(node, kind):
                raise self.fail(reason, node)
        raise self.fail(f"{type(node).__name__} is not part of the formula language", node)

    def constant(self, node: ast.Constant) -> Expr:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            kind = "string literals" if isinstance(value, (str, bytes)) else f"{type(value).__name__} constants"
            raise self.fail(f"{kind} are not part of the formula language", node)
        try:
            number = float(value)
        except OverflowError:
            raise self.fail("number too large", node) from None
        if not math.isfinite(number):
            raise self.fail("number too large", node)
        return const(number)

    def fold(self, op: Ops, node: ast.AST, left: Expr, right: Expr) -> Expr:
        if left.op is Ops.CONST and right.op is Ops.CONST:
            try:
                value = _FOLD[op](left.arg, right.arg)
            except ZeroDivisionError:
                raise self.fail("division by zero", node) from None
            except OverflowError:
                raise self.fail("constant expression overflows", node) from None
            if isinstance(value, complex) or not math.isfinite(value):
                raise self.fail("constant expression is not a finite real number", node)
            return const(value)
        return Expr.make(op, left, right)

    def fold_call(self, op: Ops, node: ast.AST, args: list[Expr]) -> Expr:
        try:
            value = OPS[op].fold(*(arg.arg for arg in args))
        except (ValueError, OverflowError, ZeroDivisionError):
            raise self.fail(f"{OPS[op].spelling} of this constant is not a finite real number", node) from None
        if isinstance(value, complex) or not math.isfinite(value):
            raise self.fail(f"{OPS[op].spelling} of this constant is not a finite real number", node)
        return const(value)

    def expectation(self, node: ast.Subscript, depth: int) -> Expr:
        if not (isinstance(node.value, ast.Name) and node.value.id == "E"):
            raise self.fail("the only subscript is the expectation E[...]", node, "indexing is not part of the formula language")
        inner = node.slice
        if isinstance(inner, (ast.Tuple, ast.Slice)):
            raise self.fail("E[...] takes one expression", node)
        inside = self.build(inner, depth)
        return inside if inside.op is Ops.CONST else Expr.make(Ops.MEAN, inside)

    def call(self, node: ast.Call, depth: int) -> Expr:
        if node.keywords:
            raise self.fail("keyword arguments are not part of the formula language", node.keywords[0])
        func = node.func
        head = None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.attr.startswith("_"):
                raise self.fail(f"attribute '{func.attr}' is not allowed", func)
            name, head = func.value.id, func.attr
        elif isinstance(func, ast.Name):
            name = func.id
        else:
            raise self.fail("only names, network heads and builtins can be called", func)
        expand = getattr(self.scope, "expand", None)
        if head is None and expand is not None and self.scope.is_macro(name):
            # macro arguments may be networks: build each as a value or a network reference
            args = [self.argument(arg, depth) for arg in node.args]
            return expand(name, args, self.site, self.span(node))
        if head is None and name != "E" and name not in BUILTINS and name not in self.scope.callables():
            # the callee first: `__import__('os')` is an unknown function before it is a string
            raise self.unknown_function(name, head, func)
        args = [self.build(arg, depth) for arg in node.args]
        span = self.span(node)
        applied = self.scope.call(name, head, args, self.site, span)
        if applied is not None:
            return applied
        if head is None and name in BUILTINS:
            op = BUILTINS[name]
            arity, defaults = OPS[op].arity, OPS[op].defaults
            if not arity - len(defaults) <= len(args) <= arity:
                count = f"{arity - len(defaults)} or {arity}" if len(defaults) == 1 else f"{arity}"
                raise self.fail(f"{name} takes {count} argument{'s' if arity != 1 else ''}, got {len(args)}", node)
            args += [Expr.make(Ops.CONST, arg=value) for value in defaults[len(args) - arity:]] if len(args) < arity else []
            if all(arg.op is Ops.CONST for arg in args) and OPS[op].fold is not None:
                return self.fold_call(op, node, args)
            if op is Ops.GRAD:
                return self.gradient(node, *args)
            if not OPS[op].pure:
                return Expr.make(op, *args, arg=self.draw(name))
            return Expr.make(op, *args)
        if name == "E":
            raise self.fail("E is the expectation and takes brackets", node, "write E[...]")
        raise self.unknown_function(name, head, func)

    def draw(self, name: str) -> str:
        """A name for a random draw written here: each written draw is its own (never merged)."""
        fresh = getattr(self.scope, "draw", None)
        return fresh(name) if fresh is not None else f"{name}#{next(_DRAWS)}"

    def gradient(self, node: ast.Call, out: Expr, wrt: Expr) -> Expr:
        """`grad(out, v)`: v becomes a variable of its own (a LEAF, cut from what computed it) in
        `out`, so the gradient is taken with respect to v alone, as R1 and WGAN-GP take it."""
        if wrt.op is Ops.CONST or wrt not in set(out.walk()):
            raise self.fail("grad(out, v) differentiates out with respect to v, but out does not depend on v",
                            node, "write the value as it appears inside out, e.g. grad(D(x), x)")
        leaf = self.site.record(Expr.make(Ops.LEAF, wrt), self.span(node.args[1]))
        origins = self.site.origins
        done: dict[Expr, Expr] = {}
        for old in out.walk():  # `out` rebuilt on the leaf; each rebuilt node keeps its origins
            if old is wrt:
                done[old] = leaf
                continue
            if old.op in NOT_DIFFERENTIABLE:  # no gradient passes (a pseudo-label): it keeps reading v itself
                done[old] = old
                continue
            args = tuple(done[child] for child in old.args)
            new = old if args == old.args else old.replace(args=args)
            if new is not old and old in origins:
                origins.setdefault(new, list(origins[old]))
            done[old] = new
        return Expr.make(Ops.GRAD, done[out], leaf)

    def argument(self, node: ast.AST, depth: int) -> "Expr | NetworkRef":
        network_ref = getattr(self.scope, "network_ref", None)
        if network_ref is not None:
            if isinstance(node, ast.Name):
                ref = network_ref(node.id)
                if ref is not None:
                    return ref
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and not node.attr.startswith("_"):
                ref = network_ref(node.value.id)
                if ref is not None:
                    if ref.head is not None:
                        raise self.fail(f"'{node.value.id}' is already the head {ref.name}.{ref.head}", node)
                    return NetworkRef(ref.name, node.attr)
        return self.build(node, depth)

    def unknown_function(self, name: str, head: str | None, func: ast.AST) -> FormulaError:
        what = f"{name}.{head}" if head else name
        hint = did_you_mean(name, list(BUILTINS) + self.scope.callables())
        networks = self.scope.callables()
        # a name that reads like a network is reported as one: `G_XZ(x)` is a typo of `G_XY`
        kind = "network" if any(hint and f"'{net}'" in hint and hint.startswith("did") for net in networks) else "function"
        return self.site.error(f"unknown {kind} '{what}'", self.span(func), hint)


def _operator_symbol(source: str, node: ast.BinOp) -> str:
    names = {ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^"}
    return names.get(type(node.op), type(node.op).__name__)
