"""Decisions from the real modules (Note [Decisions from the real modules] in program.py).

What the compiler decides about a network (batching two of its calls, its outputs' ranks, its
heads, its channels) is checked against the module actually handed to `program.trainer` or
`program.losses`: the code adapts to it, or a located error says why the module cannot serve.
"""

import copy

import pytest
import torch
from torch import nn

import lossgraph
import lossgraph.nets as architectures
from lossgraph.language.errors import SpecError


def batch_norm_patchgan(in_channels=3):
    return architectures.build("patchgan", in_channels=in_channels, out_channels=1, image_size=32, norm="batch")


@pytest.mark.parametrize("spec, overrides, discriminators", [
    ("cyclegan", [], ["D_X", "D_Y"]),
    ("pix2pix", ["schedule=[D, G]"], ["D"]),
])
def test_a_batch_norm_discriminator_sees_real_and_fake_in_separate_calls(spec, overrides, discriminators):
    """The regression: D's real and fake calls were batched from the spec's arch (no batch norm),
    so a batch-norm D normalised them together and D's loss silently changed (13% on CycleGAN)."""
    program = lossgraph.compile(spec, overrides)
    nets = program.build_networks(seed=0)
    assert "batched(" in program.code  # the spec's own arch: one call on real and fake together
    for name in discriminators:
        nets[name] = batch_norm_patchgan(in_channels=6 if spec == "pix2pix" else 3)
    inputs = program.example_inputs(batch_size=4, seed=0)
    expected = program.losses(copy.deepcopy(nets), inputs)["D"].detach()  # every call on its own batch

    torch.manual_seed(0)
    trainer = program.trainer(nets)
    assert "batched(" not in "".join(line for line in _source(trainer.iterate).splitlines() if "D" in line)
    stats = trainer.step(inputs)
    assert stats["D"] == pytest.approx(expected.item(), rel=1e-6)

    # the spec-default code (batched) on the same modules gives another loss: the test can fail
    torch.manual_seed(0)
    fresh = program.trainer(copy.deepcopy(nets))
    wrong = program.iteration_function()(fresh.step_nets, program.draw(inputs), fresh.optimizers, fresh.parameters, fresh.pools)
    assert abs(float(wrong["D"]) - expected.item()) > 1e-3 * abs(expected.item())


def _source(function) -> str:
    import inspect

    return inspect.getsource(function)


def test_modules_like_the_spec_arch_keep_the_compiled_code():
    program = lossgraph.compile("cyclegan")
    nets = program.build_networks(seed=0)
    assert program.generated(nets) is program._module
    assert program.generated(nets) is program.generated(nets)  # checked once per set of modules


def test_a_module_with_the_wrong_channels_is_reported_at_the_spec_line():
    program = lossgraph.compile("pix2pix")
    nets = program.build_networks(seed=0)
    nets["D"] = batch_norm_patchgan(in_channels=3)  # D(x, y) gives it 6 channels
    with pytest.raises(SpecError) as caught:
        program.trainer(nets)
    message = str(caught.value)
    assert "network 'D' (the PatchGAN module given for it) fails on inputs of shape (2, 3, 32, 32), (2, 3, 32, 32)" in message
    assert "pix2pix.yaml:" in message and "^~~" in message


def test_a_module_without_the_declared_heads_is_reported():
    program = lossgraph.compile("stargan")
    nets = program.build_networks(seed=0)
    nets["D"] = batch_norm_patchgan()
    with pytest.raises(SpecError) as caught:
        program.losses(nets, program.example_inputs(batch_size=2))
    assert "network 'D' declares 2 heads but its module returns one tensor" in str(caught.value)


def test_a_missing_network_is_named():
    program = lossgraph.compile("cyclegan")
    nets = program.build_networks(seed=0)
    del nets["D_X"]
    with pytest.raises(SpecError, match="no module for network 'D_X' among the networks given"):
        program.trainer(nets)


class Flat(nn.Module):
    """A discriminator returning a vector of patch logits per sample, (N, k), not a map (N, 1, H, W)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).flatten(1)


def test_code_follows_the_ranks_of_the_given_modules():
    program = lossgraph.compile("cyclegan", ["players.G.minimize.adv=E[sqrt(l2sq(D_Y(fake_y) - 1) + 1e-8)]"])
    nets = program.build_networks(seed=0)
    assert ".square().mean(dim=(1, 2, 3))" in program.code
    nets["D_Y"] = Flat(nets["D_Y"])
    generated = program.generated(nets)
    assert generated is not program._module
    assert ".square().mean(dim=1)" in _source(generated["losses"])
    inputs = program.example_inputs(batch_size=2)
    losses = program.losses(nets, inputs)
    with torch.no_grad():
        fake_y = nets["G_XY"](inputs["x"])
        expected = (((nets["D_Y"](fake_y) - 1) ** 2).mean(dim=1) + 1e-8).sqrt().mean()
    assert torch.allclose(losses["G/adv"], expected)


class Tabled(nn.Module):
    """A discriminator keeping a tensor as a plain attribute: it cannot run on meta tensors."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.scale = torch.ones(1)  # not a buffer

    def forward(self, x):
        return self.inner(x) * self.scale.to(x.device)


def test_a_module_that_cannot_run_on_meta_tensors_is_checked_for_real():
    program = lossgraph.compile("cyclegan")
    nets = program.build_networks(seed=0)
    nets["D_Y"] = Tabled(nets["D_Y"])
    trainer = program.trainer(nets)
    stats = trainer.step(program.example_inputs(batch_size=2))
    assert all(torch.isfinite(torch.tensor(value)) for value in stats.values())


def test_an_iteration_without_idle_steps_takes_the_modules_decisions_too():
    """A warm-up leaves G's step out (program.idle_steps); the iteration generated without it is
    made for the trainer's modules, as the full one is: a batch-norm D still sees real and fake in
    separate calls, so D's loss is the formula's."""
    program = lossgraph.compile("pix2pix", ["schedule=[D, G]", "players.G.minimize.adv.weight={warmup: 5}",
                                            "players.G.minimize.l1.weight={warmup: 5, value: 100}"])
    nets = program.build_networks(seed=0)
    nets["D"] = batch_norm_patchgan(in_channels=6)
    inputs = program.example_inputs(batch_size=4, seed=0)
    expected = program.losses(copy.deepcopy(nets), inputs)["D"].detach()

    torch.manual_seed(0)
    trainer = program.trainer(nets)
    assert program.idle_steps(0) == {"G"}
    idle = program.idle_iteration(frozenset({"G"}), trainer.nets)
    assert "batched(" not in _source(idle) and "batched(" in _source(program.idle_iteration(frozenset({"G"})))
    assert idle is program.idle_iteration(frozenset({"G"}), trainer.nets)  # generated once
    stats = trainer.step(inputs)
    assert "G" not in stats and stats["D"] == pytest.approx(expected.item(), rel=1e-6)
