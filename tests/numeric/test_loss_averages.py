"""Moving-average networks read by a loss: `C_ema: {average: {of: C, decay: ..., start: ..., buffers_every: ...}}`.

The average takes its source's arch and starting weights, no player updates it and no gradient
reaches it, and after each iteration its parameters follow the update rule written out here
(a copy before `start`, then `decay * avg + (1 - decay) * C`), its buffers copied every
`buffers_every` iterations; a checkpoint restores it so that a resumed run goes on exactly.
"""

import pytest
import torch

import lossgraph
from lossgraph.language.errors import SpecError
from lossgraph.train.checkpoint import load_checkpoint, save_checkpoint

SPEC = """
name: averages
data: {x: image, x2: image}
networks:
  C: {arch: classifier, classes: 5, width: 8, depth: 2}
  C_ema: {average: {of: C, decay: 0.9, start: START, buffers_every: EVERY}}
players:
  C:
    networks: [C]
    minimize:
      moco: E[nce(C(x), C_ema(x2), C_ema(roll(x2)), 0.5)]
optim: {C: {sgd: {lr: 0.1}}}
train: {image_size: 16}
"""


def compile_text(start=0, every=1, text=SPEC):
    return lossgraph.compile(lossgraph.loads(text.replace("START", str(start)).replace("EVERY", str(every)), "averages.yaml"))


def test_an_average_is_its_sources_network_and_starts_as_it():
    program = compile_text()
    net = program.spec.networks["C_ema"]
    assert (net.arch, net.options) == ("classifier", {"classes": 5, "width": 8, "depth": 2})
    nets = program.build_networks(seed=3)
    for (key, a), b in zip(nets["C"].state_dict().items(), nets["C_ema"].state_dict().values()):
        assert torch.equal(a, b), key
    assert not any(p.requires_grad for p in nets["C_ema"].parameters())
    assert all(p.requires_grad for p in nets["C"].parameters())


def test_no_gradient_reaches_the_average_and_it_runs_without_autograd():
    program = compile_text()
    iteration = program.code.split("def iteration")[1].split("def samples")[0]
    assert "with torch.no_grad():\n        C_ema_x2 = C_ema(x2)" in iteration
    nets = program.build_networks(seed=0)
    inputs = program.example_inputs(batch_size=4)
    loss = program.losses(nets, inputs)["C"]
    with torch.no_grad():
        key, negatives = nets["C_ema"](inputs["x2"]), nets["C_ema"](inputs["x2"].roll(1, 0))
    q = nets["C"](inputs["x"])
    logits = torch.cat([(q * key).sum(1, keepdim=True), q @ negatives.T], 1) / 0.5
    want = torch.nn.functional.cross_entropy(logits, torch.zeros(4, dtype=torch.long))
    torch.testing.assert_close(loss, want)


@pytest.mark.parametrize("start, every", [(0, 1), (2, 3)])
def test_the_update_rule_after_each_iteration(start, every):
    program = compile_text(start, every)
    nets = program.build_networks(seed=1)
    trainer = program.trainer(nets)
    average = [p.detach().clone() for p in nets["C"].parameters()]
    for i in range(6):
        trainer.step(program.example_inputs(batch_size=4, seed=i))
        source = [p.detach() for p in nets["C"].parameters()]
        if i < start:
            average = [s.clone() for s in source]
        else:
            average = [0.9 * a + 0.1 * s for a, s in zip(average, source)]
        for a, got in zip(average, nets["C_ema"].parameters()):
            torch.testing.assert_close(got, a, rtol=1e-6, atol=1e-7)
        mine, theirs = list(nets["C_ema"].buffers()), list(nets["C"].buffers())
        copied = i < start or i % every == 0
        assert all(torch.equal(a, b) for a, b in zip(mine, theirs)) == copied, (i, copied)


def test_a_checkpoint_restores_the_average_and_the_run_goes_on_exactly(tmp_path):
    program = compile_text(1, 2)
    batches = [program.example_inputs(batch_size=4, seed=i) for i in range(4)]
    nets = program.build_networks(seed=2)
    trainer = program.trainer(nets)
    for batch in batches[:2]:
        trainer.step(batch)
    folder = save_checkpoint(tmp_path, 2, nets, trainer.state_dict())
    for batch in batches[2:]:
        trainer.step(batch)

    resumed = program.build_networks(seed=9)  # other weights: the checkpoint must restore them all
    state = load_checkpoint(folder, resumed)
    again = program.trainer(resumed)
    again.load_state_dict(state["trainer"])
    for batch in batches[2:]:
        again.step(batch)
    for name in ("C", "C_ema"):
        for (key, a), b in zip(nets[name].state_dict().items(), resumed[name].state_dict().values()):
            assert torch.equal(a, b), f"{name}.{key}"


def error_of(text):
    with pytest.raises(SpecError) as caught:
        compile_text(text=text)
    return str(caught.value)


@pytest.mark.parametrize("old, new, message, line", [
    ("of: C,", "of: B,", "network 'C_ema' is the moving average of 'B', which is not another network", 6),
    ("of: C,", "of: C_ema,", "which is not another network", 6),
    ("networks: [C]", "networks: [C, C_ema]", "network 'C_ema' is the moving average of 'C', but player 'C' updates it", 6),
    ("{average: {of: C,", "{width: 4, average: {of: C,", "so it has its arch and options, but it writes other width", 6),
    ("{average: {of: C,", "{fixed: true, average: {of: C,", "network 'C_ema' is a moving average, so it takes no fixed:", 6),
    ("decay: 0.9", "decay: 1", "decay", 6),
    ("train: {", "ema: {C_ema: 0.9}\ntrain: {", "network 'C_ema' is updated by no player, so its average would never move", 13),
    ("C_ema(x2), C_ema(roll(x2))", "C_ema(x2, x), C_ema(roll(x2), x)", "is applied to what C is applied to, but it takes 6 input channels and C 3", 6),
])
def test_mistakes_are_located(old, new, message, line):
    assert old in SPEC
    error = error_of(SPEC.replace(old, new).replace("START", "0").replace("EVERY", "1"))
    assert message in error
    assert f"averages.yaml:{line}:" in error


def test_an_average_of_an_average_is_refused():
    text = SPEC.replace("players:", "  C_ema2: {average: {of: C_ema, decay: 0.5}}\nplayers:").replace(
        "C_ema(roll(x2))", "C_ema2(roll(x2))")
    assert "network 'C_ema2' averages 'C_ema', itself an average of 'C' (average C instead)" in error_of(text.replace("START", "0").replace("EVERY", "1"))
