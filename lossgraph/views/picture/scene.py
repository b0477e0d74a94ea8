"""A laid-out picture as a scene: boxes, texts, curves and arrowheads in pixel coordinates.

The scene is what the SVG and PNG renderers draw, item by item in order (later items on top):
the title, the edges (plain, then detached, then gradient, so gradient paths stay visible),
the boxes with their text, and the legend. It holds no decisions of its own about the
objective; those are in the diagram (diagram.py) and the layout (layout.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lossgraph.views.picture.diagram import Picture, legend_rows
from lossgraph.views.picture.style import (ARROW, CHAR_WIDTH, DETAIL_SIZE, EDGE_WIDTHS, LEGEND_ROW, LINE_GAP, MARGIN, MUTED_COLOUR,
                                           SIZES, TEXT_COLOUR, TITLE_SIZE, lines_height, short)


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
        room = int((picture.width - 2 * MARGIN) / (DETAIL_SIZE * CHAR_WIDTH))  # characters the picture is wide
        items.append(Text(MARGIN, MARGIN + TITLE_SIZE + LINE_GAP + DETAIL_SIZE + 2, short(picture.subtitle, max(140, room)),
                          DETAIL_SIZE, MUTED_COLOUR, anchor="start"))

    labels = {id(node): node.label for node in picture.nodes}
    draw_order = {"plain": 0, "detached": 1, "gradient": 2}
    for edge in sorted(picture.edges, key=lambda e: draw_order[e.style]):
        attributes = {"class": f"edge {edge.style}", "data-from": labels[id(edge.source)], "data-to": labels[id(edge.target)]}
        if edge.player:
            attributes["data-player"] = edge.player
        items.append(Curve(_curve(edge.points, ARROW - 1), edge.colour, EDGE_WIDTHS[edge.style], edge.style == "detached", attributes))
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
        y = node.y - lines_height(node.lines) / 2
        for text, style in node.lines:
            size = SIZES[style]
            y += size
            colour = node.text_colour if style != "note" or node.kind == "player" else MUTED_COLOUR
            if style == "detail" and node.kind != "player":
                colour = "#333333"
            items.append(Text(node.x, y - size * 0.18, text, size, colour, bold=style == "label", italic=style == "note"))
            y += LINE_GAP
    items.extend(_legend(picture))
    return Scene(picture.width, picture.height, items)


def _legend(picture: Picture) -> list[Any]:
    items: list[Any] = []
    y = picture.legend_top
    for sample, colour, text in legend_rows(picture):
        middle = y + 9
        if sample == "double":
            items.append(Box(MARGIN, middle - 6, 36, 12, "#ffffff", colour, 1.2, 3))
            items.append(Box(MARGIN + 2.5, middle - 3.5, 31, 7, "none", colour, 0.8, 2))
        else:
            width = EDGE_WIDTHS[{"solid": "gradient", "dashed": "detached"}.get(sample, sample)]
            items.append(Curve([("M", (MARGIN, middle)), ("L", (MARGIN + 28, middle))], colour, width, sample == "dashed"))
            items.append(Arrowhead(((MARGIN + 36, middle), (MARGIN + 28, middle - 3.6), (MARGIN + 28, middle + 3.6)), colour))
        items.append(Text(MARGIN + 46, middle + DETAIL_SIZE * 0.35, text, DETAIL_SIZE, MUTED_COLOUR, anchor="start"))
        y += LEGEND_ROW
    return items
