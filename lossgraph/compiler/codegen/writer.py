"""One generated function: its prologue, its named values and its lines.

`straight_line` writes a function with no steps (`losses`, `samples`, `evaluate`): every value
computed once, in order. A value gets a line of its own where a reader needs one (Note
[Generated names]): network calls and gradient penalties, the function's results, `let:`-bound
values, values used more than once, and a grad with its variable and random draws; anything else
is inlined where it is used.
"""

from __future__ import annotations

from typing import Iterable, Mapping, NamedTuple, Sequence

from lossgraph.compiler.codegen.lines import Body, origin_comment
from lossgraph.compiler.codegen.names import GENERATED_NAMES, Namespace, describe
from lossgraph.compiler.codegen.render import Renderer
from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph, consumers
from lossgraph.compiler.ops import Ops

CALLS = (Ops.APPLY, Ops.FROZEN, Ops.HEAD)
LEAVES = (Ops.CONST, Ops.DATA, Ops.RANDOM, Ops.WEIGHT)
# a grad's variable is one tensor that its calls and the grad both read; a grad and a random draw
# are steps a reader looks for
OWN_LINE = (Ops.LEAF, Ops.GRAD, Ops.INTERPOLATE)


class FunctionWriter:
    def __init__(self, graph: Graph, ranks: Mapping[Expr, int], roots: Iterable[Expr]):
        self.graph = graph
        spec_names = set(graph.networks) | set(graph.data) | set(graph.held_out) | set(graph.random)
        self.names = Namespace(spec_names | GENERATED_NAMES)
        self.named: dict[Expr, str] = {}      # shared with the renderer: updated in place
        self.networks: dict[str, str] = {}
        self.renderer = Renderer(graph, ranks, self.networks, self.named)
        self.body = Body()
        self.prologue = self._prologue(list(roots))

    def _prologue(self, roots: list[Expr]) -> list[str]:
        """`G_XY = nets["G_XY"]` and `x = inputs["x"]` for what the function uses."""
        networks: dict[str, None] = {}
        data: dict[Expr, None] = {}
        for root in roots:
            for node in root.walk():
                if node.op in (Ops.APPLY, Ops.FROZEN):
                    networks.setdefault(node.arg, None)
                elif node.op in (Ops.DATA, Ops.RANDOM, Ops.WEIGHT):
                    data.setdefault(node, None)
        lines = []
        for network in sorted(networks):
            self.networks[network] = self.names.claim(network)
            lines.append(f'    {self.networks[network]} = nets["{network}"]')
        declared = list(self.graph.data)
        for node in sorted(data, key=lambda n: declared.index(n.arg) if n.arg in declared else len(declared)):
            # a scheduled weight is an input too, read each step (Term.value)
            self.named[node] = self.names.fresh(describe(node, self.graph, {})) if node.op is Ops.WEIGHT else self.names.claim(node.arg)
            lines.append(f'    {self.named[node]} = inputs["{node.arg}"]')
        return lines

    def assign(self, node: Expr, hint: str | None = None, *, no_grad: bool = False, detached: frozenset[Expr] = frozenset(),
               qualifier: str | None = None, prefer: str | None = None, fallback: Expr | None = None) -> str:
        code = self.renderer.text(node, detached)
        name = self.names.fresh(hint or describe(node, self.graph, self.named), qualifier)
        self.named[node] = name
        self.body.add(f"{name} = {code}", origin_comment(self.graph, node, prefer, fallback), no_grad)
        return name

    def function(self, signature: str, doc: str, returns: Sequence[str], decorator: str | None = None,
                 returns_list: bool = False) -> str:
        opening, closing = ("[", "]") if returns_list else ("{", "}")
        head = [decorator] if decorator else []
        return "\n".join([*head, f"def {signature}:", f'    """{doc}"""', *self.prologue, *self.body.text(),
                          f"    return {opening}", *(f"        {item}," for item in returns), f"    {closing}"])


def served(roots: Sequence[Expr]) -> dict[Expr, Expr]:
    """For each node, the first root (in order) that uses it: where a lowering's intermediate points."""
    first: dict[Expr, Expr] = {}
    for root in roots:
        for node in root.walk():
            first.setdefault(node, root)
    return first


def needs_line(node: Expr, graph: Graph, uses: Mapping[Expr, int], results: Iterable[Expr]) -> bool:
    """Whether `node` gets a line of its own (Note [Generated names])."""
    if node.op in LEAVES:
        return False
    return (node.op in CALLS or node.op in OWN_LINE or node in results
            or node in graph.names or uses.get(node, 0) > 1)


class Root(NamedTuple):
    """A value a straight-line function computes: its variable's name (or None), the spec key its
    origins are looked for under first (`players.D.`), and the qualifier its values take where a
    name is already another value's (the player: `sr1_G_ref`, a frozen S's `sr1` beside G's)."""
    node: Expr
    hint: str | None = None
    prefer: str | None = None
    qualifier: str | None = None


def straight_line(writer: FunctionWriter, roots: Sequence[Root]) -> None:
    """Lines computing every root, each value once, named for the first root that uses it."""
    order: dict[Expr, None] = {}
    for root in roots:
        for node in root.node.walk():
            order.setdefault(node, None)
    uses = consumers(order)
    hints = {}
    first: dict[Expr, Root] = {}
    for root in roots:
        hints.setdefault(root.node, root.hint)
        first.setdefault(root.node, root)
    serves = served([root.node for root in roots])
    for node in order:
        if node not in writer.named and needs_line(node, writer.graph, uses, hints):
            root = first[serves[node]]
            writer.assign(node, hints.get(node), qualifier=root.qualifier, prefer=root.prefer, fallback=root.node)
