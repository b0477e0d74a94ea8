"""`fid`, `kid` and `diversity` in `evaluate:`, the feature network they compare, and
`train.keep_best`: how a spec writes them and every mistake located (compiler/distributions.py,
language/names.py)."""

from __future__ import annotations

import pytest

import lossgraph
from lossgraph.language.errors import SpecError

SPEC = """\
name: metrics
data: {x: image, y: image, c: label(3)}
random: {z: normal(4)}
dataset: {builtin: shapes, pairing: paired, size: 16, test_size: 4, labels: {c: shape(y)}}
networks:
  G: {arch: unet, width: 4, depth: 1, norm: none}
  D: {arch: patchgan, width: 4, layers: 1, norm: none}
  C: {arch: classifier, classes: 3, width: 4, depth: 2}
judges:
  C: {minimize: "E[ce(C(y), c)]", steps: 2}
let:
  fake_y: G(x, z)
players:
  D: {networks: [D], minimize: {adv: "E[(D(y) - 1)^2] + E[D(fake_y)^2]"}}
  G: {networks: [G], minimize: {adv: "E[(D(fake_y) - 1)^2]"}}
train: {steps: 2, batch_size: 2, image_size: 8}
evaluate:
  error: E[l1(fake_y - y)]
  fid_XY: fid(fake_y, y)
  kid_XY: kid(G(x, z), y)
  spread: diversity(fake_y, 5)
"""


def compile_spec(tmp_path, text: str = SPEC, overrides=()):
    path = tmp_path / "metrics.yaml"
    path.write_text(text)
    return lossgraph.compile(lossgraph.load(path, overrides=list(overrides)))


def error(tmp_path, *overrides, text: str = SPEC) -> str:
    with pytest.raises(SpecError) as caught:
        compile_spec(tmp_path, text, overrides)
    message = str(caught.value)
    assert "Traceback" not in message and message.count("\n") < 20
    return message


def test_the_metrics_lower_to_their_image_formulas_and_a_judges_features(tmp_path):
    program = compile_spec(tmp_path)
    kinds = {metric.name: (metric.kind, len(metric.images), metric.draws) for metric in program.distributions}
    assert kinds == {"fid_XY": ("fid", 2, 0), "kid_XY": ("kid", 2, 0), "spread": ("diversity", 1, 5)}
    assert [name for name, _ in program.graph.evaluate] == ["error"]  # a batch metric stays one
    assert (program.features.kind, program.features.judge) == ("judge", "C")
    fid, kid = program.distributions[0], program.distributions[1]
    assert fid.images[0] == kid.images[0]  # G(x, z) written twice is one value: one feature pass
    default = compile_spec(tmp_path, SPEC.replace("diversity(fake_y, 5)", "diversity(fake_y)"))
    assert default.distributions[2].draws == 10


def test_the_generated_module_computes_their_images_only_where_a_spec_has_them(tmp_path):
    code = compile_spec(tmp_path).code
    assert "def distribution_images(nets, inputs):" in code and "def diversity_images(nets, inputs):" in code
    assert '"fid_XY/generated": fake_y,' in code and '"fid_XY/real": y,' in code and '"spread/outputs": fake_y,' in code
    plain = lossgraph.compile("pix2pix").code
    assert "distribution_images" not in plain and "diversity_images" not in plain


def test_fid_weights_choose_the_inception_network(tmp_path):
    program = compile_spec(tmp_path, overrides=["train.fid_weights=weights/pt_inception.pth"])
    assert (program.features.kind, program.features.weights) == ("inception", "weights/pt_inception.pth")
    judged = compile_spec(tmp_path, overrides=["train.fid_weights=w.pth", "train.features=C"])
    assert judged.features.kind == "judge"


def test_a_distribution_metric_inside_a_formula_or_a_loss_is_refused_at_its_place(tmp_path):
    message = error(tmp_path, text=SPEC.replace("fid_XY: fid(fake_y, y)", "fid_XY: 2 * fid(fake_y, y)"))
    assert "metrics.yaml:19:15: evaluate.fid_XY: fid(...) is a metric of the whole held-out set" in message
    assert "write it as an evaluate: entry of its own, e.g. fid_XY: fid(G_XY(x), y)" in message
    loss = error(tmp_path, "players.G.minimize.adv=kid(fake_y, y)")
    assert "players.G.minimize.adv: kid(...) is a metric of the whole held-out set" in loss


