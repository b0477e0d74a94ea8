"""A compiled CPU step keeps a network's compiled graph only where its first call measures it
faster (Note [Compiled only where faster on the CPU] in lossgraph/train/measured.py)."""

import torch
from torch import nn

from tests.conftest import train_steps
from lossgraph.train.accelerate import Accelerated
from lossgraph.train.measured import Measured


class Burn(nn.Module):
    """The identity, after CPU work that changes nothing."""

    def forward(self, x):
        a = torch.ones(256, 256)
        for _ in range(20):
            a = (a @ a).clamp(max=1.0)
        return x + 0 * a[0, 0]


def conv():
    torch.manual_seed(0)
    return nn.Conv2d(3, 4, 3)


def test_the_slower_path_is_left():
    net = conv()
    slower = lambda x: Burn()(net(x))  # noqa: E731 - a "compiled" path doing extra work
    chooser = Measured(net, slower, on_choice=lambda chosen: None)
    assert chooser.choose((torch.randn(2, 3, 8, 8),)) is net
    assert chooser.timings["compiled"] > chooser.timings["eager"]


def test_the_faster_path_is_kept():
    base = conv()
    net = nn.Sequential(base, Burn())
    faster = lambda x: base(x)  # noqa: E731 - the same function without the extra work
    chooser = Measured(net, faster, on_choice=lambda chosen: None)
    assert chooser.choose((torch.randn(2, 3, 8, 8, requires_grad=True),)) is faster


def test_the_trial_leaves_no_trace():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))
    buffers = {k: v.clone() for k, v in net.named_buffers()}
    x = torch.randn(4, 3, 8, 8)
    rng = torch.get_rng_state()
    Measured(net, lambda x: net(x), on_choice=lambda chosen: None).choose((x,))
    assert all(torch.equal(buffers[k], v) for k, v in net.named_buffers())
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in net.parameters())


def test_the_first_call_chooses_and_computes_the_network():
    net = conv()
    wrapped = Accelerated(net, "cpu", None, compile=True, mode=None)
    assert wrapped.runs_compiled is None
    x = torch.randn(2, 3, 8, 8)
    out = wrapped(x)
    assert wrapped.runs_compiled in (True, False)
    assert wrapped.chooser.timings.keys() == {"eager", "compiled"}
    torch.testing.assert_close(out, net(x), rtol=1e-4, atol=1e-5)
    assert all(p.grad is None for p in net.parameters())


def test_a_compiled_cpu_trainer_steps_as_eager_does():
    _, eager = train_steps("pix2pix")
    trainer, compiled = train_steps("pix2pix", compile=True)
    for reference, value in zip(eager, compiled):
        for key in reference:
            assert abs(value[key] - reference[key]) <= 1e-3 * (1 + abs(reference[key])), key
    assert trainer.step_nets["D"].runs_compiled is False  # never compiled (twice differentiated)
    assert trainer.step_nets["G"].runs_compiled in (True, False)  # measured at its first call


def test_a_trial_mid_step_keeps_earlier_graphs_differentiable():
    # CoGAN's generators share layers: the second network's first call (the trial) runs the shared
    # batch norm while the first network's graph, which saved its running statistics, waits for
    # its backward
    torch.manual_seed(0)
    shared = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    first, second = nn.Sequential(shared, nn.Conv2d(4, 1, 1)), nn.Sequential(shared, nn.Conv2d(4, 2, 1))
    x = torch.randn(4, 3, 8, 8)
    pending = first(x).sum()
    statistics = shared[1].running_mean.clone()
    Measured(second, lambda x: second(x), on_choice=lambda chosen: None).choose((x,))
    pending.backward()  # an in-place restore of the statistics would fail here
    assert torch.equal(shared[1].running_mean, statistics)


# Note [Tied networks choose together]


def test_tied_networks_are_grouped_by_the_tensors_they_hold():
    import lossgraph
    from lossgraph.train.accelerate import tied_groups

    cogan = lossgraph.compile("cogan")
    assert tied_groups(cogan.build_networks(seed=0)) == [frozenset({"D1", "D2"}), frozenset({"G1", "G2"})]
    cyclegan = lossgraph.compile("cyclegan")
    assert tied_groups(cyclegan.build_networks(seed=0)) == []
    norm = nn.BatchNorm2d(4)  # a buffer alone ties too, and ties chain: a-b and b-c make one group
    a, b, c, d = nn.Sequential(conv(), norm), nn.Sequential(norm, nn.ReLU()), conv(), conv()
    c.weight = b[0].weight
    assert tied_groups({"a": a, "b": b, "c": c, "d": d}) == [frozenset({"a", "b", "c"})]


def test_a_tied_group_measures_once_and_takes_one_choice(monkeypatch):
    # the first call of a group measures; a second network tied to it would measure otherwise
    # and could choose the other way (here: it would, since the stub alternates)
    from lossgraph.train.accelerate import Acceleration

    answers = iter([True, False, True, False])
    monkeypatch.setattr(Measured, "choose", lambda self, args: self.compiled if next(answers) else self.net)
    trunk = conv()
    nets = {"G1": nn.Sequential(trunk, nn.Tanh()), "G2": nn.Sequential(trunk, nn.Sigmoid()), "D": conv()}
    wrapped = Acceleration(compile=True).wrap(nets, torch.device("cpu"))
    x = torch.randn(2, 3, 8, 8)
    for name in ("G1", "G2", "D"):
        wrapped[name](x)
    assert wrapped["G1"].runs_compiled and wrapped["G2"].runs_compiled  # one choice, the first call's
    assert wrapped["D"].runs_compiled is False                           # D measured on its own


def test_a_network_left_eager_leaves_its_tied_networks_eager():
    from lossgraph.train.accelerate import Acceleration

    trunk = conv()
    nets = {"D1": nn.Sequential(trunk), "D2": nn.Sequential(trunk), "G": conv()}
    wrapped = Acceleration(compile=True).wrap(nets, torch.device("cpu"), eager=frozenset({"D1"}))
    assert wrapped["D1"].call is nets["D1"] and wrapped["D2"].call is nets["D2"]
    assert wrapped["G"].chooser is not None


def test_cogan_under_bf16_with_its_generators_chosen_apart_trains(monkeypatch):
    # the failure this guards against: G2 compiled writing back the batch-norm statistics that
    # G1's eager graph saved; with one choice per group the step runs
    import lossgraph

    answers = iter([False, True, False, True, False, True])
    monkeypatch.setattr(Measured, "choose", lambda self, args: self.compiled if next(answers) else self.net)
    program = lossgraph.compile("cogan")
    trainer = program.trainer(program.build_networks(seed=0), device="cpu", compile=True, precision="bf16")
    for seed in range(2):
        trainer.step(program.example_inputs(batch_size=2, seed=seed))
    assert trainer.step_nets["G1"].runs_compiled == trainer.step_nets["G2"].runs_compiled
