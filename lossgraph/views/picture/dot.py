"""The diagram as Graphviz source: `lossgraph graph SPEC -o cyclegan.dot`, rendered anywhere with
`dot -Tsvg cyclegan.dot -o cyclegan.svg` (or an online viewer, or a docs toolchain).

Graphviz does its own layout, so the source is written from the diagram (diagram.py) before
ours: every node and every edge of the model, with the same colours, dashes and double borders
as the SVG, the terms in one rank and the players in the last; the graph's label holds the title and
the legend. A node's DOT id is its label
(`"fake_y"`, `"D_Y(fake_y)"`, `"G/cycle"`); its box shows its text lines as an HTML-like label
(the name bold, notes italic), and its tooltip the full formula and spec line. An edge used by
two players is two edges, one per player, which Graphviz draws side by side.

Quoting (Note [DOT strings]): in a quoted id `"` is written `\\"`, and since labels and tooltips
are escString, a backslash is doubled and a line break is `\\n`; in an HTML-like label `& < > "`
are entities. Nothing else needs escaping, and the file is UTF-8 as Graphviz reads by default.
"""

from __future__ import annotations

from lossgraph.views.picture.diagram import Edge, Node, Picture, legend_rows
from lossgraph.views.picture.style import DETAIL_SIZE, EDGE_WIDTHS, LABEL_SIZE, MUTED_COLOUR, NOTE_SIZE, SIZES, TITLE_SIZE

FONT = "DejaVu Sans Mono"
POINTS = 0.75  # a scene pixel in typographic points, so the Graphviz text matches the SVG's
_SAMPLES = {"solid": "━━━▶", "dashed": "╍╍╍▶", "plain": "───▶", "double": "[══]"}


def quoted(text: str) -> str:
    """A DOT quoted string holding `text` (Note [DOT strings])."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _points(size: float) -> str:
    return f"{size * POINTS:g}"


def _attributes(pairs: dict[str, str]) -> str:
    return "[" + ", ".join(f"{key}={value}" for key, value in pairs.items()) + "]"


def _label(node: Node) -> str:
    rows = []
    for text, style in node.lines:
        cell = _html(text)
        if style == "label":
            cell = f"<b>{cell}</b>"
        elif style == "note":
            cell = f"<i>{cell}</i>"
        colour = node.text_colour if style != "note" or node.kind == "player" else MUTED_COLOUR
        rows.append(f'<font point-size="{_points(SIZES[style])}" color="{colour}">{cell}</font>')
    return "<" + "<br/>".join(rows) + ">"


def node_ids(picture: Picture) -> dict[int, str]:
    """Each node's DOT id (by `id(node)`): its label, made unique with `#2`, `#3` should two labels meet."""
    ids: dict[int, str] = {}
    taken: set[str] = set()
    for node in picture.nodes:
        name, count = node.label, 1
        while name in taken:
            count += 1
            name = f"{node.label}#{count}"
        taken.add(name)
        ids[id(node)] = name
    return ids


def _node(node: Node, name: str) -> str:
    styles = ["rounded", "filled"] + (["dashed"] if node.dashed else [])
    pairs = {
        "label": _label(node),
        "class": quoted(f"node {node.kind}" + (" shared" if node.double else "")),
        "style": quoted(",".join(styles)),
        "color": quoted(node.stroke),
        "fillcolor": quoted(node.fill),
        "penwidth": f"{node.stroke_width:g}",
        "tooltip": quoted(node.title),
    }
    if node.double:
        pairs["peripheries"] = "2"
    return f"  {quoted(name)} {_attributes(pairs)};"


def _edge(edge: Edge, ids: dict[int, str]) -> str:
    pairs = {
        "class": quoted(f"edge {edge.style}"),
        "color": quoted(edge.colour),
        "penwidth": f"{EDGE_WIDTHS[edge.style]:g}",
    }
    if edge.style == "detached":
        pairs["style"] = "dashed"
    if edge.player:
        pairs["tooltip"] = quoted(f"{edge.player}: " + ("gradient" if edge.style == "gradient" else "used without gradient"))
    return f"  {quoted(ids[id(edge.source)])} -> {quoted(ids[id(edge.target)])} {_attributes(pairs)};"


def _heading(picture: Picture) -> str:
    """The graph's label, an HTML-like table: the title, the subtitle, then the legend's rows."""
    rows = [f'<tr><td colspan="2" align="left"><font point-size="{_points(TITLE_SIZE)}"><b>'
            f'{_html(picture.name)}: the loss graph</b></font></td></tr>']
    if picture.subtitle:
        rows.append(f'<tr><td colspan="2" align="left"><font point-size="{_points(DETAIL_SIZE)}" color="{MUTED_COLOUR}">'
                    f'{_html(picture.subtitle)}</font></td></tr>')
    for sample, colour, text in legend_rows(picture):
        rows.append(f'<tr><td align="left"><font color="{colour}">{_SAMPLES[sample]}</font></td>'
                    f'<td align="left"><font point-size="{_points(NOTE_SIZE)}" color="{MUTED_COLOUR}">{_html(text)}</font></td></tr>')
    return f'<<table border="0" cellspacing="1" cellpadding="1">{"".join(rows)}</table>>'


def render_dot(picture: Picture) -> str:
    """Graphviz source of the diagram (laid out or not: the positions are not used)."""
    ids = node_ids(picture)
    title = f"{picture.name}: the loss graph" + (f"\n{picture.subtitle}" if picture.subtitle else "")
    out = [f"// {line}" for line in title.splitlines()]
    out += [f"// render with: dot -Tsvg {picture.name}.dot -o {picture.name}.svg", f"digraph {quoted(picture.name)} {{"]
    out.append("  " + _attributes({"rankdir": "LR", "label": _heading(picture), "labelloc": "t", "labeljust": "l",
                                   "fontname": quoted(FONT), "fontsize": _points(TITLE_SIZE), "nodesep": "0.25",
                                   "ranksep": "0.9", "bgcolor": quoted("#ffffff")}).replace("[", "graph [", 1) + ";")
    out.append("  " + _attributes({"shape": "box", "fontname": quoted(FONT), "fontsize": _points(LABEL_SIZE),
                                   "margin": quoted("0.14,0.06")}).replace("[", "node [", 1) + ";")
    out.append("  " + _attributes({"arrowsize": "0.7"}).replace("[", "edge [", 1) + ";")
    for kind in ("data", "random", "value", "term", "player"):
        nodes = [node for node in picture.nodes if node.kind == kind]
        if nodes:
            out.append(f"  // {kind} nodes")
            out += [_node(node, ids[id(node)]) for node in nodes]
    for kind in ("term", "player"):  # one column each, as in the SVG
        members = " ".join(f"{quoted(ids[id(node)])};" for node in picture.nodes if node.kind == kind)
        if members:
            out.append(f"  {{ rank=same; {members} }}")
    out.append("  // edges: a player's colour, solid where its gradient flows, dashed where it uses the value detached")
    out += [_edge(edge, ids) for edge in picture.edges]
    out.append("}")
    return "\n".join(out) + "\n"
