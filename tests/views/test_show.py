"""`lossgraph show`: the objective as math, unicode and LaTeX (lossgraph/views/show.py)."""

import re

import pytest

from lossgraph.cli import main
from lossgraph.compiler.ops import OPS, Ops
from lossgraph.views.show import _is_notation
from tests.conftest import SPECS

STARGAN_WGAN_GP = """\
stargan-wgan-gp, a variant of stargan (paper: StarGAN: Unified Generative Adversarial Networks for Multi-Domain Image-to-Image Translation (arXiv 1711.09020))

where
  fake = G(x, c_t)
  mix = interpolate(x, fake)

D minimizes over D:
  adv = 𝔼[D.src(fake)] - 𝔼[D.src(x)] + 10*𝔼[(norm(grad(D.src(mix), mix)) - 1)²]
  cls = 𝔼[ce(D.cls(x), c_s)]

G minimizes over G:
  adv = -𝔼[D.src(fake)]
  cls = 𝔼[ce(D.cls(fake), c_t)]
  rec = 10 · 𝔼[l1(x - G(fake, c_s))]
"""

CYCLEGAN_LATEX_D = r"""D minimizes over D_X, D_Y:
  adv_Y = \mathbb{E}\left[\left(D_{Y}{\left(y \right)} - 1\right)^{2}\right] + \mathbb{E}\left[D_{Y}{\left(fake_{y} \right)}^{2}\right]
  adv_X = \mathbb{E}\left[\left(D_{X}{\left(x \right)} - 1\right)^{2}\right] + \mathbb{E}\left[D_{X}{\left(fake_{x} \right)}^{2}\right]
"""

HINGE = """\
name: hinge
paper: Geometric GAN (arXiv 1705.02894)
data: {x: image}
random: {z: normal(8)}
networks:
  G: {arch: dcgan_generator}
  D: {arch: dcgan_discriminator, output: raw}
let:
  fake: G(z)
  unused: E[D(x)]
  scaled: sqrt(abs(D(x)))
players:
  D:
    networks: [D]
    minimize:
      hinge: E[relu(1 - D(x))] + E[relu(1 + D(stop_gradient(fake)))]
  G:
    networks: [G]
    minimize:
      adv: -E[D(fake)] + 0 * E[sigmoid(D(fake)) * softplus(D(fake)) * tanh(scaled)]
"""


def _show(capsys, *argv):
    assert main(["show", *argv]) == 0
    return capsys.readouterr().out


def _where(text):
    """{let name: its definition} of the `where` block."""
    block = text.split("where\n", 1)[1].split("\n\n", 1)[0] if "\nwhere\n" in text else ""
    return dict(line.strip().split(" = ", 1) for line in block.splitlines())


@pytest.mark.parametrize("latex", [False, True], ids=["unicode", "latex"])
@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_shipped_specs_show_no_internals(spec, latex, capsys):
    text = _show(capsys, str(spec), *(["--latex"] if latex else []))
    body = text.split("\n", 1)[1]  # the heading quotes the paper
    assert not re.search(r"\[\d+\]", body), "an internal head index leaked"
    assert "Max(" not in body and "Min(" not in body
    lets = _where(text)
    formulas = [line.split(" = ", 1)[1] for line in body.splitlines() if " = " in line]  # right-hand sides
    for name, definition in lets.items():
        others = " ".join(formulas).replace(definition, "", 1)
        symbol = re.escape(name) if not latex else "|".join(re.escape(form) for form in _latex_forms(name))
        assert re.search(rf"(?<![\w{{\\]){symbol}(?![\w}}])", others), f"let {name} is listed but nothing uses it"


def _latex_forms(name):
    """How sympy's LaTeX may write a let's name: fake_y as fake_{y}, mu1 as \\mu_{1}."""
    head, _, tail = name.partition("_")
    digits = re.match(r"([A-Za-z]+?)(\d+)$", name)
    forms = {name, f"{head}_{{{tail}}}" if tail else name}
    if digits:
        forms |= {f"{digits[1]}_{{{digits[2]}}}", f"\\{digits[1]}_{{{digits[2]}}}"}
    return forms


