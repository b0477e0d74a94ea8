"""The objective rendered as mathematics, through sympy: unicode for terminals, LaTeX for papers.

What is shown is the objective *as written* (before stable rewrites): `log D_Y(y)` rather than
`-softplus(-logits)`, in the order written (sympy's unevaluated forms, printed with
`order="none"`). `E[...]` prints as 𝔼[...], a network's head as `D.src`, also inside `gp(D.src,
real, fake)`. A let-bound value appears under its name, and the `where` block defines the lets
the shown formulas name, no others: a let no player uses is not listed, nor one that only ever
stands for a whole term (the term shows it written out).

Ops come from the op table (compiler/ops.py), never from a table of our own (Note [Notation]).
The heading says what the spec is: its own paper, or, for a spec that `extends:` another and
gives no paper of its own, that it is a variant of that spec, with the parent's paper.

Note [Notation]: an op is shown in its row's `sympy` form when that form is *notation* for the
op, one sympy node over exactly the written arguments (log, exp, tanh, Abs, E, l1, kl, ==, the
infix operators) or a power of its one argument (sqrt). When the form is the op's *definition*
instead (relu's Max(v, 0), sigmoid's 1/(1 + exp(-v)), softplus's log(1 + exp(v)), stop_gradient's
identity), printing it would rewrite what the user wrote, so the op is shown by its `spelling`
as a function: relu(D(x)), sigmoid(l), stop_gradient(fake).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import PurePath
from typing import Mapping

from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph
from lossgraph.compiler.ops import BUILTINS, OPS, Ops
from lossgraph.compiler.printing import number_text


def _printers():
    """Sympy printers that keep the written order and names: 𝔼[...], x², |x| in unicode; LaTeX
    with f(x)^{2} rather than sympy's f^{2}(x), which reads as f applied twice."""
    from sympy.core.function import AppliedUndef
    from sympy.printing.latex import LatexPrinter
    from sympy.printing.str import StrPrinter

    superscripts = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")

    class UnicodePrinter(StrPrinter):
        def _print_Function(self, expr):
            if expr.func.__name__ == "E":
                return f"𝔼[{self._print(expr.args[0])}]"
            return super()._print_Function(expr)

        def _print_Abs(self, expr):
            return f"|{self._print(expr.args[0])}|"

        def _print_Pow(self, expr, rational=False):
            base, exponent = expr.args
            if exponent.is_Integer and 0 <= int(exponent) < 10:
                return f"{self.parenthesize(base, 60)}{str(int(exponent)).translate(superscripts)}"
            return super()._print_Pow(expr, rational)

    class MathLatexPrinter(LatexPrinter):
        def _print_Function(self, expr, exp=None):
            name = expr.func.__name__
            if name == "E":
                text = rf"\mathbb{{E}}\left[{self._print(expr.args[0])}\right]"
            elif name in BUILTINS and "_" in name:  # stop_gradient, not stop with subscript gradient
                arguments = ",".join(self._print(argument) for argument in expr.args)
                text = rf"\operatorname{{{name.replace('_', chr(92) + '_')}}}{{\left({arguments} \right)}}"
            else:
                return super()._print_Function(expr, exp)
            return text if exp is None else f"{text}^{{{exp}}}"

        def _print_Symbol(self, expr, style="plain"):
            if "." in expr.name:  # a network's head as gp's argument: D.src, as in D.src(x)
                return rf"\operatorname{{{expr.name}}}"
            return super()._print_Symbol(expr, style)

        def _print_Pow(self, expr):
            base, exponent = expr.args
            if isinstance(base, AppliedUndef) and not (exponent.is_Rational and not exponent.is_Integer):
                return f"{self._print(base)}^{{{self._print(exponent)}}}"
            return super()._print_Pow(expr)

    return UnicodePrinter({"order": "none"}), MathLatexPrinter({"order": "none"})


