"""A scene drawn to PNG with matplotlib (the Agg canvas: no display, no system dependency).

The PNG draws the same scene as the SVG, item by item with rising z-order, at `PNG_SCALE`
pixels per scene pixel. matplotlib is imported only when a PNG is written.
"""

from __future__ import annotations

import os

from lossgraph.views.picture.scene import Arrowhead, Box, Curve, Scene, Text
from lossgraph.views.picture.style import DASH, PNG_SCALE


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
