"""The layered layout: a position for every box of a `Picture`, and points for every edge.

Note [Layered layout]: Sugiyama-style, in five steps, each a function below.

1. `assign_layers`: layers by longest path, sources pulled next to their first consumer; all
   terms in one column, the players in the last.
2. `add_dummies`: a chain of dummy nodes on each edge that skips layers, shared by the edge's
   per-player variants, so a long edge is routed like a box and bends only between columns.
3. `order_columns`: barycentre sweeps and neighbour swaps against crossings, keeping the best
   order seen. The players keep schedule order and the terms stay grouped by player, so a
   player's terms sit together next to it; every other column is free.
4. `place_vertically`: boxes start stacked, then repeated isotonic regression pulls each towards
   its neighbours' heights; pool-adjacent-violators keeps the column's order and gaps.
5. `route_edges`: ports spread along each box side, ordered by the other end's height, so
   arrows never share a point; an edge's points run port to port through its dummies.

Why by hand: the picture's constraints (one column of terms grouped by player, players in schedule
order, one lane per player on a shared edge) are a few lines here; a pure-Python Sugiyama library
(grandalf, last released in 2023) knows none of them, and networkx has no layered layout with
crossing reduction. A user who wants another layout writes `.dot` and lets Graphviz do it.

Everything is in scene pixels, y down; text widths come from style.text_width (monospace).
The layout is deterministic: the same picture always gets the same positions.
"""

from __future__ import annotations

import math
from typing import Iterable

from lossgraph.views.picture.diagram import Edge, Node, Picture, legend_rows
from lossgraph.views.picture.style import (COLUMN_GAP, DETAIL_SIZE, DUMMY_GAP, LEGEND_ROW, LINE_GAP, MARGIN, NODE_GAP,
                                           PAD_X, PAD_Y, PORT_GAP, TITLE_SIZE, SIZES, lines_height, text_width)

Link = tuple[Node, Node]
SWEEPS = 8           # rounds of crossing reduction
PLACEMENTS = 24      # rounds of vertical placement


def layout(picture: Picture) -> Picture:
    """Give every node a position and every edge its points (pixels, y down)."""
    for node in picture.nodes:
        node.inputs = sum(1 for edge in picture.edges if edge.target is node)
        node.outputs = sum(1 for edge in picture.edges if edge.source is node)
    assign_layers(picture)
    for node in picture.nodes:
        _measure(node)
    chains = add_dummies(picture)
    everything = picture.nodes + [dummy for chain in chains.values() for dummy in chain]
    depth = max(node.layer for node in everything) + 1
    layers: list[list[Node]] = [[] for _ in range(depth)]
    for node in everything:  # first-appearance order: data in spec order, terms in spec order
        layers[node.layer].append(node)
    links = _links(picture, chains)
    layers = order_columns(picture, layers, links)
    place_vertically(layers, links)
    graph_right, graph_bottom = _place_columns(picture, layers)
    route_edges(picture)
    legend = legend_rows(picture)
    legend_width = 52 + max(text_width(text, DETAIL_SIZE) for _, _, text in legend)
    picture.width = math.ceil(max(graph_right, legend_width + 2 * MARGIN))
    picture.height = math.ceil(graph_bottom + 24 + len(legend) * LEGEND_ROW + MARGIN)
    picture.legend_top = graph_bottom + 24
    return picture


def _measure(node: Node) -> None:
    widths = [text_width(text, SIZES[style]) for text, style in node.lines]
    node.width = max(widths) + 2 * PAD_X + (6 if node.double else 0)
    node.height = max(lines_height(node.lines) + 2 * PAD_Y + (6 if node.double else 0),
                      (max(node.inputs, node.outputs) + 1) * PORT_GAP)


def assign_layers(picture: Picture) -> None:
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


