"""A step that also steps another player's networks with that player's optimizer (`also_steps:`):
TUNIT's G step, whose one backward trains G and the guiding network C, stepping G's RMSprop and
C's own Adam. The iteration equals a hand-written loop with one backward and two optimizers; C's
optimizer is the very object of C's own step; clips, `updates:`, learning-rate schedules and
checkpoints behave as for C's own step; mistakes are located.
"""

import copy

import pytest
import torch

import lossgraph
from tests.numeric.test_phases import oracle_losses

SPEC = """
name: also
data: {x: image, y: image}
networks:
  G: {arch: unet, width: 4, depth: 1, norm: none}
  C: {arch: patchgan, width: 4, layers: 1, norm: none}
  D: {arch: patchgan, width: 4, layers: 1, norm: none}
players:
  C:
    networks: [C]
    minimize: {own: "E[(C(y) - 1)^2] + E[C(x)^2]"}
  D:
    networks: [D]
    minimize: {adv: "E[(D(y) - 1)^2] + E[D(G(x))^2]"}
  G:
    networks: [G]
    also_steps: [C]
    minimize:
      adv: "E[(D(G(x)) - 1)^2]"
      cls: {weight: 0.5, expr: "E[(C(G(x)) - 1)^2]"}
schedule: [C, D, G]
optim:
  C: {adam: {lr: 1.0e-2, betas: [0.9, 0.999], weight_decay: 1.0e-3}}
  D: {sgd: {lr: 0.1}}
  G: {rmsprop: {lr: 1.0e-3, alpha: 0.99, weight_decay: 1.0e-4}}
train: {image_size: 8}
"""


def compile_text(text=SPEC, overrides=()):
    return lossgraph.compile(lossgraph.loads(text, "also.yaml", list(overrides)))


def hand_written(nets, inputs, iterations, cls_updates_g=True):
    """The spec's iterations as one would write them: G's step is one backward of G's loss, which
    zeroes and steps G's RMSprop and C's Adam (the same Adam as C's own step)."""
    G, C, D, x, y = nets["G"], nets["C"], nets["D"], inputs["x"], inputs["y"]
    c_opt = torch.optim.Adam(C.parameters(), lr=1e-2, betas=(0.9, 0.999), weight_decay=1e-3)
    d_opt = torch.optim.SGD(D.parameters(), lr=0.1)
    g_opt = torch.optim.RMSprop(G.parameters(), lr=1e-3, alpha=0.99, weight_decay=1e-4)
    losses = []
    for _ in range(iterations):
        loss_c = ((C(y) - 1) ** 2).mean() + (C(x) ** 2).mean()
        c_opt.zero_grad()
        loss_c.backward()
        c_opt.step()
        with torch.no_grad():
            fake = G(x)
        loss_d = ((D(y) - 1) ** 2).mean() + (D(fake) ** 2).mean()
        d_opt.zero_grad()
        loss_d.backward()
        d_opt.step()
        fake = G(x)
        loss_g = ((D(fake) - 1) ** 2).mean() + 0.5 * ((C(fake if cls_updates_g else fake.detach()) - 1) ** 2).mean()
        g_opt.zero_grad()
        c_opt.zero_grad()
        loss_g.backward(inputs=[*G.parameters(), *C.parameters()])
        g_opt.step()
        c_opt.step()
        losses.append(float(loss_g))
    return losses, c_opt