@pytest.mark.parametrize("override, expected", [
    ("evaluate.fid_XY=fid(fake_y)", "evaluate.fid_XY: fid takes 2 arguments, got 1 (write fid(generated, real)"),
    ("evaluate.spread=diversity(fake_y, 5, 6)", "diversity takes 1 or 2 arguments, got 3 (write diversity(outputs[, draws])"),
    ("evaluate.spread=diversity(G(x, y))", "diversity compares outputs for one input under fresh draws, but this depends on no random variable"),
    ("evaluate.spread=diversity(fake_y, 1)", "diversity's draws is a whole number from 2 to 100"),
    ("evaluate.spread=diversity(fake_y, z)", "diversity's draws is a whole number"),
    ("evaluate.fid_XY=fid(fake_y, c)", "fid's real is not an image batch (N, C, H, W): shape (2,)"),
    ("evaluate.kid_XY=kid(fake_y, D(y))", "kid compares sets of like images, but the generated are (3, 8, 8) and the real (1, 4, 4)"),
    ("evaluate.fid_XY=fid(fake_yy, y)", "unknown name 'fake_yy' (did you mean 'fake_y'?)"),
])
def test_mistakes_in_a_metric_are_located(tmp_path, override, expected):
    message = error(tmp_path, override)
    assert "<override 1>:1:" in message and expected in message


def test_the_argument_errors_point_into_the_file(tmp_path):
    message = error(tmp_path, text=SPEC.replace("fid(fake_y, y)", "fid(fake_y, yy)"))
    assert "metrics.yaml:19:23: evaluate.fid_XY: unknown name 'yy'" in message


def test_without_a_feature_network_the_error_says_what_to_give(tmp_path):
    without = SPEC.replace('judges:\n  C: {minimize: "E[ce(C(y), c)]", steps: 2}\n', "").replace(
        "  C: {arch: classifier, classes: 3, width: 4, depth: 2}\n", "")
    message = error(tmp_path, text=without)
    assert "metrics.yaml:16:11: evaluate.fid_XY: fid_XY, kid_XY, spread: fid compares the features of a network, and this spec has none" in message
    assert "train.fid_weights: PATH, or run with --fid-weights PATH" in message and "declare a judge" in message


def test_several_judges_need_a_choice(tmp_path):
    two = SPEC.replace("  C: {arch: classifier", "  C2: {arch: classifier, classes: 3, width: 4, depth: 2}\n  C: {arch: classifier").replace(
        '  C: {minimize: "E[ce(C(y), c)]", steps: 2}', '  C: {minimize: "E[ce(C(y), c)]", steps: 2}\n  C2: {minimize: "E[ce(C2(x), c)]", steps: 2}')
    message = error(tmp_path, text=two)
    assert "several judges could give the features to compare" in message and "train.features: one of C, C2" in message
    assert compile_spec(tmp_path, two, ["train.features=C2"]).features.judge == "C2"


def test_a_feature_network_is_a_judge_or_inception_with_its_weights(tmp_path):
    assert "train.features: 'D' is neither a judge nor inception" in error(tmp_path, "train.features=D")
    assert "did you mean 'inception'?" in error(tmp_path, "train.features=inceptoin")
    missing = error(tmp_path, "train.features=inception")
    assert "train.features: inception needs the FID Inception weights file" in missing and "--fid-weights PATH" in missing


def test_a_judge_applied_to_two_images_cannot_give_features(tmp_path):
    text = SPEC.replace('E[ce(C(y), c)]', 'E[ce(C(x, y), c)]')
    assert "judge 'C' is applied to 2 inputs, but a feature network takes one image" in error(tmp_path, text=text)


def test_the_images_have_the_channels_the_judge_reads(tmp_path):
    text = SPEC.replace("data: {x: image, y: image, c: label(3)}", "data: {x: image, y: image, g: image(1), c: label(3)}").replace(
        "dataset: {builtin: shapes, pairing: paired", "dataset: {builtin: shapes, styles: {x: flat, y: outlined, g: slate}, pairing: paired")
    message = error(tmp_path, "evaluate.fid_XY=fid(g, g)", text=text)
    assert "fid's images have 1 channels, but judge 'C' reads 3" in message


def test_the_names_are_reserved_for_the_metrics(tmp_path):
    assert "let name 'kid' is reserved" in error(tmp_path, "+let.kid=x")


def test_keep_best_names_an_evaluate_metric(tmp_path):
    program = compile_spec(tmp_path, overrides=["train.keep_best={metric: fid_XY, mode: min}"])
    assert (program.spec.train.keep_best.metric, program.spec.train.keep_best.mode) == ("fid_XY", "min")
    assert compile_spec(tmp_path, overrides=["train.keep_best.metric=error"]).spec.train.keep_best.mode == "min"
    message = error(tmp_path, "train.keep_best={metric: fid_xy, mode: min}")
    assert "<override 1>:1:26: train.keep_best.metric: unknown metric 'fid_xy'" in message
    assert "did you mean 'fid_XY'? (evaluate: defines error, fid_XY, kid_XY, spread)" in message
    assert "input should be 'min' or 'max'" in error(tmp_path, "train.keep_best={metric: error, mode: lowest}")
    bare = SPEC[: SPEC.index("evaluate:")]
    assert "the spec has no evaluate: section" in error(tmp_path, "train.keep_best.metric=error", text=bare)
