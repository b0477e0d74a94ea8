"""`lossgraph graph`: the objective as an SVG, PNG or Graphviz picture (lossgraph/views/picture/)."""

import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from PIL import Image

import lossgraph
from lossgraph.cli import main
from lossgraph.views.picture import PLAYER_COLOURS, PNG_SCALE, spec_picture
from tests.conftest import SPECS

SVG = "{http://www.w3.org/2000/svg}"
GOLDEN = Path(__file__).parent / "golden"

STOP_GRADIENT_SPEC = """\
name: anchored
data: {x: image, y: image}
networks:
  G: {arch: unet, width: 8}
  D: {arch: patchgan, output: raw, width: 8}
let:
  fake: G(x)
players:
  D:
    networks: [D]
    minimize:
      adv: E[(D(y) - 1)^2] + E[D(fake)^2]
  G:
    networks: [G]
    minimize:
      adv: E[(D(fake) - 1)^2]
      held: E[l1(stop_gradient(fake) - y)]
"""


def _svg(tmp_path, spec="cyclegan"):
    path = tmp_path / "graph.svg"
    assert main(["graph", str(spec), "-o", str(path)]) == 0
    return path, ElementTree.parse(path).getroot()


def _nodes(root):
    return {group.get("data-label"): group for group in root.iter(f"{SVG}g") if "node" in group.get("class", "").split()}


def _edges(root):
    return [path for path in root.iter(f"{SVG}path") if "edge" in path.get("class", "").split()]


def _edge(edges, source, target, style, player=None):
    found = [e for e in edges if (e.get("data-from"), e.get("data-to")) == (source, target)
             and style in e.get("class").split() and e.get("data-player") == player]
    assert len(found) == 1, f"expected one {style} edge {source} -> {target} for {player}"
    return found[0]


def test_cyclegan_svg_names_values_terms_and_players(tmp_path, capsys):
    path, root = _svg(tmp_path)
    assert "wrote" in capsys.readouterr().out
    nodes = _nodes(root)
    expected = {"x", "y", "fake_y", "fake_x", "D_Y(y)", "D_X(x)", "D_Y(fake_y)", "D_X(fake_x)", "G_YX(fake_y)",
                "G_XY(fake_x)", "D/adv_Y", "D/adv_X", "G/adv", "G/cycle", "D", "G"}
    assert set(nodes) == expected
    texts = [text.text for text in root.iter(f"{SVG}text")]
    for shown in ("fake_y", "G_XY(x)", "G_YX(fake_y)", "cycle ×10", "D_Y(fake_y)"):
        assert shown in texts
    # every node's box carries a tooltip with its formula
    assert nodes["fake_y"].find(f"{SVG}title").text.startswith("fake_y = G_XY(x)")
    assert nodes["D"].get("class") == "node player" and nodes["G/cycle"].get("class") == "node term"


def test_gradient_paths_are_coloured_per_player_and_detached_inputs_dashed(tmp_path):
    _, root = _svg(tmp_path)
    edges = _edges(root)
    blue, red = PLAYER_COLOURS[0], PLAYER_COLOURS[1]  # D and G, in schedule order
    # D's loss uses the generated image without gradient: dashed, in D's colour
    detached = _edge(edges, "fake_y", "D_Y(fake_y)", "detached", "D")
    assert detached.get("stroke-dasharray") and detached.get("stroke") == blue
    # the same edge carries G's gradient: solid, in G's colour, drawn beside it
    through = _edge(edges, "fake_y", "D_Y(fake_y)", "gradient", "G")
    assert through.get("stroke-dasharray") is None and through.get("stroke") == red
    # what G_YX(G_XY(x)) feeds, at a glance: the cycle term, on G's gradient path
    assert _edge(edges, "fake_y", "G_YX(fake_y)", "gradient", "G").get("stroke") == red
    assert _edge(edges, "G_YX(fake_y)", "G/cycle", "gradient", "G").get("stroke") == red
    assert _edge(edges, "D_Y(y)", "D/adv_Y", "gradient", "D").get("stroke") == blue
    assert _edge(edges, "G/cycle", "G", "gradient", "G") is not None
    # data flow into a generator carries no gradient: one grey edge, no player
    plain = _edge(edges, "x", "fake_y", "plain")
    assert plain.get("stroke-dasharray") is None
    # nothing else is dashed: every detached edge is D's use of a generated value
    dashed = {(e.get("data-from"), e.get("data-to"), e.get("data-player")) for e in edges if e.get("stroke-dasharray")}
    assert dashed == {("fake_y", "D_Y(fake_y)", "D"), ("fake_x", "D_X(fake_x)", "D")}


def test_values_used_by_several_players_are_marked(tmp_path):
    _, root = _svg(tmp_path)
    nodes = _nodes(root)
    shared = {label for label, group in nodes.items() if "shared" in group.get("class").split()}
    assert shared == {"fake_y", "fake_x", "D_Y(fake_y)", "D_X(fake_x)"}
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert "used by D (detached), G" in texts  # fake_y: D uses it without gradient
    assert "used by D, G" in texts  # D_Y(fake_y): both players differentiate through it
    # a double border: a second, inset rectangle right after the shared node's group
    rectangles = list(root.iter(f"{SVG}rect"))
    box = nodes["fake_y"].find(f"{SVG}rect")
    inner = rectangles[rectangles.index(box) + 1]
    assert float(inner.get("x")) > float(box.get("x")) and float(inner.get("width")) < float(box.get("width"))


