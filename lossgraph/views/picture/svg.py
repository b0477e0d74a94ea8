"""A scene as a standalone SVG document, written by hand (no system dependency).

Boxes of nodes and the paths of edges carry the diagram's names as attributes (`class="node
value shared"`, `data-label`, `data-from`, `data-to`, `data-player`), and a box's `<title>` is
its tooltip, so a browser shows the full formula and a test can find any node or edge.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from lossgraph.views.picture.scene import Arrowhead, Box, Curve, Scene, Text
from lossgraph.views.picture.style import DASH, FONT_FAMILY


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