def add_dummies(picture: Picture) -> dict[tuple[int, int], list[Node]]:
    """One chain of dummies per (source, target) pair, shared by that pair's variants; each edge's route."""
    chains: dict[tuple[int, int], list[Node]] = {}
    for edge in picture.edges:
        pair = (id(edge.source), id(edge.target))
        if pair not in chains:
            chains[pair] = [Node(("dummy", pair, layer), "dummy", "", [], dummy=True, layer=layer)
                            for layer in range(edge.source.layer + 1, edge.target.layer)]
        edge.route = chains[pair]
    for pair, chain in chains.items():
        count = sum(1 for edge in picture.edges if (id(edge.source), id(edge.target)) == pair)
        for dummy in chain:
            dummy.height = max(1, count - 1) * PORT_GAP if count > 1 else 2
    return chains


def _links(picture: Picture, chains: dict[tuple[int, int], list[Node]]) -> list[Link]:
    """Each hop between neighbouring columns once, in edge order: source -> dummies -> target."""
    seen: set[tuple[int, int]] = set()
    links: list[Link] = []
    for pair, chain in chains.items():
        edge = next(e for e in picture.edges if (id(e.source), id(e.target)) == pair)
        path = [edge.source, *chain, edge.target]
        for a, b in zip(path, path[1:]):
            if (id(a), id(b)) not in seen:
                seen.add((id(a), id(b)))
                links.append((a, b))
    return links


def _neighbours(layers: list[list[Node]], links: list[Link]) -> tuple[dict[int, list[Node]], dict[int, list[Node]]]:
    """(successors, predecessors) of every node, by id."""
    successors: dict[int, list[Node]] = {id(node): [] for nodes in layers for node in nodes}
    predecessors: dict[int, list[Node]] = {id(node): [] for nodes in layers for node in nodes}
    for a, b in links:
        successors[id(a)].append(b)
        predecessors[id(b)].append(a)
    return successors, predecessors


def _crossings(upper: list[Node], lower: list[Node], links: list[Link]) -> int:
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


def order_columns(picture: Picture, layers: list[list[Node]], links: list[Link]) -> list[list[Node]]:
    """The order of each column with the fewest crossings found (Note [Layered layout], step 3)."""
    depth = len(layers)
    successors, predecessors = _neighbours(layers, links)
    fixed = {index for index, nodes in enumerate(layers) if nodes and nodes[0].kind == "player"}
    group_rank = {name: index for index, (name, _, _) in enumerate(picture.players)}

    def group(node: Node) -> int:
        return group_rank.get(node.key[1], 0) if node.kind == "term" else 0

    def total_crossings() -> int:
        return sum(_crossings(layers[i], layers[i + 1], links) for i in range(depth - 1))

    def local_crossings(index: int) -> int:
        count = 0
        if index > 0:
            count += _crossings(layers[index - 1], layers[index], links)
        if index < depth - 1:
            count += _crossings(layers[index], layers[index + 1], links)
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
    for _ in range(SWEEPS):
        sweep(range(depth - 2, -1, -1), successors, +1)
        sweep(range(1, depth), predecessors, -1)
        transpose()
        count = total_crossings()
        if count < best_count:
            best, best_count = [list(nodes) for nodes in layers], count
    return best


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


def place_vertically(layers: list[list[Node]], links: list[Link]) -> None:
    """Each node's centre height: stacked and centred, then pulled towards its neighbours."""
    successors, predecessors = _neighbours(layers, links)
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

    depth = len(layers)
    both = {key: predecessors[key] + successors[key] for key in predecessors}
    for _ in range(PLACEMENTS):
        for index in range(1, depth):
            place(layers[index], predecessors)
        for index in range(depth - 2, -1, -1):
            place(layers[index], successors)
        for index in range(depth):
            place(layers[index], both)


def _place_columns(picture: Picture, layers: list[list[Node]]) -> tuple[float, float]:
    """Each column's x, below the title; returns the graph's right and bottom edges."""
    title_height = MARGIN + TITLE_SIZE + (LINE_GAP + DETAIL_SIZE if picture.subtitle else 0) + 18
    top = min(node.top for nodes in layers for node in nodes)
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
    bottom = max(node.top + node.height for nodes in layers for node in nodes)
    return left - COLUMN_GAP + MARGIN, bottom


def route_edges(picture: Picture) -> None:
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