@lru_cache(maxsize=None)
def _is_notation(op: Ops) -> bool:
    """Whether `op`'s sympy form is notation for it rather than its definition (Note [Notation])."""
    import sympy as sp

    row = OPS[op]
    arguments = tuple(sp.Symbol(f"_a{index}") for index in range(row.arity or 0))
    if row.sympy is None or not arguments:
        return False
    with sp.evaluate(False):
        form = row.sympy(sp, *arguments)
    if form.is_Pow and len(arguments) == 1:
        return form.base == arguments[0] and form.exp.is_Rational
    return tuple(form.args) == arguments


def network_name(graph: Graph, network: str, head: int | None) -> str:
    """`D`, or `D.src` for head `head` (an index into the network's heads) of a network with heads."""
    heads = graph.networks[network].heads if network in graph.networks else ()
    return network if head is None or head >= len(heads) else f"{network}.{heads[head][0]}"


def to_math(expr: Expr, names: dict[Expr, str], top: Expr | None = None, graph: Graph | None = None,
            named: set[str] | None = None):
    """Sympy form of `expr` as written (unevaluated), with let-bound values below `top` as symbols.

    `graph` names a network's heads (`gp(D.src, ...)`); the name of every let written as a
    symbol is added to `named`."""
    import sympy as sp

    done: dict[Expr, object] = {}
    for node in expr.walk():
        if node is not top and node in names:
            done[node] = sp.Symbol(names[node])
            if named is not None:
                named.add(names[node])
            continue
        args = [done[child] for child in node.args]
        row = OPS[node.op]
        if node.op is Ops.CONST:
            value = node.arg
            done[node] = sp.Integer(int(value)) if float(value).is_integer() and abs(value) < 1e15 else sp.Float(value, 6)
        elif node.op in (Ops.DATA, Ops.RANDOM, Ops.WEIGHT):
            done[node] = sp.Symbol(str(node.arg))
        elif node.op in (Ops.APPLY, Ops.FROZEN):
            done[node] = sp.Function(node.arg)(*args)
        elif node.op is Ops.HEAD:
            inner = node.args[0]
            done[node] = sp.Function(f"{inner.arg}.{node.arg[0]}")(*[done[a] for a in inner.args])
        elif node.op is Ops.LEAF:  # grad's variable reads as the value it was cut from: grad(D(x), x)
            done[node] = args[0]
        elif row.infix or _is_notation(node.op):
            with sp.evaluate(False):
                form = row.sympy(sp, *[done[child] for child in row.written(node.args)])
                if isinstance(form, sp.Add) and isinstance(form.args[0], sp.Add):
                    # a sum read left to right needs no brackets: (a + b) - c prints as a + b - c,
                    # where a twelve-term sum would otherwise open eleven of them
                    form = sp.Add(*form.args[0].args, *form.args[1:])
                done[node] = form
        else:
            done[node] = sp.Function(row.spelling)(*args)
    return done[expr]


def heading(spec) -> str:
    """What the spec is: `cyclegan: <paper>`, or for a derived spec without a paper of its own
    `stargan-wgan-gp, a variant of stargan (paper: <stargan's paper>)`."""
    what = describe(spec)
    if not what:
        return spec.name
    return f"{spec.name}, {what}" if parent_name(spec) else f"{spec.name}: {what}"


def describe(spec) -> str:
    """The heading after the spec's name: its paper; for a derived spec `a variant of stargan`,
    then its own paper (`: ...`) or else the one it inherits (` (paper: ...)`)."""
    parent = parent_name(spec)
    if parent is None:
        return spec.paper or ""
    if spec.paper and not _inherited(spec, ("paper",)):
        return f"a variant of {parent}: {spec.paper}"
    return f"a variant of {parent}" + (f" (paper: {spec.paper})" if spec.paper else "")


def parent_name(spec) -> str | None:
    """The name in a derived spec's `extends:` (a file's stem), or None for a spec of its own.

    NOTE: read back from the position the loader keeps for `extends:` (the key itself is consumed
    while the spec is laid over its parent), until the loader records the chain on the Spec."""
    source = getattr(spec, "source", None)
    if source is None or source.known(("extends",)) != 1:
        return None
    origin = source.origin(("extends",))
    if not origin.text or origin.end_col is None:
        return None
    written = origin.text[origin.col - 1:origin.end_col - 1].strip().strip("'\"")
    return PurePath(written).stem if written.endswith((".yaml", ".yml")) else written or None


