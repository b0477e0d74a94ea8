"""Check every formula against the domain rules (domains.py): kinds and ranges.

Runs on the objective as written (a probability network's `D(v)` still reads as a probability),
over every term, sample, metric and shaped draw. A `log` of a value that may be 0 or negative,
a `sqrt` of a possibly negative one, a divisor that may be 0, a label used as a number, a `ce`
whose target is not a label: each is a located problem with the fix spelled out, all collected
before one `SpecError`. The pass changes nothing (`changed` is always False).

`hazards` is the same analysis on the objective as it will run: what can still become
non-finite in float32, by term, for the message of a run that stops at a non-finite loss.
"""

from __future__ import annotations

from typing import Mapping

from lossgraph.compiler.domains import (
    ANY,
    IMAGE,
    LABEL,
    NEED_NONNEGATIVE,
    NEED_NONZERO,
    NEED_POSITIVE,
    REAL,
    UNIT,
    Domain,
    Range,
    expected_kinds,
    hazard_of,
    needs_of,
    result_domain,
)
from lossgraph.language.errors import Origin, Problems
from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph
from lossgraph.compiler.ops import OPS, Ops
from lossgraph.compiler.printing import formula_text
from lossgraph.compiler.passes.result import PassResult

OutputRanges = Mapping[str, "tuple[float, float] | None"]
MAX_TEXT = 60  # characters of a formula quoted in a message


def check_domains(graph: Graph, output_ranges: OutputRanges | None = None) -> PassResult:
    """Raise a located `SpecError` for every formula that breaks a domain rule."""
    analysis = _Analysis(graph, output_ranges or {}, probabilities=True)
    for root in _roots(graph):
        analysis.visit(root)
    analysis.problems.raise_if_any()
    return PassResult(graph, False)


def hazards(graph: Graph, output_ranges: OutputRanges | None = None) -> dict[str, list[str]]:
    """For each `player/term` of the running objective (probability outputs as explicit sigmoids),
    the ways its value can stop being finite in float32, each as `what at file:line:col`."""
    analysis = _Analysis(graph, output_ranges or {}, probabilities=False)
    found: dict[str, list[str]] = {}
    for player in graph.players:
        for term in player.terms:
            analysis.visit(term.expr)
            notes: list[str] = []
            for node in term.expr.walk():
                if node.args and node.op not in (Ops.APPLY, Ops.FROZEN, Ops.HEAD):
                    why = hazard_of(node.op, [analysis.domains[arg].range for arg in node.args])
                    if why:
                        origin = graph.origin(node)
                        at = f" at {origin.file}:{origin.line}:{origin.col}" if origin else ""
                        notes.append(f"{_quote(node, graph.names)} {why}{at}")
            found[f"{player.name}/{term.name}"] = list(dict.fromkeys(notes))
    return found


def _roots(graph: Graph) -> list[Expr]:
    return [*graph.roots(), *graph.random_like.values(), *(push for _, push in graph.queues.values())]