@pytest.mark.parametrize("updates", [None, ["C"]])
def test_one_backward_steps_both_optimizers_as_a_hand_written_loop(updates):
    overrides = [] if updates is None else ["players.G.minimize.cls.updates=[C]"]
    program = compile_text(overrides=overrides)
    nets = program.build_networks(seed=0)
    mine = copy.deepcopy(nets)
    inputs = program.example_inputs(batch_size=2, seed=1)
    trainer = program.trainer(nets)
    stats = [trainer.step(inputs) for _ in range(3)]
    want, c_opt = hand_written(mine, inputs, 3, cls_updates_g=updates is None)
    assert [s["G"] for s in stats] == pytest.approx(want, rel=1e-5)
    for name in ("G", "C", "D"):
        for a, b in zip(nets[name].parameters(), mine[name].parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    # one Adam for C, stepped twice an iteration: by C's own step and by G's
    step = trainer.optimizers["C"].state[next(iter(nets["C"].parameters()))]["step"]
    assert int(step) == 6 == int(c_opt.state[next(iter(mine["C"].parameters()))]["step"])


def test_the_step_is_reported_as_gs_and_checkpoints_hold_each_optimizer_once():
    program = compile_text()
    nets = program.build_networks(seed=0)
    losses = program.losses(nets, program.example_inputs(batch_size=2))
    assert set(losses) == {"C", "C/own", "D", "D/adv", "G", "G/adv", "G/cls"}
    trainer = program.trainer(nets)
    stats = trainer.step(program.example_inputs(batch_size=2, seed=1))
    assert {"C", "C/own", "D", "D/adv", "G", "G/adv", "G/cls"} <= set(stats)
    assert set(trainer.optimizers) == {"C", "D", "G"} and set(trainer.state_dict()["optimizers"]) == {"C", "D", "G"}
    assert trainer.parameters["G"] == list(nets["G"].parameters())  # its own; C's stay C's
    code = program.code[program.code.index("# G:"):]
    assert 'loss_G.backward(inputs=parameters["G"] + parameters["C"])' in code
    assert code.index('optimizers["C"].zero_grad') < code.index("loss_G.backward") < code.index('optimizers["C"].step()')
    again = program.trainer(copy.deepcopy(trainer.nets))
    again.load_state_dict(copy.deepcopy(trainer.state_dict()))
    assert int(again.optimizers["C"].state[next(iter(again.nets["C"].parameters()))]["step"]) == 2


def test_cs_clip_and_learning_rate_schedule_act_as_for_its_own_step():
    program = compile_text(overrides=["players.C.clip=0.01", "optim.C.schedule={constant: 1, decay: 3}"])
    code = program.code[program.code.index("# G:"):]
    assert code.index('optimizers["C"].step()') < code.index('for parameter in parameters["C"]')
    nets = program.build_networks(seed=0)
    trainer = program.trainer(nets)
    rates = [trainer.step(program.example_inputs(batch_size=2, seed=1))["lr/C"] for _ in range(3)]
    assert all(p.abs().max() <= 0.01 for p in nets["C"].parameters())
    assert not all(p.abs().max() <= 0.01 for p in nets["G"].parameters())  # G has no clip
    # one schedule step an iteration, as without G's step of C
    alone = compile_text(overrides=["optim.C.schedule={constant: 1, decay: 3}", "players.G.also_steps=[]"])
    trainer = alone.trainer(alone.build_networks(seed=0))
    assert rates == [trainer.step(alone.example_inputs(batch_size=2, seed=1))["lr/C"] for _ in range(3)]
    assert rates[0] > rates[1] > rates[2]


def test_each_step_is_the_plans_loss_by_the_independent_evaluator():
    program = compile_text()
    stats, expected = oracle_losses(program, program.build_networks(seed=1), program.example_inputs(batch_size=2, seed=3))
    for player, value in expected.items():
        assert stats[player] == pytest.approx(value, rel=1e-5, abs=1e-6), player


@pytest.mark.parametrize(("overrides", "message"), [
    (["players.G.also_steps=[Cx]"], "unknown player 'Cx' in also_steps (did you mean 'C'?)"),
    (["players.G.also_steps=[G]"], "'G' is the player this step steps already"),
    (["+players.C2={step_of: C, minimize: {a: 'E[C(x)]'}}", "players.G.also_steps=[C2]"],
     "'C2' is a step of 'C', not a player with networks of its own (write C"),
    (["players.G.also_steps=[C, C]"], "player 'C' is named twice in also_steps"),
    (["players.G.networks=[G, C]"], "player 'C' updates C, which this step updates with its own optimizer"),
    (["players.D.minimize.adv.updates=[C]"], "term 'adv' can only update networks of player 'D'"),
])
def test_also_steps_mistakes_are_located(overrides, message):
    with pytest.raises(lossgraph.SpecError) as error:
        compile_text(overrides=overrides)
    text = str(error.value)
    assert message in text and "<override" in text, text


def test_a_mistake_in_the_file_names_its_line_and_column():
    with pytest.raises(lossgraph.SpecError) as error:
        compile_text(SPEC.replace("also_steps: [C]", "also_steps: [D, Cx]"))
    text = str(error.value)
    line = SPEC.splitlines().index("    also_steps: [C]") + 1
    assert f"also.yaml:{line}:21: " in text and "unknown player 'Cx' in also_steps" in text, text
