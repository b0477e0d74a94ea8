"""`lossgraph graph SPEC -o FILE`: a spec's loss graph written to a file, the format by its suffix.

    .svg   the laid-out scene, written by hand (svg.py)
    .png   the same scene drawn with matplotlib (png.py)
    .dot   Graphviz source of the diagram, which Graphviz lays out itself (dot.py)

The picture is drawn from the objective as written (`run_pipeline`'s first graph), with the
gradient analysis of that graph colouring the edges.
"""

from __future__ import annotations

import os
from pathlib import Path

from lossgraph.language.errors import LossgraphError
from lossgraph.views.picture.diagram import Picture, loss_picture
from lossgraph.views.picture.dot import render_dot
from lossgraph.views.picture.layout import layout
from lossgraph.views.picture.png import render_png
from lossgraph.views.picture.scene import scene
from lossgraph.views.picture.svg import render_svg
from lossgraph.views.show import describe

SUFFIXES = (".svg", ".png", ".dot")


def check_suffix(path: str | os.PathLike) -> str:
    """The output format from `path`'s suffix; a LossgraphError for any other suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        shown = f"'{suffix}'" if suffix else "no suffix"
        raise LossgraphError(f"cannot write {os.fspath(path)}: {shown} is not a picture format lossgraph writes; "
                             f"name the file .svg (vector, no dependency), .png (drawn with matplotlib) or .dot (Graphviz source)")
    return suffix[1:]


def spec_diagram(spec) -> Picture:
    """The diagram of a spec (object, path or built-in name), from its objective as written; not laid out."""
    from lossgraph.compiler.passes.gradients import analyse
    from lossgraph.compiler.passes.pipeline import run_pipeline
    from lossgraph.language.spec import load

    spec = load(spec)
    written, _, _ = run_pipeline(spec)  # also refuses a spec whose players cannot all learn
    return loss_picture(written, analyse(written), describe(spec))  # a derived spec: "a variant of ..."


def spec_picture(spec) -> Picture:
    """The laid-out picture of a spec (object, path or built-in name), from its objective as written."""
    return layout(spec_diagram(spec))


def write_picture(spec, path: str | os.PathLike) -> Picture:
    """Draw `spec`'s loss graph to `path` (.svg, .png or .dot); folders are created."""
    kind = check_suffix(path)
    picture = spec_diagram(spec) if kind == "dot" else spec_picture(spec)  # Graphviz lays out a .dot itself
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise LossgraphError(f"cannot write {path}: it is a folder")
    if kind == "dot":
        path.write_text(render_dot(picture), encoding="utf-8")
    elif kind == "svg":
        path.write_text(render_svg(scene(picture)), encoding="utf-8")
    else:
        render_png(scene(picture), path)
    return picture
