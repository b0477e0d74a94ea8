"""Several steps of one player in an iteration, each with its own terms (`step_of:`): StarGAN v2's
latent- and reference-guided steps of D. A step of player D updates D's networks with D's
optimizer, its state shared; the iteration equals the hand-written one; checkpoints hold the
optimizer once; mistakes are located.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

import lossgraph

SPEC = """
name: steps
data: {x: image}
random: {z: normal(4), z2: normal(4)}
networks:
  G: {arch: resnet_generator, width: 4, blocks: 1}
  D: {arch: patchgan, width: 4}
players:
  D:
    networks: [D]
    minimize: {adv: "E[softplus(-D(x))] + E[softplus(D(G(x, z)))]"}
  D_ref:
    step_of: D
    minimize: {adv: "E[softplus(-D(x))] + E[softplus(D(G(x, z2)))]", r1: {weight: 0.5, expr: "r1(D(x), x)"}}
  G:
    networks: [G]
    minimize: {adv: "E[softplus(-D(G(x, z)))]"}
schedule: [D, D_ref, G]
optim:
  D: {sgd: {lr: 0.1}}
  G: {sgd: {lr: 0.1}}
ema: {D: 0.5}
train: {image_size: 8}
"""


def compile_text(text=SPEC, overrides=()):
    return lossgraph.compile(lossgraph.loads(text, "steps.yaml", list(overrides)))


def test_a_step_of_a_player_is_the_hand_written_second_step():
    program = compile_text()
    nets = program.build_networks(seed=0)
    mine = copy.deepcopy(nets)
    trainer = program.trainer(nets)
    inputs = program.example_inputs(batch_size=2, seed=1)
    stats = trainer.step(inputs)
    D, G, x, z, z2 = mine["D"], mine["G"], inputs["x"], inputs["z"], inputs["z2"]
    d_optimizer, g_optimizer = torch.optim.SGD(D.parameters(), lr=0.1), torch.optim.SGD(G.parameters(), lr=0.1)
    with torch.no_grad():
        fake, fake2 = G(x, z), G(x, z2)
    for second in (fake, fake2):  # D's step on the latent fakes, then D_ref's on the others, with R1
        leaf = x.clone().requires_grad_(True)
        real = D(leaf)
        loss = F.softplus(-real).mean() + F.softplus(D(second)).mean()
        if second is fake2:
            (g,) = torch.autograd.grad(real.sum(), leaf, create_graph=True)
            loss = loss + 0.5 * (g ** 2).flatten(1).sum(1).mean()
            assert stats["D_ref"] == pytest.approx(float(loss), rel=1e-5)
        d_optimizer.zero_grad()
        loss.backward()
        d_optimizer.step()
    loss = F.softplus(-D(G(x, z))).mean()
    g_optimizer.zero_grad()
    loss.backward(inputs=list(G.parameters()))
    g_optimizer.step()
    for name in ("D", "G"):
        for a, b in zip(nets[name].parameters(), mine[name].parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_steps_share_the_players_optimizer():
    program = compile_text(overrides=["optim.D={adam: {lr: 1.0e-3}}"])
    trainer = program.trainer(program.build_networks(seed=0))
    assert trainer.optimizers["D_ref"] is trainer.optimizers["D"] and trainer.parameters["D_ref"] is trainer.parameters["D"]
    assert 'optimizers["D"].step()' in program.code and 'optimizers["D_ref"]' not in program.code
    trainer.step(program.example_inputs(batch_size=2, seed=1))
    state = trainer.optimizers["D"].state[next(iter(trainer.nets["D"].parameters()))]
    assert int(state["step"]) == 2  # one Adam, stepped by both steps
    # an average moves once an iteration, in Trainer.step, not by an optimizer hook (tests/run/test_ema.py)
    assert len(trainer.optimizers["D"]._optimizer_step_post_hooks) == 0
    saved = trainer.state_dict()
    assert set(saved["optimizers"]) == {"D", "G"}
    again = program.trainer(copy.deepcopy(trainer.nets))
    again.load_state_dict(copy.deepcopy(saved))
    assert int(again.optimizers["D_ref"].state[next(iter(again.nets["D"].parameters()))]["step"]) == 2


def test_losses_report_each_step_as_a_player():
    program = compile_text()
    losses = program.losses(program.build_networks(seed=0), program.example_inputs(batch_size=2))
    assert {"D", "D/adv", "D_ref", "D_ref/adv", "D_ref/r1", "G", "G/adv"} == set(losses)
    assert program.players == ["D", "D_ref", "G"]


@pytest.mark.parametrize(("overrides", "message"), [
    (["players.D_ref.step_of=E"], "step_of names a player, and 'E' is not another one"),
    (["players.D_ref.step_of=D_ref"], "step_of names a player, and 'D_ref' is not another one"),
    (["+players.D_x={step_of: D_ref, minimize: {a: 'E[D(x)]'}}"], "'D_ref' is itself a step of 'D' (write step_of: D)"),
    (["players.D_ref.networks=[G]"], "a step of 'D' updates its networks (D)"),
    (["players.D_ref.clip=0.1"], "a step of 'D' clips as 'D' does"),
    (["+optim.D_ref={sgd: {lr: 1}}"], "a step of 'D' takes its optimizer"),
])
def test_step_of_mistakes_are_located(overrides, message):
    with pytest.raises(lossgraph.SpecError) as error:
        compile_text(overrides=overrides)
    text = str(error.value)
    assert message in text and "<override 1>:1:" in text, text