def _inherited(spec, path: tuple) -> bool:
    """Whether the value at `path` came from a spec this one extends (not its own file, not an override)."""
    file = spec.source.origin(path).file
    return file != spec.source.file and not file.startswith("<")


def _draw_names(graph: Graph) -> dict[Expr, str]:
    """A random draw written inside a formula (gp's `interpolate(real, fake)`) is one value however
    often the formula reads it (grad's variable and the point it is taken at): it gets a name,
    `mix` (`mix1`, `mix2`, ... for several), defined under `where`."""
    draws = [node for node in graph.nodes() if node.op is Ops.INTERPOLATE]
    taken = set(graph.names.values())
    names: dict[Expr, str] = {}
    for index, node in enumerate(draws, 1):
        name = "mix" if len(draws) == 1 else f"mix{index}"
        while name in taken:
            name += "_"
        names[node] = name
    return names


def render(graph: Graph, latex: bool = False, paper: str | None = None, spec=None) -> str:
    """The objective as math. The first line is `heading(spec)` when `spec` is given, else the
    graph's name and `paper`."""
    unicode_printer, latex_printer = _printers()
    printer = latex_printer if latex else unicode_printer
    names = dict(graph.names) | _draw_names(graph)
    named: set[str] = set()

    def show(expr: Expr, top: Expr | None = None) -> str:
        return printer.doprint(to_math(expr, names, top, graph, named))

    body = []
    for player in graph.players:
        verb = "maximizes" if player.sense == "maximize" else "minimizes"
        body.append(f"{player.name} {verb} over {', '.join(player.stepped)}:")  # with the networks it also steps
        for term in player.terms:
            shown = show(term.expr, top=term.expr)
            if term.weight != 1 or term.schedule is not None:
                grouped = f"({shown})" if term.expr.op in (Ops.ADD, Ops.SUB) else shown
                times = r"\cdot" if latex else "·"
                # a scheduled weight: its schedule, in words, as the factor
                weight = f"[{term.schedule.describe()}]" if term.schedule is not None else number_text(term.weight)
                if latex and term.schedule is not None:  # words in math mode would run together in italics
                    words = term.schedule.describe().replace("→", r"$\rightarrow$")
                    weight = rf"\left[\text{{{words}}}\right]"
                shown = f"{weight} {times} {grouped}"
            body.append(f"  {term.name} = {shown}")
        body.append("")

    # the lets the formulas name, and the lets those name in turn, in the spec's order
    defined: dict[str, str] = {}
    pending = True
    while pending:
        pending = False
        for node, name in names.items():
            if name in named and name not in defined:
                defined[name] = show(node, top=node)
                pending = True
    title = heading(spec) if spec is not None else graph.name + (f": {paper}" if paper else "")
    lines = [title, ""]
    if defined:
        lines.append("where")
        lines += [f"  {name} = {defined[name]}" for name in names.values() if name in defined]
        lines.append("")
    return "\n".join(lines + body).rstrip() + "\n"


def network_outputs(shapes: Mapping[Expr, tuple[int, ...]]) -> dict[str, str]:
    """Each network's per-sample output as the shape check found it (`program.batchable.shapes`),
    `(3, 32, 32)`, or its heads', `{cls (4,), style (128,)}`; networks no formula applies are left
    out. `lossgraph check` lists them."""
    whole: dict[str, tuple[int, ...]] = {}
    heads: dict[str, dict[tuple[str, int], tuple[int, ...]]] = {}
    for node, shape in shapes.items():
        if node.op in (Ops.APPLY, Ops.FROZEN):
            whole.setdefault(node.arg, tuple(shape[1:]))
        elif node.op is Ops.HEAD:
            heads.setdefault(node.args[0].arg, {}).setdefault(node.arg, tuple(shape[1:]))
    shown = {name: str(shape) for name, shape in whole.items()}
    for name, found in heads.items():  # in the order the network declares its heads
        shown[name] = "{" + ", ".join(f"{head} {shape}" for (head, _), shape in sorted(found.items(), key=lambda item: item[0][1])) + "}"
    return shown