class _Analysis:
    def __init__(self, graph: Graph, output_ranges: OutputRanges, probabilities: bool):
        self.graph = graph
        self.output_ranges = output_ranges
        self.probabilities = probabilities  # a probability network's call reads as its sigmoid
        self.domains: dict[Expr, Domain] = {}
        self.failed: set[Expr] = set()  # nodes with a reported problem, and the values above them
        self.problems = Problems()

    def visit(self, root: Expr) -> Domain:
        for node in root.walk():
            if node not in self.domains:
                self.domains[node] = self._domain(node)
        return self.domains[root]

    # -- leaves and network calls ----------------------------------------------------------------

    def _leaf(self, node: Expr) -> Domain:
        graph = self.graph
        if node.op is Ops.CONST:
            return Domain(REAL, Range.point(node.arg))
        if node.op is Ops.WEIGHT:  # every weight its schedule takes
            low, high = graph.weights[node.arg].bounds
            return Domain(REAL, Range(low, high, False, False))
        if node.op is Ops.DATA:
            kind = graph.data.get(node.arg) or graph.held_out.get(node.arg)
            return _declared(kind.kind, kind.size) if kind is not None else Domain(REAL, ANY)
        draw = graph.random[node.arg]
        if draw.dist == "label":
            return Domain(LABEL, Range(0.0, float(draw.size - 1), False, False), classes=draw.size)
        if draw.dist == "uniform":
            return Domain(REAL, Range(draw.low, draw.high, False, True))
        if draw.dist == "augmented":  # a view of an image: an image itself
            return _declared("image", 0)
        return Domain(REAL, ANY)

    def _network(self, node: Expr) -> Domain:
        call = node.args[0] if node.op is Ops.HEAD else node
        network = self.graph.networks[call.arg]
        head = node.arg[0] if node.op is Ops.HEAD else None
        if network.heads and head is None:
            return Domain(REAL, ANY)  # a tuple; its heads are read through HEAD nodes
        if self.probabilities and network.reads_probability(head):
            return Domain(REAL, UNIT)
        declared = self.output_ranges.get(call.arg) if head is None else None
        if declared is not None:
            low, high = declared
            return Domain(REAL, Range(float(low), float(high), False, False))
        return Domain(REAL, ANY)

    # -- every other op ------------------------------------------------------------------------

    def _domain(self, node: Expr) -> Domain:
        if node.op in (Ops.CONST, Ops.DATA, Ops.RANDOM, Ops.WEIGHT):
            return self._leaf(node)
        if node.op in (Ops.APPLY, Ops.FROZEN, Ops.HEAD):
            return self._network(node)
        args = [self.domains[arg] for arg in node.args]
        if any(arg in self.failed for arg in node.args):
            self.failed.add(node)  # reported below: each mistake once
            return Domain(REAL, ANY)
        problem = self._kind_problem(node, args) or self._range_problem(node, args)
        if problem is not None:
            message, hint = problem
            self.problems.add(message, self._origin(node), hint)
            self.failed.add(node)
            return Domain(REAL, ANY)
        return result_domain(node.op, args)

    def _origin(self, node: Expr) -> Origin | None:
        return self.graph.origin(node)

    def _kind_problem(self, node: Expr, args: list[Domain]) -> tuple[str, str | None] | None:
        op = node.op
        spelling = _spelling(op)
        for position, (arg, domain, expected) in enumerate(zip(node.args, args, expected_kinds(op, len(args)))):
            if expected == LABEL and domain.kind != LABEL:
                what = _what(arg, domain, self.graph)
                if op is Ops.CE:
                    return (f"ce(logits, c) takes a label as its target c, but {what}",
                            "declare the target as label(K) under data: or random:, or compare images with l1 or l2sq")
                if op is Ops.PICK:
                    return (f"pick(v, c) selects each sample's output by its label c, but {what}",
                            "declare c as label(K) under data: or random:")
                return (f"{spelling} compares labels, but {what}",
                        "accuracy is written E[argmax(C(x)) == c]")
            if expected == REAL and domain.kind == LABEL:
                name = _quote(arg, self.graph.names)
                if op is Ops.CE and position == 0:
                    return (f"ce(logits, c) takes logits as its first argument, but {name} is a label", "write ce(C(x), c)")
                if op is Ops.ARGMAX:
                    return (f"argmax takes logits, but {name} is already a label", None)
                return (f"{name} is a label (a class index), not a number: {spelling} cannot take it",
                        "use a label as a network input, as the target of ce(logits, c), or in ==")
        return None

    def _range_problem(self, node: Expr, args: list[Domain]) -> tuple[str, str | None] | None:
        op = node.op
        for arg, domain, need in zip(node.args, args, needs_of(op, [a.range for a in args])):
            if need is None or need.holds(domain.range):
                continue
            shown = _quote(arg, self.graph.names)
            can_be = _can_be(domain.range, need)
            if op is Ops.DIV:
                message = f"a divisor must be non-zero, but {shown} can be {can_be}"
            elif op is Ops.POW:
                power = formula_text(node.args[1])
                message = f"a power ^{power} needs {need.name} base, but {shown} can be {can_be}"
            elif op is Ops.NCE:
                return (f"nce(q, k, Q, tau) divides by its temperature tau, which must be positive, but {shown} can be {can_be}",
                        "write a positive temperature, e.g. 0.07")
            elif op is Ops.MI and arg is node.args[2]:
                return (f"mi(p, p2, lamb) weighs the marginals by lamb, which must be positive, but {shown} can be {can_be}",
                        "write a positive weight, e.g. mi(p, p2, 1.5); 1 is IIC's mutual information")
            elif op is Ops.MI:
                return (f"mi(p, p2) takes class probabilities, but {shown} can be {can_be}",
                        "apply softmax to logits, e.g. mi(softmax(C(x)), softmax(C(x2)))")
            else:
                message = f"{_spelling(op)} needs {need.name} argument, but {shown} can be {can_be}"
            return message, self._fix(node, arg, domain.range, need)
        return None

    def _fix(self, node: Expr, arg: Expr, value: Range, need) -> str | None:
        """The fix for an argument outside the op's domain: name the raw network that makes it so."""
        culprit = self._raw_call(arg)
        if culprit is not None and need.holds(self._range_if(arg, culprit, UNIT)):
            call = culprit.args[0] if culprit.op is Ops.HEAD else culprit
            if culprit.op is Ops.HEAD:
                head = culprit.arg[0]
                declared = f"head {call.arg}.{head} is declared raw"
                fix = f"declare it probability (heads: {{{head}: probability}})"
                shown = f"{call.arg}.{head}(...)"
            else:
                declared = f"{call.arg} is declared output: raw"
                fix = "declare it output: probability"
                shown = f"{call.arg}(...)"
            if node.op is Ops.LOG:
                text, called = _quote(arg, self.graph.names), _quote(culprit, self.graph.names)
                wrapped = text.replace(called, f"sigmoid({called})", 1) if called in text else f"sigmoid({shown})"
                return f"{declared}: write log({wrapped}) or {fix}"
            return f"{declared}, so its values can be anything: apply sigmoid, softplus or exp to it, or {fix}"
        if need is NEED_NONNEGATIVE:
            return "take it of a square, an l2sq or abs(...)"
        if value.nonnegative:
            fixed = f"{_quote(arg, self.graph.names)} + 1e-8"
            example = {Ops.LOG: f"log({fixed})", Ops.DIV: f".../ ({fixed})"}.get(node.op, f"({fixed})")
            return f"add a small constant, e.g. {example}"
        return None

    def _range_if(self, arg: Expr, node: Expr, value: Range) -> Range:
        """The range of `arg` were `node` to range over `value` (a raw call read as a probability)."""
        ranges: dict[Expr, Range] = {node: value}
        for inner in arg.walk():
            if inner in ranges:
                continue
            if not inner.args or inner.op in (Ops.APPLY, Ops.FROZEN, Ops.HEAD):
                ranges[inner] = self.domains[inner].range
            else:
                args = [Domain(self.domains[a].kind, ranges[a]) for a in inner.args]
                ranges[inner] = result_domain(inner.op, args).range
        return ranges[arg]

    def _raw_call(self, arg: Expr) -> Expr | None:
        """The outermost network call in `arg` whose output can be any real (a call's own inputs
        do not reach `arg`'s value directly, so the search stops at calls)."""
        stack = [arg]
        while stack:
            node = stack.pop(0)
            if node.op in (Ops.APPLY, Ops.FROZEN, Ops.HEAD):
                if node.op is Ops.APPLY and self.graph.networks[node.arg].heads:
                    continue
                if self.domains[node].range == ANY:
                    return node
                continue
            stack.extend(node.args)
        return None