def test_stop_gradient_and_constant_terms_are_dashed(tmp_path):
    spec = tmp_path / "anchored.yaml"
    spec.write_text(STOP_GRADIENT_SPEC)
    _, root = _svg(tmp_path, spec)
    edges = _edges(root)
    # stop_gradient(fake): G's own generated image, used without gradient
    assert _edge(edges, "fake", "G/held", "detached", "G").get("stroke-dasharray")
    assert _edge(edges, "G/held", "G", "detached", "G").get("stroke-dasharray")  # constant for G
    assert _edge(edges, "fake", "D(fake)", "gradient", "G").get("stroke-dasharray") is None
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert "constant for G: not computed in its step" in texts


def test_png_has_the_scene_size_and_the_players_colours(tmp_path):
    path = tmp_path / "graph.png"
    assert main(["graph", "cyclegan", "-o", str(path)]) == 0
    picture = spec_picture("cyclegan")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (round(picture.width * PNG_SCALE), round(picture.height * PNG_SCALE))
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    counts = {colour: count for count, colour in colours}
    for hex_colour in PLAYER_COLOURS[:2]:
        rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        assert counts.get(rgb, 0) > 500, f"{hex_colour} barely drawn"
    assert counts.get((255, 255, 255), 0) > image.size[0] * image.size[1] // 3  # a white background


def test_layout_is_deterministic_and_boxes_do_not_overlap(tmp_path):
    first = spec_picture("cyclegan")
    second = spec_picture("cyclegan")
    assert [(n.label, n.x, n.y) for n in first.nodes] == [(n.label, n.x, n.y) for n in second.nodes]
    boxes = [(n.x - n.width / 2, n.top, n.x + n.width / 2, n.top + n.height) for n in first.nodes]
    for i, a in enumerate(boxes):
        assert 0 <= a[0] and a[2] <= first.width and 0 <= a[1] and a[3] <= first.height
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], "boxes overlap"
    # data on the left, players on the right
    x = {n.label: n.x for n in first.nodes}
    assert x["x"] < x["fake_y"] < x["G_YX(fake_y)"] < x["G/cycle"] < x["G"]


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_shipped_spec_draws(spec, tmp_path):
    path, root = _svg(tmp_path, spec)
    players = set(lossgraph.load(spec).players)
    nodes = _nodes(root)
    assert players and players <= set(nodes)
    assert all(nodes[player].get("class") == "node player" for player in players)
    assert _edges(root)


def test_frozen_networks_and_random_draws_are_labelled(tmp_path):
    _, root = _svg(tmp_path, "bicyclegan")
    nodes = _nodes(root)
    assert {"z", "eps", "z_enc", "fake_vae", "fake_lr", "E.mu(fake_lr)", "G/latent"} <= set(nodes)
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert "E's weights held constant" in texts and "~ normal(8)" in texts
    assert "random" in nodes["z"].get("class").split()


def test_a_bad_suffix_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "lossgraph", "graph", "cyclegan", "-o", str(tmp_path / "g.pdf")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "'.pdf' is not a picture format" in result.stderr
    assert all(suffix in result.stderr for suffix in (".svg", ".png", ".dot"))
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "g.pdf").exists()


def test_a_bad_spec_is_reported_at_its_place(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndata: {x: image}\nnetworks: {G: {arch: unet}}\nplayers: {G: {networks: [G], minimize: {a: \"E[l1(G(y))]\"}}}\n")
    assert main(["graph", str(bad), "-o", str(tmp_path / "bad.svg")]) == 2
    assert "bad.yaml:4:" in capsys.readouterr().err
    assert not (tmp_path / "bad.svg").exists()


def test_default_output_is_named_after_the_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["graph", "discogan"]) == 0
    ElementTree.parse(tmp_path / "discogan.svg")


def test_cyclegan_svg_matches_golden(tmp_path, accept):
    """The SVG is byte for byte what the picture drew before it was split into modules
    (tests/cli/golden/cyclegan.svg); after a deliberate change, `pytest --accept` and review the diff."""
    path, _ = _svg(tmp_path, "cyclegan")
    golden = GOLDEN / "cyclegan.svg"
    if accept:
        golden.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert path.read_text(encoding="utf-8") == golden.read_text(encoding="utf-8"), \
        "the cyclegan picture changed; review it, then pytest tests/cli/test_graph_picture.py --accept"


def test_a_derived_spec_names_its_parent_and_heads_by_name(tmp_path):
    _, root = _svg(tmp_path, "stargan-wgan-gp")
    nodes = _nodes(root)
    assert "grad(D.src(mix), mix)" in nodes and "mix" in nodes  # the head by name, never an index; the draw by its name
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert "a variant of stargan (paper: StarGAN: Unified Generative Adversarial Networks for Multi-Domain " \
           "Image-to-Image Translation (arXiv 1711.09020))" in texts


def test_a_weighted_sum_keeps_its_parentheses_in_the_tooltip(tmp_path):
    _, root = _svg(tmp_path)
    title = _nodes(root)["G/cycle"].find(f"{SVG}title").text
    assert title == "G/cycle = 10 * (E[l1(G_YX(fake_y) - x)] + E[l1(G_XY(fake_x) - y)])"
