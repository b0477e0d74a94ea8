"""The objective rendered as mathematics, through sympy: unicode for terminals, LaTeX for papers.

What is shown is the objective *as written* (before stable rewrites): `log D_Y(y)` rather than
`-softplus(-logits)`, in the order written (sympy's unevaluated forms, printed with
`order="none"`). Let-bound values appear under their names, and `E[...]` prints as 𝔼[...].
"""

from __future__ import annotations

from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph
from lossgraph.compiler.ops import OPS, Ops


def _printers():
    """A sympy string printer that keeps the written order and names, with 𝔼[...] and x²."""
    from sympy.printing.latex import LatexPrinter
    from sympy.printing.str import StrPrinter

    superscripts = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")

    class UnicodePrinter(StrPrinter):
        def _print_Function(self, expr):
            if expr.func.__name__ == "E":
                return f"𝔼[{self._print(expr.args[0])}]"
            return super()._print_Function(expr)

        def _print_Pow(self, expr, rational=False):
            base, exponent = expr.args
            if exponent.is_Integer and 0 <= int(exponent) < 10:
                return f"{self.parenthesize(base, 60)}{str(int(exponent)).translate(superscripts)}"
            return super()._print_Pow(expr, rational)

    class MathLatexPrinter(LatexPrinter):
        def _print_Function(self, expr, exp=None):
            if expr.func.__name__ == "E":
                return rf"\mathbb{{E}}\left[{self._print(expr.args[0])}\right]"
            return super()._print_Function(expr, exp)

    return UnicodePrinter({"order": "none"}), MathLatexPrinter({"order": "none"})


def to_math(expr: Expr, names: dict[Expr, str], top: Expr | None = None):
    """Sympy form of `expr` as written (unevaluated), with let-bound values as symbols."""
    import sympy as sp

    arithmetic = {
        Ops.ADD: lambda a, b: sp.Add(a, b, evaluate=False),
        Ops.SUB: lambda a, b: sp.Add(a, -b if b.is_Number else sp.Mul(-1, b, evaluate=False), evaluate=False),
        Ops.MUL: lambda a, b: sp.Mul(a, b, evaluate=False),
        Ops.DIV: lambda a, b: sp.Mul(a, sp.Pow(b, -1, evaluate=False), evaluate=False),
        Ops.POW: lambda a, b: sp.Pow(a, b, evaluate=False),
        Ops.NEG: lambda a: sp.Mul(-1, a, evaluate=False),
    }
    done: dict[Expr, object] = {}
    for node in expr.walk():
        if node is not top and node in names:
            done[node] = sp.Symbol(names[node])
            continue
        args = [done[child] for child in node.args]
        if node.op is Ops.CONST:
            value = node.arg
            done[node] = sp.Integer(int(value)) if float(value).is_integer() and abs(value) < 1e15 else sp.Float(value, 6)
        elif node.op in (Ops.DATA, Ops.RANDOM):
            done[node] = sp.Symbol(str(node.arg))
        elif node.op in (Ops.APPLY, Ops.FROZEN):
            done[node] = sp.Function(node.arg)(*args)
        elif node.op is Ops.GRADIENT_PENALTY:
            network = node.arg[0] if node.arg[1] is None else f"{node.arg[0]}[{node.arg[1]}]"
            done[node] = sp.Function("gp")(sp.Symbol(network), *args)
        elif node.op is Ops.HEAD:
            inner = node.args[0]
            done[node] = sp.Function(f"{inner.arg}.{node.arg[0]}")(*[done[a] for a in inner.args])
        elif node.op in arithmetic:
            done[node] = arithmetic[node.op](*args)
        else:
            with sp.evaluate(False):
                done[node] = OPS[node.op].sympy(sp, *args)
    return done[expr]


def render(graph: Graph, latex: bool = False, paper: str | None = None) -> str:
    unicode_printer, latex_printer = _printers()

    def show(expr: Expr, top: Expr | None = None) -> str:
        math = to_math(expr, dict(graph.names), top)
        return (latex_printer if latex else unicode_printer).doprint(math)

    lines = [f"{graph.name}" + (f": {paper}" if paper else ""), ""]
    if graph.names:
        lines.append("where")
        for node, name in graph.names.items():
            lines.append(f"  {name} = {show(node, top=node)}")
        lines.append("")
    for player in graph.players:
        verb = "maximizes" if player.sense == "maximize" else "minimizes"
        lines.append(f"{player.name} {verb} over {', '.join(player.networks)}:")
        for term in player.terms:
            body = show(term.expr, top=term.expr)
            if term.weight != 1:
                grouped = f"({body})" if term.expr.op in (Ops.ADD, Ops.SUB) else body
                times = r"\cdot" if latex else "·"
                body = f"{_number(term.weight)} {times} {grouped}"
            lines.append(f"  {term.name} = {body}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
