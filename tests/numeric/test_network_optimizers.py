"""Optimizer settings per network within a player (`optim.G.networks: {M: {lr: 1.0e-6}}`, StarGAN
v2's mapping network): one parameter group per such network, the player's settings elsewhere; a
step moves each parameter by its own group's rate; schedules and resumes keep each group's rate;
mistakes are located.
"""

import copy

import pytest
import torch

import lossgraph

SPEC = """
name: groups
data: {x: image}
random: {z: normal(4)}
networks:
  G: {arch: resnet_generator, width: 4, blocks: 1}
  M: {arch: resnet_generator, width: 4, blocks: 1}
players:
  G:
    networks: [G, M]
    minimize:
      rec: E[l1(G(M(x, z)) - x)]
optim:
  G: {sgd: {lr: 0.1}, networks: {M: {lr: 0.001}}}
train: {image_size: 8}
"""


def compile_text(text=SPEC, overrides=()):
    spec = lossgraph.loads(text, "groups.yaml", list(overrides)) if overrides else lossgraph.loads(text, "groups.yaml")
    return lossgraph.compile(spec)


def test_each_network_steps_at_its_own_rate():
    program = compile_text()
    nets = program.build_networks(seed=0)
    before = copy.deepcopy(nets)
    trainer = program.trainer(nets)
    inputs = program.example_inputs(batch_size=2, seed=1)
    loss = program.losses(before, inputs)["G"]
    grads = dict(zip(["G", "M"], (torch.autograd.grad(loss, list(before[name].parameters()), retain_graph=True) for name in ("G", "M"))))
    trainer.step(inputs)
    for name, rate in (("G", 0.1), ("M", 0.001)):
        for new, old, grad in zip(nets[name].parameters(), before[name].parameters(), grads[name]):
            torch.testing.assert_close(new, old - rate * grad, rtol=1e-5, atol=1e-7)
    rates = sorted(group["lr"] for group in trainer.optimizers["G"].param_groups)
    assert rates == [0.001, 0.1]


def test_a_schedule_scales_every_group_and_a_resume_keeps_each_rate():
    program = compile_text(SPEC.replace("networks: {M: {lr: 0.001}}}", "networks: {M: {lr: 0.001}}, schedule: {constant: 1, decay: 3}}"))
    inputs = program.example_inputs(batch_size=2, seed=1)
    trainer = program.trainer(program.build_networks(seed=0))
    for _ in range(2):
        trainer.step(inputs)
    rates = [group["lr"] for group in trainer.optimizers["G"].param_groups]
    assert rates == pytest.approx([0.1 * 0.5, 0.001 * 0.5])  # iteration 3 of 1 + 3: 1 - (3 - 1) / 4
    resumed = program.trainer(copy.deepcopy(trainer.nets))
    resumed.load_state_dict(copy.deepcopy(trainer.state_dict()))
    assert [group["lr"] for group in resumed.optimizers["G"].param_groups] == pytest.approx(rates)


def test_adam_settings_of_one_network_keep_the_players_others():
    """StarGAN v2: Adam with betas (0, 0.99) and weight decay 1e-4 for all, lr 1e-6 for M."""
    program = compile_text(SPEC.replace("{sgd: {lr: 0.1}, networks: {M: {lr: 0.001}}}",
                                        "{adam: {lr: 1.0e-4, betas: [0.0, 0.99], weight_decay: 1.0e-4}, networks: {M: {lr: 1.0e-6}}}"))
    trainer = program.trainer(program.build_networks(seed=0))
    groups = trainer.optimizers["G"].param_groups
    assert [(g["lr"], g["betas"], g["weight_decay"]) for g in groups] == [(1e-4, (0.0, 0.99), 1e-4), (1e-6, (0.0, 0.99), 1e-4)]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in trainer.nets["M"].parameters()}


@pytest.mark.parametrize(("override", "message", "column"), [
    ("optim.G.networks={N: {lr: 1}}", "'N' is not a network of player 'G' (expected one of 'G', 'M')", 19),
    ("optim.G.networks={M: {momentum: -1}}", "input should be greater than or equal to 0", 33),
    ("optim.G.networks={M: {betas: [0, 0.9]}}", "unknown sgd setting 'betas'", 23),
    ("optim.G.networks={M: 0.1}", "input should be a valid dictionary", 22),
])
def test_network_settings_mistakes_are_located(override, message, column):
    with pytest.raises(lossgraph.SpecError) as error:
        compile_text(overrides=[override])
    text = str(error.value)
    assert message in text and f"<override 1>:1:{column}:" in text, text
