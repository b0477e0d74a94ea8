"""`lossgraph graph SPEC -o x.dot`: Graphviz source that parses and carries the whole diagram."""

import shutil
import subprocess
from collections import Counter

import pytest

from lossgraph.cli import main
from lossgraph.views.picture import PLAYER_COLOURS, spec_diagram
from lossgraph.views.picture.dot import node_ids, quoted, render_dot
from tests.conftest import SPECS
from tests.views.dot_reader import DotSyntaxError, Html, escstring, read_dot


def _player(attributes):
    """The player an edge belongs to, from its tooltip (`D: gradient`); None for a plain edge."""
    tooltip = attributes.get("tooltip")
    return escstring(tooltip).partition(":")[0] if tooltip else None


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_dot_parses_and_carries_every_node_and_edge(spec):
    picture = spec_diagram(spec)
    graph = read_dot(render_dot(picture))
    assert graph.directed and graph.name == picture.name
    ids = node_ids(picture)
    # every node of the model, and nothing else, under its label
    assert sorted(graph.nodes) == sorted(ids[id(node)] for node in picture.nodes)
    assert len(set(ids.values())) == len(picture.nodes)
    for node in picture.nodes:
        attributes = graph.nodes[ids[id(node)]]
        assert attributes["class"].split()[:2] == ["node", node.kind]
        assert ("shared" in attributes["class"].split()) == node.double == (attributes.get("peripheries") == "2")
        assert attributes["color"] == node.stroke and attributes["fillcolor"] == node.fill
        assert escstring(attributes["tooltip"]) == node.title
        assert isinstance(attributes["label"], Html)
        for text, _ in node.lines:  # each line of the box, HTML-escaped
            assert text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in attributes["label"].text
    # every edge, once per player that uses it, with its style and colour
    written = Counter((source, target, attributes["class"], attributes["color"], attributes.get("style"), _player(attributes))
                      for source, target, attributes in graph.edges)
    model = Counter((ids[id(e.source)], ids[id(e.target)], f"edge {e.style}", e.colour,
                     "dashed" if e.style == "detached" else None, e.player) for e in picture.edges)
    assert written == model
    # the terms share a column, the players the last one, as in the SVG
    ranks = dict((tuple(members), rank) for rank, members in graph.ranks)
    assert ranks == {tuple(ids[id(n)] for n in picture.nodes if n.kind == "term"): "same",
                     tuple(ids[id(n)] for n in picture.nodes if n.kind == "player"): "same"}
    assert graph.attributes["rankdir"] == "LR"


def test_cyclegan_dot_from_the_command_line(tmp_path, capsys):
    path = tmp_path / "pictures" / "cyclegan.dot"
    assert main(["graph", "cyclegan", "-o", str(path)]) == 0
    assert "wrote" in capsys.readouterr().out
    graph = read_dot(path.read_text(encoding="utf-8"))
    blue, red = PLAYER_COLOURS[:2]
    edges = {(s, t, a["color"], a.get("style")) for s, t, a in graph.edges}
    assert ("fake_y", "D_Y(fake_y)", blue, "dashed") in edges  # D uses G's image detached
    assert ("fake_y", "D_Y(fake_y)", red, None) in edges       # G's gradient passes through it
    assert ("x", "fake_y", "#9a9a9a", None) in edges           # plain data flow
    assert {"x", "y", "fake_y", "G/cycle", "D", "G"} <= set(graph.nodes)
    title = graph.attributes["label"].text
    assert "cyclegan: the loss graph" in title and "D's gradient" in title  # the title and the legend


def test_quoting_survives_quotes_backslashes_and_line_breaks():
    text = 'a "quoted" C:\\path\\to\\spec.yaml\nsecond line'
    graph = read_dot(f"digraph {{ {quoted('n')} [tooltip={quoted(text)}]; }}")
    assert escstring(graph.nodes["n"]["tooltip"]) == text


def test_the_reader_refuses_what_graphviz_would():
    for broken in ('digraph { a -> ; }', 'digraph { a [label="x] }', 'digraph { a [label=<<b>x</i>>]; }',
                   'graph { a -> b }', 'digraph { a } b'):
        with pytest.raises(DotSyntaxError):
            read_dot(broken)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graphviz_renders_it(tmp_path):
    path = tmp_path / "unit.dot"
    assert main(["graph", "unit", "-o", str(path)]) == 0
    result = subprocess.run(["dot", "-Tsvg", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "Error" not in result.stderr
    assert result.stdout.count('class="node') == len(spec_diagram("unit").nodes)
