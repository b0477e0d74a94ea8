"""Evaluation features: argmax, ==, roll, held-out extras in evaluate:, and judges."""

import pytest
import torch

import lossgraph
from lossgraph.data import open_dataset
from lossgraph.train.run import RunOptions, train

BASE = """
name: judged
data: {x: image, c: label(2)}
dataset:
  builtin: shapes
  styles: {x: [flat, outlined]}
  labels: {c: style(x)}         # which of the two styles
  held_out: {%(held_out)s}
random:
  z: normal(4)
networks:
  G: {arch: dcgan_generator}
  D: {arch: dcgan_discriminator, output: probability}
  C: {arch: classifier, classes: 2}
let:
  fake: G(z)
players:
  D:
    networks: [D]
    maximize:
      adv: %(d_term)s
  G:
    networks: [G]
    minimize:
      adv: -E[log(D(fake))]
judges:
  C: {minimize: "E[ce(C(x), c)]", steps: %(steps)d}
evaluate:
  %(metrics)s
train: {image_size: 16, steps: 4, batch_size: 4}
"""

METRICS = """accuracy: E[argmax(C(x)) == c]
  agreement: E[argmax(C(fake)) == argmax(C(roll(fake)))]
  held_out_accuracy: E[argmax(C(x)) == k]"""


def spec_text(held_out="k: style(x)", d_term="E[log(D(x))] + E[log(1 - D(fake))]", steps=3, metrics=METRICS):
    return BASE % dict(held_out=held_out, d_term=d_term, steps=steps, metrics=metrics)


def compile_text(text):
    return lossgraph.compile(lossgraph.loads(text, "judged.yaml"))


def error_of(text):
    with pytest.raises(lossgraph.SpecError) as caught:
        compile_text(text)
    return str(caught.value)


def test_metrics_equal_their_definitions_with_held_out_extras():
    program = compile_text(spec_text())
    nets = program.build_networks(seed=0)
    inputs = program.example_inputs(batch_size=6, seed=1)
    inputs["k"] = torch.tensor([0, 1, 1, 0, 1, 0])
    got = program.evaluate(nets, inputs)
    with torch.no_grad():
        for net in nets.values():
            net.eval()
        predicted = nets["C"](inputs["x"]).argmax(dim=1)
        fake_class = nets["C"](nets["G"](inputs["z"])).argmax(dim=1)
    assert got["accuracy"] == pytest.approx((predicted == inputs["c"]).float().mean().item())
    assert got["held_out_accuracy"] == pytest.approx((predicted == inputs["k"]).float().mean().item())
    assert got["agreement"] == pytest.approx((fake_class == fake_class.roll(1, 0)).float().mean().item())


def test_roll_pairs_each_sample_with_the_next_ones_partner():
    metrics = "same: E[l1(x - x)]\n  shifted: E[l1(roll(x) - x)]"
    program = compile_text(spec_text(metrics=metrics))
    nets = program.build_networks(seed=0)
    x = torch.rand(3, 3, 16, 16)
    got = program.evaluate(nets, {"x": x, "c": torch.zeros(3, dtype=torch.long), "k": torch.zeros(3, dtype=torch.long)})
    assert got["same"] == 0.0
    expected = (torch.cat([x[2:], x[:2]]) - x).abs().mean().item()
    assert got["shifted"] == pytest.approx(expected, rel=1e-6)


def test_generated_evaluate_reads_like_hand_written_code():
    program = compile_text(spec_text())
    code = program.code
    assert "argmax_C_x = C_x.argmax(dim=1)" in code and "accuracy = (argmax_C_x == c).float().mean()" in code
    assert "fake.roll(1, 0)" in code
    assert 'k = inputs["k"]' in code
    # the judge is fitted by a module of its own, whose one training function is its step
    judge = program.judge_code["C"]
    assert "def iteration(nets, inputs, optimizers, parameters, pools):" in judge and "# C: minimize fit over C" in judge
    assert "fit = F.cross_entropy(C_x, c, reduction='none').mean()" in judge and "def iteration" in code


@pytest.mark.parametrize(("d_term", "message"), [
    ("E[log(D(x))] + E[argmax(D(fake))]", "argmax has no gradient, so term 'adv' can use it only as a label, never as a value"),
    ("E[log(D(x))] + E[D(fake) == 1]", "== has no gradient, so term 'adv' cannot use it"),
    ("E[log(D(x))] + E[l1(G(z) - G(z))] + E[c == k]", "'k' is held-out data (dataset.held_out)"),
])
def test_a_loss_cannot_use_evaluation_only_values(d_term, message):
    text = spec_text(d_term=d_term)
    error = error_of(text)
    assert message in error
    assert "judged.yaml:" in error and "players.D.maximize.adv" in error


