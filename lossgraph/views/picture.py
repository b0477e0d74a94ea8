"""The objective as a picture: `lossgraph graph SPEC -o cyclegan.svg` (or `.png`).

The picture is a left-to-right DAG of what the objective computes, drawn from the IR as written
(before sigmoids and stable rewrites, so the names are the spec's own):

    data, random variables  ->  network applications and let-bound values  ->  terms  ->  players

Arithmetic between those (`-`, `^2`, `E[...]`) is folded into the edges: an edge joins each value
to the nearest pictured value that uses it. Each edge is coloured by what the gradient analysis
(`passes.gradients.analyse`) says about it:

- a player's colour, solid: the player's gradient flows along it (from its networks' parameters
  to its loss);
- a player's colour, dashed: the player's loss uses the value *without* gradient (a generated
  image in the discriminator's step, a `stop_gradient`, a term constant for the player);
- grey: plain data flow, where no gradient passes (`x` into `G_XY(x)`).

An edge used by two players is drawn once per player, side by side. A computed value used by
several players has a double border and a note saying who uses it and how. A network
application's border has the colour of the player whose optimizer updates that network.

Layout (Note [Layered layout]): Sugiyama-style. Layers by longest path (sources pulled next to
their first consumer; all terms in one column, the players in the last), dummy nodes on edges that
skip layers, barycentre sweeps against crossings, then vertical positions by repeated isotonic
regression towards each node's neighbours (pool-adjacent-violators keeps order and spacing).
Edges leave and enter boxes at ports spread along their sides, ordered by the other end's
height, so arrows never share a point.

The layout produces a `Scene` of boxes, texts, curves and arrowheads in pixel coordinates; the
SVG is written by hand (no system dependency) and the PNG draws the same scene with matplotlib.
Text is monospace so its width is known without font metrics.

This module imports neither torch nor (outside `render_png`) matplotlib.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping
from xml.sax.saxutils import escape, quoteattr

from lossgraph.language.errors import LossgraphError
from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph
from lossgraph.compiler.ops import Ops
from lossgraph.compiler.printing import formula_text

SUFFIXES = (".svg", ".png")

PLAYER_COLOURS = ("#1f6fb4", "#d0342c", "#2a9d3a", "#8e44ad", "#e07b00", "#8c564b", "#d6338f", "#17a2b8")
PLAIN_COLOUR = "#9a9a9a"
TEXT_COLOUR = "#1e1e1e"
MUTED_COLOUR = "#5f5f5f"
FONT_FAMILY = "DejaVu Sans Mono, Menlo, Consolas, monospace"
CHAR_WIDTH = 0.602  # advance of a DejaVu Sans Mono character, in ems

LABEL_SIZE = 13
DETAIL_SIZE = 11
NOTE_SIZE = 10
TITLE_SIZE = 16
LINE_GAP = 4           # between text lines in a box
PAD_X = 10             # inside a box, left and right of the text
PAD_Y = 7              # inside a box, above and below the text
PORT_GAP = 7           # between two edge ends on one side of a box
NODE_GAP = 16          # between two boxes in a column
DUMMY_GAP = 10         # between a box and an edge passing through its column
COLUMN_GAP = 86        # between two columns, where the edges curve
MARGIN = 24
ARROW = 8              # length of an arrowhead
MAX_TEXT = 52          # characters of a formula shown in a box (the tooltip has all of it)
DASH = (6, 4)
PNG_SCALE = 2          # PNG pixels per scene pixel

_PICTURED = (Ops.DATA, Ops.RANDOM, Ops.APPLY, Ops.HEAD, Ops.FROZEN, Ops.GRADIENT_PENALTY)


# ----------------------------------------------------------------------------- the graph to draw


@dataclass
class Node:
    key: Any                      # an Expr, ("term", player, name) or ("player", name)
    kind: str                     # data | random | value | term | player
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


def _short(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tint(colour: str, amount: float) -> str:
    """`colour` mixed with white: 0 is white, 1 is the colour."""
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    mix = [round(255 - (255 - c) * amount) for c in (red, green, blue)]
    return "#{:02x}{:02x}{:02x}".format(*mix)


def _draw_text(draw) -> str:
    if draw.like is not None:
        return f"{draw.dist}_like({draw.like})"
    if draw.dist == "uniform" and (draw.low, draw.high) != (-1.0, 1.0):
        return f"uniform({draw.size}, {draw.low:g}, {draw.high:g})"
    return f"{draw.dist}({draw.size})"


def _kind_text(kind) -> str:
    return "image" if kind.kind == "image" and kind.size == 3 else f"{kind.kind}({kind.size})"


class _Text:
    """Formula text of pictured nodes, with let-bound values shown by their names."""

    def __init__(self, graph: Graph, pictured: Iterable[Expr]):
        self.graph = graph
        self.names = {node: name for node, name in graph.names.items() if node in set(pictured)}

    def _printable(self, node: Expr) -> Expr | None:
        if node.op is Ops.FROZEN:
            return Expr(Ops.APPLY, node.args, node.arg)
        if node.op is Ops.GRADIENT_PENALTY:
            network = Expr(Ops.DATA, (), node.arg[0])
            return Expr(Ops.APPLY, (network, *node.args), "gp")
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
                node.lines.append(("~ " + _short(_draw_text(draw), 40), "detail"))
            node.title = f"random {expr.arg}"
        else:
            formula = text.formula(expr, keep_root=True)
            name = graph.names.get(expr)
            if name is not None:
                node = Node(expr, "value", name, [(name, "label"), (_short(formula), "detail")])
                node.title = f"{name} = {formula}"
            else:
                node = Node(expr, "value", formula, [(_short(formula), "label")])
                node.title = formula
            network = expr.arg if expr.op in (Ops.APPLY, Ops.FROZEN) else None
            if expr.op is Ops.HEAD:
                network = expr.args[0].arg
            elif expr.op is Ops.GRADIENT_PENALTY:
                network = expr.arg[0]
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
            formula = text.formula(term.expr, keep_root=False)
            node = Node(("term", player.name, term.name), "term", f"{player.name}/{term.name}",
                        [(term.name + weight, "label"), (_short(formula), "detail")],
                        fill=_tint(colour, 0.12), stroke=colour, stroke_width=1.6, radius=10)
            node.title = f"{player.name}/{term.name} = {term.weight:g} * {formula}" if weight else f"{player.name}/{term.name} = {formula}"
            if plan is not None and term.name in plan.dead_terms:
                node.lines.append((f"constant for {player.name}: not computed in its step", "note"))
            nodes[node.key] = node
        node = Node(("player", player.name), "player", player.name,
                    [(player.name, "label"), (f"{sense} over", "detail"), (", ".join(player.networks), "detail")],
                    fill=colour, stroke=colour, text_colour="#ffffff", stroke_width=2, radius=12)
        node.title = f"player {player.name}: {sense} the sum of its terms over {', '.join(player.networks)}"
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
    players = [(player.name, colours[player.name], ", ".join(player.networks)) for player in graph.players]
    return Picture(graph.name, subtitle, players, list(nodes.values()), edges)


# ----------------------------------------------------------------------------- layout


def _text_width(text: str, size: float) -> float:
    return len(text) * size * CHAR_WIDTH


_SIZES = {"label": LABEL_SIZE, "detail": DETAIL_SIZE, "note": NOTE_SIZE}


def _measure(node: Node) -> None:
    widths = [_text_width(text, _SIZES[style]) for text, style in node.lines]
    text_height = sum(_SIZES[style] for _, style in node.lines) + LINE_GAP * (len(node.lines) - 1)
    node.width = max(widths) + 2 * PAD_X + (6 if node.double else 0)
    node.height = max(text_height + 2 * PAD_Y + (6 if node.double else 0),
                      (max(node.inputs, node.outputs) + 1) * PORT_GAP)


def _layers(picture: Picture) -> None:
    """Longest-path layers; sources next to their first consumer; terms, then players, last."""
    inputs: dict[int, list[Node]] = {id(node): [] for node in picture.nodes}
    consumers: dict[int, list[Node]] = {id(node): [] for node in picture.nodes}
    for edge in picture.edges:
        if edge.source not in inputs[id(edge.target)]:
            inputs[id(edge.target)].append(edge.source)
            consumers[id(edge.source)].append(edge.target)
    values = [node for node in picture.nodes if node.kind not in ("term", "player")]
    layer: dict[int, int] = {}

    def depth(node: Node) -> int:
        if id(node) not in layer:
            below = inputs[id(node)]
            layer[id(node)] = 1 + max((depth(other) for other in below), default=-1)
        return layer[id(node)]

    for node in values:
        depth(node)
    last_value = max((layer[id(node)] for node in values), default=0)
    term_layer = last_value + 1
    for node in values:
        node.layer = layer[id(node)]
    for node in values:
        if not inputs[id(node)]:  # a source: as late as its earliest consumer allows
            firsts = [other.layer if other.kind != "term" else term_layer for other in consumers[id(node)]]
            node.layer = max(0, min(firsts, default=1) - 1)
    for node in picture.nodes:
        if node.kind == "term":
            node.layer = term_layer
        elif node.kind == "player":
            node.layer = term_layer + 1


def _crossings(upper: list[Node], lower: list[Node], links: list[tuple[Node, Node]]) -> int:
    position_upper = {id(node): index for index, node in enumerate(upper)}
    position_lower = {id(node): index for index, node in enumerate(lower)}
    pairs = sorted((position_upper[id(a)], position_lower[id(b)]) for a, b in links
                   if id(a) in position_upper and id(b) in position_lower)
    count = 0
    for i in range(len(pairs)):
        for j in range(i + 1, len(pairs)):
            if pairs[i][0] < pairs[j][0] and pairs[i][1] > pairs[j][1]:
                count += 1
    return count


def _isotonic(targets: list[float], weights: list[float]) -> list[float]:
    """The non-decreasing sequence closest to `targets` in weighted least squares (PAV)."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for target, weight in zip(targets, weights):
        blocks.append([target, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean_b, weight_b, count_b = blocks.pop()
            mean_a, weight_a, count_a = blocks.pop()
            total = weight_a + weight_b
            blocks.append([(mean_a * weight_a + mean_b * weight_b) / total, total, count_a + count_b])
    out: list[float] = []
    for mean, _, count in blocks:
        out.extend([mean] * count)
    return out


def _gap(upper: Node, lower: Node) -> float:
    return (upper.height + lower.height) / 2 + (NODE_GAP if not (upper.dummy or lower.dummy) else DUMMY_GAP)


def layout(picture: Picture) -> Picture:
    """Give every node a position and every edge its points (pixels, y down)."""
    for node in picture.nodes:
        node.inputs = sum(1 for edge in picture.edges if edge.target is node)
        node.outputs = sum(1 for edge in picture.edges if edge.source is node)
    _layers(picture)
    for node in picture.nodes:
        _measure(node)

    # dummy nodes: one chain per (source, target) pair, shared by that pair's variants
    chains: dict[tuple[int, int], list[Node]] = {}
    dummies: list[Node] = []
    for edge in picture.edges:
        pair = (id(edge.source), id(edge.target))
        if pair not in chains:
            chain = []
            for layer in range(edge.source.layer + 1, edge.target.layer):
                dummy = Node(("dummy", pair, layer), "dummy", "", [], dummy=True, layer=layer)
                chain.append(dummy)
                dummies.append(dummy)
            chains[pair] = chain
        edge.route = chains[pair]
    for pair, chain in chains.items():
        count = sum(1 for edge in picture.edges if (id(edge.source), id(edge.target)) == pair)
        for dummy in chain:
            dummy.height = max(1, count - 1) * PORT_GAP if count > 1 else 2
    everything = picture.nodes + dummies
    depth = max(node.layer for node in everything) + 1
    layers: list[list[Node]] = [[] for _ in range(depth)]
    for node in everything:  # first-appearance order: data in spec order, terms in spec order
        layers[node.layer].append(node)

    links: set[tuple[int, int]] = set()
    link_list: list[tuple[Node, Node]] = []
    for pair, chain in chains.items():
        edge = next(e for e in picture.edges if (id(e.source), id(e.target)) == pair)
        path = [edge.source, *chain, edge.target]
        for a, b in zip(path, path[1:]):
            if (id(a), id(b)) not in links:
                links.add((id(a), id(b)))
                link_list.append((a, b))
    successors: dict[int, list[Node]] = {id(node): [] for node in everything}
    predecessors: dict[int, list[Node]] = {id(node): [] for node in everything}
    for a, b in link_list:
        successors[id(a)].append(b)
        predecessors[id(b)].append(a)

    # Note [Layered layout]: the players keep schedule order and the terms stay grouped by player,
    # so a player's terms sit together next to it; every other column is free.
    fixed = {index for index, nodes in enumerate(layers) if nodes and nodes[0].kind == "player"}
    group_rank = {name: index for index, (name, _, _) in enumerate(picture.players)}

    def group(node: Node) -> int:
        return group_rank.get(node.key[1], 0) if node.kind == "term" else 0

    def total_crossings() -> int:
        return sum(_crossings(layers[i], layers[i + 1], link_list) for i in range(depth - 1))

    def local_crossings(index: int) -> int:
        count = 0
        if index > 0:
            count += _crossings(layers[index - 1], layers[index], link_list)
        if index < depth - 1:
            count += _crossings(layers[index], layers[index + 1], link_list)
        return count

    def sweep(indices: Iterable[int], neighbours: dict[int, list[Node]], reference: int) -> None:
        for index in indices:
            if index in fixed:
                continue
            position = {id(node): rank for rank, node in enumerate(layers[index + reference])}
            scores = []
            for rank, node in enumerate(layers[index]):
                around = [position[id(other)] for other in neighbours[id(node)] if id(other) in position]
                scores.append((group(node), sum(around) / len(around) if around else rank, rank, node))
            layers[index] = [node for *_, node in sorted(scores, key=lambda item: item[:3])]

    def transpose() -> None:
        """Swap neighbours in a column while that removes crossings."""
        improved = True
        while improved:
            improved = False
            for index in range(depth):
                if index in fixed:
                    continue
                nodes = layers[index]
                for rank in range(len(nodes) - 1):
                    if group(nodes[rank]) != group(nodes[rank + 1]):
                        continue
                    before = local_crossings(index)
                    nodes[rank], nodes[rank + 1] = nodes[rank + 1], nodes[rank]
                    if local_crossings(index) < before:
                        improved = True
                    else:
                        nodes[rank], nodes[rank + 1] = nodes[rank + 1], nodes[rank]

    best = [list(nodes) for nodes in layers]
    best_count = total_crossings()
    for _ in range(8):
        sweep(range(depth - 2, -1, -1), successors, +1)
        sweep(range(1, depth), predecessors, -1)
        transpose()
        count = total_crossings()
        if count < best_count:
            best, best_count = [list(nodes) for nodes in layers], count
    layers = best

    # vertical positions: start stacked, then pull towards neighbours keeping order and gaps
    for nodes in layers:
        y = 0.0
        for index, node in enumerate(nodes):
            y += 0 if index == 0 else _gap(nodes[index - 1], node)
            node.y = y
    tallest = max(nodes[-1].y for nodes in layers if nodes)
    for nodes in layers:
        shift = (tallest - nodes[-1].y) / 2 if nodes else 0
        for node in nodes:
            node.y += shift

    def place(nodes: list[Node], neighbours: dict[int, list[Node]]) -> None:
        if not nodes:
            return
        offsets = [0.0]
        for upper, lower in zip(nodes, nodes[1:]):
            offsets.append(offsets[-1] + _gap(upper, lower))
        targets, weights = [], []
        for node, offset in zip(nodes, offsets):
            around = neighbours[id(node)]
            wanted = sum(other.y for other in around) / len(around) if around else node.y
            targets.append(wanted - offset)
            weights.append(len(around) + (2.0 if node.dummy else 1.0))  # dummies: keep long edges straight
        for node, value, offset in zip(nodes, _isotonic(targets, weights), offsets):
            node.y = value + offset

    both = {id(node): predecessors[id(node)] + successors[id(node)] for node in everything}
    for _ in range(24):
        for index in range(1, depth):
            place(layers[index], predecessors)
        for index in range(depth - 2, -1, -1):
            place(layers[index], successors)
        for index in range(depth):
            place(layers[index], both)

    # columns
    title_height = MARGIN + TITLE_SIZE + (LINE_GAP + DETAIL_SIZE if picture.subtitle else 0) + 18
    top = min(node.top for node in everything)
    left = MARGIN
    for nodes in layers:
        width = max((node.width for node in nodes), default=0)
        width = max(width, 30)
        for node in nodes:
            if node.dummy:
                node.width = width
            node.x = left + width / 2
            node.y += title_height - top
        left += width + COLUMN_GAP
    graph_right = left - COLUMN_GAP + MARGIN
    graph_bottom = max(node.top + node.height for node in everything)

    _route(picture)
    legend_height = _legend_height(picture)
    picture.width = math.ceil(max(graph_right, _legend_width(picture) + 2 * MARGIN))
    picture.height = math.ceil(graph_bottom + 24 + legend_height + MARGIN)
    picture.legend_top = graph_bottom + 24
    return picture


def _route(picture: Picture) -> None:
    """Ports on each box side, ordered by the other end's height; then each edge's points."""
    player_rank = {name: index for index, (name, _, _) in enumerate(picture.players)}

    def rank(edge: Edge) -> int:
        return player_rank.get(edge.player, -1)

    variants: dict[tuple[int, int], list[Edge]] = {}
    for edge in picture.edges:
        variants.setdefault((id(edge.source), id(edge.target)), []).append(edge)
    for group in variants.values():
        group.sort(key=rank)

    def lane(edge: Edge) -> float:
        group = variants[(id(edge.source), id(edge.target))]
        return (group.index(edge) - (len(group) - 1) / 2) * PORT_GAP

    def next_y(edge: Edge) -> float:
        return (edge.route[0].y if edge.route else edge.target.y) + lane(edge)

    def previous_y(edge: Edge) -> float:
        return (edge.route[-1].y if edge.route else edge.source.y) + lane(edge)

    out_port: dict[int, float] = {}
    in_port: dict[int, float] = {}
    for node in picture.nodes:
        leaving = sorted((edge for edge in picture.edges if edge.source is node), key=lambda e: (next_y(e), rank(e)))
        for index, edge in enumerate(leaving):
            out_port[id(edge)] = node.top + node.height * (index + 1) / (len(leaving) + 1)
        entering = sorted((edge for edge in picture.edges if edge.target is node), key=lambda e: (previous_y(e), rank(e)))
        for index, edge in enumerate(entering):
            in_port[id(edge)] = node.top + node.height * (index + 1) / (len(entering) + 1)
    for edge in picture.edges:
        points = [(edge.source.x + edge.source.width / 2, out_port[id(edge)])]
        for dummy in edge.route:
            y = dummy.y + lane(edge)
            points += [(dummy.x - dummy.width / 2, y), (dummy.x + dummy.width / 2, y)]
        points.append((edge.target.x - edge.target.width / 2, in_port[id(edge)]))
        edge.points = points


# ----------------------------------------------------------------------------- scene


@dataclass
class Box:
    x: float
    y: float
    width: float
    height: float
    fill: str
    stroke: str
    stroke_width: float
    radius: float
    dashed: bool = False
    attributes: dict[str, str] = field(default_factory=dict)
    title: str = ""


@dataclass
class Text:
    x: float
    y: float                      # baseline
    text: str
    size: float
    colour: str = TEXT_COLOUR
    bold: bool = False
    italic: bool = False
    anchor: str = "middle"        # start | middle


@dataclass
class Curve:
    commands: list[tuple[str, tuple[float, ...]]]  # ("M", (x, y)), ("L", (x, y)), ("C", (x1, y1, x2, y2, x, y))
    colour: str
    width: float
    dashed: bool = False
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class Arrowhead:
    points: tuple[tuple[float, float], ...]
    colour: str


@dataclass
class Scene:
    width: float
    height: float
    items: list[Any]


def _curve(points: list[tuple[float, float]], end_gap: float) -> list[tuple[str, tuple[float, ...]]]:
    """Smooth S-curves between consecutive points; straight runs through dummy columns."""
    commands: list[tuple[str, tuple[float, ...]]] = [("M", points[0])]
    pairs = list(zip(points, points[1:]))
    for index, ((x0, y0), (x1, y1)) in enumerate(pairs):
        if index == len(pairs) - 1:
            x1 -= end_gap
        if index % 2 == 1:  # across a dummy's column: a straight line
            commands.append(("L", (x1, y1)))
            continue
        bend = max(18.0, (x1 - x0) / 2)
        commands.append(("C", (x0 + bend, y0, x1 - bend, y1, x1, y1)))
    return commands


def scene(picture: Picture) -> Scene:
    """Boxes, texts and curves of a laid-out picture."""
    items: list[Any] = []
    items.append(Text(MARGIN, MARGIN + TITLE_SIZE, f"{picture.name}: the loss graph", TITLE_SIZE, bold=True, anchor="start"))
    if picture.subtitle:
        items.append(Text(MARGIN, MARGIN + TITLE_SIZE + LINE_GAP + DETAIL_SIZE + 2, _short(picture.subtitle, 140),
                          DETAIL_SIZE, MUTED_COLOUR, anchor="start"))

    labels = {id(node): node.label for node in picture.nodes}
    draw_order = {"plain": 0, "detached": 1, "gradient": 2}
    for edge in sorted(picture.edges, key=lambda e: draw_order[e.style]):
        width = {"plain": 1.3, "detached": 1.7, "gradient": 2.2}[edge.style]
        attributes = {"class": f"edge {edge.style}", "data-from": labels[id(edge.source)], "data-to": labels[id(edge.target)]}
        if edge.player:
            attributes["data-player"] = edge.player
        items.append(Curve(_curve(edge.points, ARROW - 1), edge.colour, width, edge.style == "detached", attributes))
        tip_x, tip_y = edge.points[-1]
        half = 3.6 if edge.style != "plain" else 3.0
        items.append(Arrowhead(((tip_x, tip_y), (tip_x - ARROW, tip_y - half), (tip_x - ARROW, tip_y + half)), edge.colour))

    for node in picture.nodes:
        left, top = node.x - node.width / 2, node.top
        attributes = {"class": f"node {node.kind}" + (" shared" if node.double else ""), "data-label": node.label}
        items.append(Box(left, top, node.width, node.height, node.fill, node.stroke, node.stroke_width, node.radius,
                         node.dashed, attributes, node.title))
        if node.double:
            inset = 3.5
            items.append(Box(left + inset, top + inset, node.width - 2 * inset, node.height - 2 * inset, "none",
                             node.stroke, max(1.0, node.stroke_width * 0.6), max(2.0, node.radius - inset)))
        text_height = sum(_SIZES[style] for _, style in node.lines) + LINE_GAP * (len(node.lines) - 1)
        y = node.y - text_height / 2
        for text, style in node.lines:
            size = _SIZES[style]
            y += size
            colour = node.text_colour if style != "note" or node.kind == "player" else MUTED_COLOUR
            if style == "detail" and node.kind != "player":
                colour = "#333333"
            items.append(Text(node.x, y - size * 0.18, text, size, colour, bold=style == "label", italic=style == "note"))
            y += LINE_GAP
    items.extend(_legend(picture))
    return Scene(picture.width, picture.height, items)


def _legend_rows(picture: Picture) -> list[tuple[str, str, str]]:
    """(sample, colour, text): sample is solid | dashed | plain | double."""
    rows = [("solid", colour, f"{name}'s gradient: from {networks} to {name}'s loss") for name, colour, networks in picture.players]
    rows.append(("dashed", MUTED_COLOUR, "dashed, a player's colour: that player's loss uses the value without gradient (detached)"))
    rows.append(("plain", PLAIN_COLOUR, "grey: data flow that carries no gradient"))
    rows.append(("double", MUTED_COLOUR, "double border: a value used by several players; a box's colour: the player updating that network"))
    return rows


def _legend_height(picture: Picture) -> float:
    return len(_legend_rows(picture)) * 18


def _legend_width(picture: Picture) -> float:
    return 52 + max(_text_width(text, DETAIL_SIZE) for _, _, text in _legend_rows(picture))


def _legend(picture: Picture) -> list[Any]:
    items: list[Any] = []
    y = picture.legend_top
    for sample, colour, text in _legend_rows(picture):
        middle = y + 9
        if sample == "double":
            items.append(Box(MARGIN, middle - 6, 36, 12, "#ffffff", colour, 1.2, 3))
            items.append(Box(MARGIN + 2.5, middle - 3.5, 31, 7, "none", colour, 0.8, 2))
        else:
            width = {"solid": 2.2, "dashed": 1.7, "plain": 1.3}[sample]
            items.append(Curve([("M", (MARGIN, middle)), ("L", (MARGIN + 28, middle))], colour, width, sample == "dashed"))
            items.append(Arrowhead(((MARGIN + 36, middle), (MARGIN + 28, middle - 3.6), (MARGIN + 28, middle + 3.6)), colour))
        items.append(Text(MARGIN + 46, middle + DETAIL_SIZE * 0.35, text, DETAIL_SIZE, MUTED_COLOUR, anchor="start"))
        y += 18
    return items


# ----------------------------------------------------------------------------- SVG and PNG


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _path_data(commands: list[tuple[str, tuple[float, ...]]]) -> str:
    return " ".join(f"{letter} " + " ".join(_number(value) for value in values) for letter, values in commands)


def render_svg(scene: Scene) -> str:
    """The scene as a standalone SVG document."""
    width, height = _number(scene.width), _number(scene.height)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family={quoteattr(FONT_FAMILY)}>',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for item in scene.items:
        if isinstance(item, Box):
            attributes = "".join(f" {key}={quoteattr(value)}" for key, value in item.attributes.items())
            dash = f' stroke-dasharray="{DASH[0]} {DASH[1] - 1}"' if item.dashed else ""
            rect = (f'<rect x="{_number(item.x)}" y="{_number(item.y)}" width="{_number(item.width)}" '
                    f'height="{_number(item.height)}" rx="{_number(item.radius)}" fill="{item.fill}" '
                    f'stroke="{item.stroke}" stroke-width="{_number(item.stroke_width)}"{dash}/>')
            if attributes or item.title:
                title = f"<title>{escape(item.title)}</title>" if item.title else ""
                out.append(f"<g{attributes}>{title}{rect}</g>")
            else:
                out.append(rect)
        elif isinstance(item, Text):
            style = (' font-weight="bold"' if item.bold else "") + (' font-style="italic"' if item.italic else "")
            out.append(f'<text x="{_number(item.x)}" y="{_number(item.y)}" font-size="{_number(item.size)}" '
                       f'fill="{item.colour}" text-anchor="{item.anchor}"{style}>{escape(item.text)}</text>')
        elif isinstance(item, Curve):
            attributes = "".join(f" {key}={quoteattr(value)}" for key, value in item.attributes.items())
            dash = f' stroke-dasharray="{DASH[0]} {DASH[1]}"' if item.dashed else ""
            out.append(f'<path{attributes} d="{_path_data(item.commands)}" fill="none" stroke="{item.colour}" '
                       f'stroke-width="{_number(item.width)}"{dash} stroke-linecap="round"/>')
        elif isinstance(item, Arrowhead):
            points = " ".join(f"{_number(x)},{_number(y)}" for x, y in item.points)
            out.append(f'<polygon points="{points}" fill="{item.colour}"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def render_png(scene: Scene, path: str | os.PathLike, scale: float = PNG_SCALE) -> tuple[int, int]:
    """Draw the scene with matplotlib (Agg, no display needed); returns the PNG's (width, height)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch, PathPatch, Polygon
    from matplotlib.path import Path as MplPath

    points = 0.72  # one scene pixel in typographic points at 100 dpi
    figure = Figure(figsize=(scene.width / 100, scene.height / 100), dpi=100 * scale)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, scene.width)
    axes.set_ylim(scene.height, 0)
    axes.axis("off")
    family = ["DejaVu Sans Mono", "monospace"]
    codes = {"M": [MplPath.MOVETO], "L": [MplPath.LINETO], "C": [MplPath.CURVE4] * 3}
    for z, item in enumerate(scene.items):
        if isinstance(item, Box):
            width = item.stroke_width * points
            patch = FancyBboxPatch((item.x, item.y), item.width, item.height,
                                   boxstyle=f"round,pad=0,rounding_size={item.radius}",
                                   facecolor="none" if item.fill == "none" else item.fill,
                                   edgecolor=item.stroke, linewidth=width, zorder=z)
            if item.dashed:
                patch.set_linestyle((0, (DASH[0] * points / width, (DASH[1] - 1) * points / width)))
            axes.add_patch(patch)
        elif isinstance(item, Text):
            axes.text(item.x, item.y, item.text, fontsize=item.size * points, color=item.colour, family=family,
                      weight="bold" if item.bold else "normal", style="italic" if item.italic else "normal",
                      ha="center" if item.anchor == "middle" else "left", va="baseline", zorder=z)
        elif isinstance(item, Curve):
            vertices, kinds = [], []
            for letter, values in item.commands:
                vertices += [values[i:i + 2] for i in range(0, len(values), 2)]
                kinds += codes[letter]
            width = item.width * points
            patch = PathPatch(MplPath(vertices, kinds), facecolor="none", edgecolor=item.colour, linewidth=width,
                              capstyle="round", zorder=z)
            if item.dashed:
                patch.set_linestyle((0, (DASH[0] * points / width, DASH[1] * points / width)))
            axes.add_patch(patch)
        elif isinstance(item, Arrowhead):
            axes.add_patch(Polygon(item.points, closed=True, facecolor=item.colour, edgecolor="none", zorder=z))
    figure.patch.set_facecolor("#ffffff")
    figure.savefig(os.fspath(path), format="png", dpi=100 * scale, facecolor="#ffffff")
    return round(scene.width * scale), round(scene.height * scale)


# ----------------------------------------------------------------------------- entry point


def check_suffix(path: str | os.PathLike) -> str:
    """The output format from `path`'s suffix; a LossgraphError for any other suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        shown = f"'{suffix}'" if suffix else "no suffix"
        raise LossgraphError(f"cannot write {os.fspath(path)}: {shown} is not a picture format lossgraph writes; "
                             f"name the file .svg (vector, no dependency) or .png (drawn with matplotlib)")
    return suffix[1:]


def spec_picture(spec) -> Picture:
    """The laid-out picture of a spec (object, path or built-in name), from its objective as written."""
    from lossgraph.compiler.passes import run_pipeline
    from lossgraph.compiler.passes.gradients import analyse
    from lossgraph.language.spec import load

    spec = load(spec)
    written, _, _ = run_pipeline(spec)  # also refuses a spec whose players cannot all learn
    subtitle = spec.paper or ""
    return layout(loss_picture(written, analyse(written), subtitle))


def write_picture(spec, path: str | os.PathLike) -> Picture:
    """Draw `spec`'s loss graph to `path` (.svg or .png); folders are created."""
    kind = check_suffix(path)
    picture = spec_picture(spec)
    drawn = scene(picture)
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise LossgraphError(f"cannot write {path}: it is a folder")
    if kind == "svg":
        path.write_text(render_svg(drawn), encoding="utf-8")
    else:
        render_png(drawn, path)
    return picture
