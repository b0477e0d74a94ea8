"""The diagram model: what `lossgraph graph` draws, as nodes and coloured edges (before layout).

The diagram is a DAG of what the objective computes, drawn from the IR as written (before
sigmoids and stable rewrites, so the names are the spec's own):

    data, random variables  ->  network applications and let-bound values  ->  terms  ->  players

Arithmetic between those (`-`, `^2`, `E[...]`) is folded into the edges: an edge joins each value
to the nearest pictured value that uses it. Each edge is coloured by what the gradient analysis
(`passes.gradients.analyse`) says about it:

- a player's colour, solid (`gradient`): the player's gradient flows along it (from its
  networks' parameters to its loss);
- a player's colour, dashed (`detached`): the player's loss uses the value *without* gradient (a
  generated image in the discriminator's step, a `stop_gradient`, a term constant for the player);
- grey (`plain`): data flow where no gradient passes (`x` into `G_XY(x)`).

An edge used by two players is one `Edge` per player. A computed value used by several players is
`double` and has a note saying who uses it and how. A network application's border has the colour
of the player whose optimizer updates that network.

The layout (layout.py) fills in the positions; the renderers (svg.py, png.py, dot.py) draw it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph
from lossgraph.compiler.ops import OPS, Ops
from lossgraph.compiler.printing import formula_text
from lossgraph.views.show import _draw_names
from lossgraph.views.picture.style import MUTED_COLOUR, PLAIN_COLOUR, PLAYER_COLOURS, TEXT_COLOUR, short, tint

_PICTURED = (Ops.DATA, Ops.RANDOM, Ops.APPLY, Ops.HEAD, Ops.FROZEN, Ops.GRAD, Ops.INTERPOLATE)


@dataclass
class Node:
    key: Any                      # an Expr, ("term", player, name) or ("player", name)
    kind: str                     # data | random | value | term | player (| dummy, in the layout)
    label: str                    # short name: data-label in the SVG, and what tests look for
    lines: list[tuple[str, str]]  # (text, style): style is label | detail | note
    title: str = ""               # tooltip
    stroke: str = "#555555"
    fill: str = "#ffffff"
    text_colour: str = TEXT_COLOUR
    stroke_width: float = 1.2
    double: bool = False          # used by several players
    dashed: bool = False          # a random draw
    radius: float = 6
    # filled in by the layout
    layer: int = 0
    dummy: bool = False
    width: float = 0
    height: float = 0
    x: float = 0
    y: float = 0                  # centre
    inputs: int = 0               # edge ends on the left side
    outputs: int = 0              # edge ends on the right side

    @property
    def top(self) -> float:
        return self.y - self.height / 2


@dataclass
class Edge:
    source: Node
    target: Node
    style: str                    # gradient | detached | plain
    player: str | None
    colour: str
    # filled in by the layout
    route: list[Node] = field(default_factory=list)  # dummies between source and target
    points: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Picture:
    """What `lossgraph graph` draws, before and after layout."""

    name: str
    subtitle: str
    players: list[tuple[str, str, str]]  # (player, colour, its networks)
    nodes: list[Node]
    edges: list[Edge]
    width: float = 0
    height: float = 0
    legend_top: float = 0


def legend_rows(picture: Picture) -> list[tuple[str, str, str]]:
    """(sample, colour, text): sample is solid | dashed | plain | double."""
    rows = [("solid", colour, f"{name}'s gradient: from {networks} to {name}'s loss") for name, colour, networks in picture.players]
    rows.append(("dashed", MUTED_COLOUR, "dashed, a player's colour: that player's loss uses the value without gradient (detached)"))
    rows.append(("plain", PLAIN_COLOUR, "grey: data flow that carries no gradient"))
    rows.append(("double", MUTED_COLOUR, "double border: a value used by several players; a box's colour: the player updating that network"))
    return rows


def _draw_text(draw) -> str:
    if draw.like is not None:
        return f"{draw.dist}_like({draw.like})"
    if draw.of is not None:
        return f"augmented({draw.of})"
    if draw.dist == "uniform" and (draw.low, draw.high) != (-1.0, 1.0):
        return f"uniform({draw.size}, {draw.low:g}, {draw.high:g})"
    return f"{draw.dist}({draw.size})"


def _kind_text(kind) -> str:
    return "image" if kind.kind == "image" and kind.size == 3 else f"{kind.kind}({kind.size})"


class _Text:
    """Formula text of pictured nodes, with let-bound values shown by their names."""

    def __init__(self, graph: Graph, pictured: Iterable[Expr]):
        self.graph = graph
        named = dict(graph.names) | _draw_names(graph)  # a draw inside a formula: one value, by name
        self.names = {node: name for node, name in named.items() if node in set(pictured)}

    def _printable(self, node: Expr) -> Expr | None:
        if node.op is Ops.FROZEN:
            return Expr(Ops.APPLY, node.args, node.arg)
        return None

    def formula(self, root: Expr, keep_root: bool = True) -> str:
        """`root` as text; every let-bound value below it (and `root` too unless `keep_root`) by name."""
        done: dict[Expr, Expr] = {}
        for node in root.walk():
            if node in self.names and (node is not root or not keep_root):
                done[node] = Expr(Ops.DATA, (), self.names[node])
                continue
            args = tuple(done[child] for child in node.args)
            rebuilt = node if args == node.args else node.replace(args=args)
            done[node] = self._printable(rebuilt) or rebuilt
        return formula_text(done[root])


def _pictured(node: Expr, graph: Graph) -> bool:
    if node.op in (Ops.APPLY, Ops.FROZEN):
        network = graph.networks.get(node.arg)
        return not (network and network.heads)  # a head-selecting call is pictured as its heads
    return node.op in _PICTURED or (node in graph.names and node.op is not Ops.CONST)


def _inputs(start: Iterable[Expr], is_pictured) -> dict[Expr, bool]:
    """The nearest pictured nodes below `start`: {node: True when every path crosses a stop_gradient}."""
    found: dict[Expr, bool] = {}
    stack = [(node, False) for node in start]
    seen: set[tuple[int, bool]] = set()
    while stack:
        node, cut = stack.pop()
        if (id(node), cut) in seen:
            continue
        seen.add((id(node), cut))
        if is_pictured(node):
            found[node] = found.get(node, True) and cut
            continue
        below = cut or node.op is Ops.STOP_GRADIENT
        stack.extend((child, below) for child in node.args)
    return found


def _reaches_loss(roots: Iterable[Expr]) -> set[Expr]:
    """Nodes the loss depends on differentiably: below `roots`, not below a stop_gradient."""
    seen: set[Expr] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.op is not Ops.STOP_GRADIENT:
            stack.extend(node.args)
    return seen


def loss_picture(graph: Graph, plans: Mapping[str, Any] | None = None, subtitle: str = "") -> Picture:
    """The nodes and coloured edges of `graph`'s objective (not yet laid out)."""
    if plans is None:
        from lossgraph.compiler.passes.gradients import analyse

        plans = analyse(graph)
    colours = {player.name: PLAYER_COLOURS[index % len(PLAYER_COLOURS)] for index, player in enumerate(graph.players)}
    owner = {name: network.player for name, network in graph.networks.items()}
    player_order = {player.name: index for index, player in enumerate(graph.players)}

    used: dict[Expr, set[str]] = {}
    order: list[Expr] = []
    for player in graph.players:
        for term in player.terms:
            for node in term.expr.walk():
                if node not in used:
                    used[node] = set()
                    order.append(node)
                used[node].add(player.name)
    is_pictured = lambda node: _pictured(node, graph)  # noqa: E731
    pictured = [node for node in order if is_pictured(node)]
    text = _Text(graph, pictured)
    grad = {name: plan.grad_nodes for name, plan in plans.items()}
    any_grad = frozenset().union(*grad.values()) if grad else frozenset()
    reach = {player.name: _reaches_loss(term.expr for term in player.terms) for player in graph.players}

    def who(players: Iterable[str]) -> list[str]:
        return sorted(players, key=lambda name: player_order[name])

    nodes: dict[Any, Node] = {}
    for expr in pictured:
        users = who(used[expr])
        if expr.op is Ops.DATA:
            node = Node(expr, "data", expr.arg, [(expr.arg, "label")], fill="#eeeeee", stroke="#8a8a8a")
            kind = graph.data.get(expr.arg)
            if kind is not None:
                node.lines.append((_kind_text(kind), "detail"))
            node.title = f"data {expr.arg}"
        elif expr.op is Ops.RANDOM:
            node = Node(expr, "random", expr.arg, [(expr.arg, "label")], fill="#fff6d8", stroke="#b8901a", dashed=True)
            draw = graph.random.get(expr.arg)
            if draw is not None:
                node.lines.append(("~ " + short(_draw_text(draw), 40), "detail"))
            node.title = f"random {expr.arg}"
        else:
            formula = text.formula(expr, keep_root=True)
            name = text.names.get(expr)
            if name is not None:
                node = Node(expr, "value", name, [(name, "label"), (short(formula), "detail")])
                node.title = f"{name} = {formula}"
                node.dashed = expr.op is Ops.INTERPOLATE  # drawn at random, as the random variables
            else:
                node = Node(expr, "value", formula, [(short(formula), "label")])
                node.title = formula
            network = expr.arg if expr.op in (Ops.APPLY, Ops.FROZEN) else None
            if expr.op is Ops.HEAD:
                network = expr.args[0].arg
            if network is not None and owner.get(network) in colours:
                node.stroke = colours[owner[network]]
                node.stroke_width = 2
            frozen = expr.op is Ops.FROZEN or (expr.op is Ops.HEAD and expr.args[0].op is Ops.FROZEN)
            if frozen:
                node.lines.append((f"{network}'s weights held constant", "note"))
            if len(users) > 1:
                node.double = True
                uses = [f"{user} (detached)" if expr not in grad.get(user, ()) or expr not in reach[user] else user
                        for user in users]
                node.lines.append(("used by " + ", ".join(uses), "note"))
        origin = graph.origin(expr)
        if origin is not None:
            node.title += f"\n{origin.file}:{origin.line}"
        nodes[expr] = node

    for player in graph.players:
        colour = colours[player.name]
        sense = "maximizes" if player.sense == "maximize" else "minimizes"
        plan = plans.get(player.name)
        for term in player.terms:
            weight = f" ×{term.weight:g}" if term.weight != 1.0 else ""
            if term.schedule is not None:  # a weight that changes with the iteration
                weight = f" ×w(i): {term.schedule.describe()}"
            formula = text.formula(term.expr, keep_root=False)
            node = Node(("term", player.name, term.name), "term", f"{player.name}/{term.name}",
                        [(term.name + weight, "label"), (short(formula), "detail")],
                        fill=tint(colour, 0.12), stroke=colour, stroke_width=1.6, radius=10)
            if weight:
                loose = 0 < OPS[term.expr.op].infix < OPS[Ops.MUL].infix  # 10 * (a + b), not 10 * a + b
                formula = ("w(i)" if term.schedule is not None else f"{term.weight:g}") + " * " + (f"({formula})" if loose else formula)
            node.title = f"{player.name}/{term.name} = {formula}"
            if plan is not None and term.name in plan.dead_terms:
                node.lines.append((f"constant for {player.name}: not computed in its step", "note"))
            nodes[node.key] = node
        node = Node(("player", player.name), "player", player.name,
                    [(player.name, "label"), (f"{sense} over", "detail"), (", ".join(player.stepped), "detail")],
                    fill=colour, stroke=colour, text_colour="#ffffff", stroke_width=2, radius=12)
        node.title = f"player {player.name}: {sense} the sum of its terms over {', '.join(player.stepped)}"
        nodes[node.key] = node

    edges: list[Edge] = []

    def connect(source: Node, target: Node, cut: bool, users: list[str], reaches) -> None:
        variants = []
        for user in users:
            carries = not cut and source.key in grad.get(user, ()) and reaches(user)
            if carries:
                variants.append(Edge(source, target, "gradient", user, colours[user]))
            elif source.key in any_grad:
                variants.append(Edge(source, target, "detached", user, colours[user]))
        edges.extend(variants or [Edge(source, target, "plain", None, PLAIN_COLOUR)])

    for expr in pictured:
        for below, cut in _inputs(expr.args, is_pictured).items():
            connect(nodes[below], nodes[expr], cut, who(used[expr]), lambda user, expr=expr: expr in reach[user])
    for player in graph.players:
        plan = plans.get(player.name)
        for term in player.terms:
            target = nodes[("term", player.name, term.name)]
            for below, cut in _inputs([term.expr], is_pictured).items():
                connect(nodes[below], target, cut, [player.name], lambda user: True)
            live = plan is None or term.name in plan.live_terms
            edges.append(Edge(target, nodes[("player", player.name)], "gradient" if live else "detached",
                              player.name, colours[player.name]))
    players = [(player.name, colours[player.name], ", ".join(player.stepped)) for player in graph.players]
    return Picture(graph.name, subtitle, players, list(nodes.values()), edges)
