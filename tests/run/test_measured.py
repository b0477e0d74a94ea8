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