def test_a_held_out_label_cannot_feed_a_network():
    error = error_of(spec_text(metrics="bad: E[l1(G(k))]"))
    assert "held-out label 'k'" in error and "declare it under random: as label(K)" in error


def test_unknown_names_suggest_held_out_extras():
    error = error_of(spec_text(metrics="bad: E[argmax(C(x)) == kk]"))
    assert "unknown name 'kk'" in error and "did you mean 'k'" in error


@pytest.mark.parametrize(("judges", "message"), [
    ('judges:\n  Q: {minimize: "E[ce(C(x), c)]"}', "a judge is a network of networks:; 'Q' is not one"),
    ('judges:\n  D: {minimize: "E[ce(C(x), c)]"}', "network 'D' is updated by player 'D', so it cannot be a judge"),
    ('judges:\n  C: {minimize: "E[ce(C(x), c)]", steps: 0}', "greater than 0"),
    ('judges:\n  C: {minimize: "E[ce(C(x), c)]", stepz: 3}', "unknown key 'stepz'"),
])
def test_judge_errors_are_located(judges, message):
    text = spec_text().replace('judges:\n  C: {minimize: "E[ce(C(x), c)]", steps: 3}', judges)
    error = error_of(text)
    assert message in error
    assert "judged.yaml:" in error


def test_judges_are_not_players_and_not_in_losses():
    program = compile_text(spec_text())
    assert program.players == ["D", "G"]
    losses = program.losses(program.build_networks(), program.example_inputs(batch_size=2))
    assert not any(key.startswith("C") for key in losses)


def test_fit_judges_trains_only_the_judge():
    program = compile_text(spec_text())
    nets = program.build_networks(seed=0)
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in nets.items()}
    trainer = program.trainer(nets)
    dataset = open_dataset(program.spec.dataset, program.spec.kinds, 16, seed=0)
    calls = []

    def batch(index):
        calls.append(index)
        return dataset.batch(index, 8)

    fitted = trainer.fit_judges(batch)
    assert calls == [1, 2, 3]
    assert set(fitted) == {"C"} and fitted["C"] > 0
    for name, net in nets.items():
        changed = any(not torch.equal(a, b) for a, b in zip(before[name], net.parameters()))
        assert changed == (name == "C"), name


def test_a_judge_learns_its_task():
    program = compile_text(spec_text(steps=40))
    nets = program.build_networks(seed=0)
    dataset = open_dataset(program.spec.dataset, program.spec.kinds, 16, seed=0)
    held_out = dataset.held_out(64)
    before = program.evaluate(nets, held_out)["held_out_accuracy"]
    program.trainer(nets).fit_judges(lambda index: dataset.batch(index, 16))
    after = program.evaluate(nets, held_out)["held_out_accuracy"]
    assert after > max(before, 0.9)


def test_a_run_fits_judges_once_and_a_resumed_run_keeps_them(tmp_path):
    program = compile_text(spec_text())
    dataset = open_dataset(program.spec.dataset, program.spec.kinds, 16, seed=0)
    options = dict(out_dir=tmp_path / "run", progress=False, checkpoint_every=2, eval_every=2, sample_every=100)
    first = train(program, dataset, RunOptions(steps=2, **options))
    resumed = train(program, dataset, RunOptions(steps=4, resume=True, **options))
    straight = train(program, dataset, RunOptions(steps=4, **{**options, "out_dir": tmp_path / "straight"}))
    assert first.metrics and resumed.metrics == straight.metrics
    assert resumed.stats == straight.stats


def test_judges_do_not_change_the_training_trajectory(tmp_path):
    # fitting 5 or 1 judge steps (their own RNG stream and batches) leaves D's and G's steps as they were
    runs = []
    for steps in (5, 1):
        program = compile_text(spec_text(steps=steps))
        dataset = open_dataset(program.spec.dataset, program.spec.kinds, 16, seed=0)
        runs.append(train(program, dataset, RunOptions(steps=3, out_dir=tmp_path / str(steps), progress=False)))
    assert runs[0].stats == runs[1].stats