def _declared(kind: str, size: int) -> Domain:
    if kind == "label":
        return Domain(LABEL, Range(0.0, float(max(size - 1, 0)), False, False), classes=size)
    if kind == "image":
        return Domain(REAL, IMAGE, image=True)
    return Domain(REAL, ANY)


def _spelling(op: Ops) -> str:
    spelling = OPS[op].spelling
    return {"E": "E[...]", "^": "'^'", "+": "'+'", "-": "'-'", "*": "'*'", "/": "'/'"}.get(spelling, spelling)


def _quote(node: Expr, names: Mapping[Expr, str] | None = None) -> str:
    text = formula_text(node, names)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 3] + "..."


def _what(node: Expr, domain: Domain, graph: Graph) -> str:
    name = _quote(node, graph.names)
    if domain.image:
        return f"{name} is an image"
    if node.op in (Ops.APPLY, Ops.FROZEN, Ops.HEAD):
        return f"{name} is a network's output (real values)"
    return f"{name} is not a label"


def _can_be(value: Range, need) -> str:
    if value == ANY:
        return "any real number"
    if need is NEED_POSITIVE and value.nonnegative:
        return "0"
    if need is NEED_NONZERO and value.contains(0.0):
        return f"0 (its values are {value.describe()})"
    return f"negative (its values are {value.describe()})"
