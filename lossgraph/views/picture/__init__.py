"""The objective as a picture: `lossgraph graph SPEC -o cyclegan.svg` (or `.png`, or Graphviz `.dot`).

One idea a module, in the order a picture is made:

    diagram.py   the model: nodes (data, values, terms, players) and edges coloured by gradient
    layout.py    the layered layout: columns, crossing reduction, heights, edge ports (Note [Layered layout])
    scene.py     a laid-out picture as boxes, texts, curves and arrowheads in pixels
    svg.py       the scene as SVG, written by hand
    png.py       the scene drawn with matplotlib
    dot.py       the diagram as Graphviz source, laid out by Graphviz wherever it is rendered
    style.py     colours, type sizes and spacing shared by all of them
    output.py    a spec to a file, the format by its suffix (the `graph` command's entry point)

This package imports neither torch nor (outside `render_png`) matplotlib; it reads the compiler's
graph and never imports train, program or cli.
"""

from lossgraph.views.picture.diagram import Edge, Node, Picture, loss_picture
from lossgraph.views.picture.dot import render_dot
from lossgraph.views.picture.layout import layout
from lossgraph.views.picture.output import SUFFIXES, check_suffix, spec_diagram, spec_picture, write_picture
from lossgraph.views.picture.png import render_png
from lossgraph.views.picture.scene import Scene, scene
from lossgraph.views.picture.style import PLAYER_COLOURS, PNG_SCALE
from lossgraph.views.picture.svg import render_svg

__all__ = [
    "Edge", "Node", "Picture", "loss_picture", "layout", "SUFFIXES", "check_suffix", "spec_diagram",
    "spec_picture", "write_picture", "render_dot", "render_png", "Scene", "scene", "PLAYER_COLOURS", "PNG_SCALE", "render_svg",
]