def test_stargan_wgan_gp_golden(capsys):
    assert _show(capsys, "stargan-wgan-gp") == STARGAN_WGAN_GP


def test_cyclegan_latex_squares_the_value_not_the_function(capsys):
    text = _show(capsys, "cyclegan", "--latex")
    assert CYCLEGAN_LATEX_D in text
    assert text.startswith("cyclegan: Unpaired Image-to-Image Translation")


def test_ops_are_shown_as_written(tmp_path, capsys):
    spec = tmp_path / "hinge.yaml"
    spec.write_text(HINGE)
    text = _show(capsys, str(spec))
    assert "hinge = 𝔼[relu(1 - D(x))] + 𝔼[relu(1 + D(stop_gradient(fake)))]" in text
    for written in ("sigmoid(D(fake))", "softplus(D(fake))", "tanh(scaled)", "scaled = sqrt(|D(x)|)"):
        assert written in text
    assert "unused" not in text and "Max(" not in text and "exp(" not in text
    latex = _show(capsys, str(spec), "--latex")
    assert r"\operatorname{relu}{\left(1 - D{\left(x \right)} \right)}" in latex
    assert r"\sqrt{\left|{D{\left(x \right)}}\right|}" in latex
    assert r"\operatorname{stop\_gradient}{\left(fake \right)}" in latex
    assert "unused" not in latex


SUMS = """\
name: sums
data: {x: image}
random: {z: normal(8)}
networks:
  G: {arch: dcgan_generator}
  D: {arch: dcgan_discriminator, output: raw}
let:
  a: E[D(x)]
  b: E[D(G(z))]
players:
  D:
    networks: [D]
    minimize:
      chain: a - b + a - b + a
      nested: a - (b - a) - (a + b)
  G: {networks: [G], minimize: {adv: -b}}
"""


def test_a_sum_read_left_to_right_has_no_brackets_and_keeps_those_the_math_needs(tmp_path, capsys):
    spec = tmp_path / "sums.yaml"
    spec.write_text(SUMS)
    text = _show(capsys, str(spec))
    assert "chain = a - b + a - b + a\n" in text
    assert "nested = a - (b - a) - (a + b)\n" in text
    latex = _show(capsys, str(spec), "--latex")
    assert "chain = a - b + a - b + a\n" in latex


def test_notation_or_definition_comes_from_the_op_table():
    definitions = {op for op in OPS if OPS[op].sympy is not None and not OPS[op].infix and not _is_notation(op)}
    assert {Ops.RELU, Ops.SIGMOID, Ops.SOFTPLUS, Ops.STOP_GRADIENT} <= definitions
    assert not definitions & {Ops.LOG, Ops.EXP, Ops.SQRT, Ops.ABS, Ops.TANH, Ops.MEAN, Ops.L1, Ops.CE, Ops.KL}


@pytest.mark.parametrize("extra, heading", [
    ("", "derived, a variant of cyclegan (paper: Unpaired Image-to-Image Translation using Cycle-Consistent "
         "Adversarial Networks (arXiv 1703.10593))"),
    ("paper: My workshop paper (2025)\n", "derived, a variant of cyclegan: My workshop paper (2025)"),
    ("paper: null\n", "derived, a variant of cyclegan"),
])
def test_a_derived_spec_says_what_it_is(tmp_path, capsys, extra, heading):
    spec = tmp_path / "derived.yaml"
    spec.write_text(f"extends: cyclegan\nname: derived\n{extra}")
    assert _show(capsys, str(spec)).splitlines()[0] == heading


def test_a_paper_given_as_an_override_is_the_specs_own(capsys):
    text = _show(capsys, "stargan-wgan-gp", "paper=Gulrajani et al. 2017")
    assert text.splitlines()[0] == "stargan-wgan-gp, a variant of stargan: Gulrajani et al. 2017"
    assert _show(capsys, "cyclegan", "paper=Mine").splitlines()[0] == "cyclegan: Mine"
