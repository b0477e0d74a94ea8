"""Language features beyond the two core specs: heads, random variables, labels, ce and kl.

A tiny two-head network is registered for these tests only, so they exercise the compiler and
not any shipped architecture.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lossgraph
import lossgraph.nets as nets


class TwoHeads(nn.Module):
    """Image (+ broadcast extras) to (source logits map, class logits)."""

    def __init__(self, in_channels, out_channels, image_size, *, classes=3, num_classes=None):
        super().__init__()
        self.combine = nets.Combine(in_channels, num_classes)
        self.body = nn.Conv2d(in_channels, 4, 3, 2, 1)
        self.src = nn.Conv2d(4, 1, 3, 1, 1)
        self.cls = nn.Linear(4, classes)

    def forward(self, *inputs):
        h = torch.relu(self.body(self.combine(*inputs)))
        return self.src(h), self.cls(h.mean(dim=(2, 3)))


class Mix(nn.Module):
    """Image + extras (latent, label) to an image: enough to test argument combining."""

    def __init__(self, in_channels, out_channels, image_size, *, num_classes=None):
        super().__init__()
        self.combine = nets.Combine(in_channels, num_classes)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 1, 1)

    def forward(self, *inputs):
        return torch.tanh(self.conv(self.combine(*inputs)))


class Encoder(nn.Module):
    """Image to (mu, logvar), each (N, latent)."""

    def __init__(self, in_channels, out_channels, image_size, *, latent=4, num_classes=None):
        super().__init__()
        self.combine = nets.Combine(in_channels, num_classes)
        self.mu = nn.Linear(in_channels, latent)
        self.logvar = nn.Linear(in_channels, latent)

    def forward(self, *inputs):
        h = self.combine(*inputs).mean(dim=(2, 3))
        return self.mu(h), self.logvar(h)


@pytest.fixture(autouse=True)
def test_archs(monkeypatch):
    monkeypatch.setitem(nets.ARCHS, "two_heads", nets._arch("two_heads", "discriminator", TwoHeads))
    monkeypatch.setitem(nets.ARCHS, "mix", nets._arch("mix", "generator", Mix))
    monkeypatch.setitem(nets.ARCHS, "encoder_for_tests", nets._arch("encoder_for_tests", "encoder", Encoder))


SPEC = """
name: language
data: {x: image, c_s: label(3)}
random:
  c_t: label(3)
  z: normal(4)
networks:
  G: {arch: mix}
  D: {arch: two_heads, classes: 3, heads: {src: probability, cls: raw}}
let:
  fake: G(x, c_t, z)
players:
  D:
    networks: [D]
    minimize:
      adv: -E[log(D.src(x))] - E[log(1 - D.src(fake))]
      cls: E[ce(D.cls(x), c_s)]
  G:
    networks: [G]
    minimize:
      adv: -E[log(D.src(fake))]
      cls: E[ce(D.cls(fake), c_t)]
"""


@pytest.fixture
def program():
    return lossgraph.compile(lossgraph.loads(SPEC, "language.yaml"))


def test_two_heads_on_one_input_are_one_forward(program):
    nets_ = program.build_networks(seed=0)
    calls = []
    nets_["D"].register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    program.losses(nets_, program.example_inputs(batch_size=2))
    assert len(calls) == 2  # D(x) and D(fake), each serving both heads


def test_losses_follow_the_formula_with_supplied_draws(program):
    nets_ = {k: v.double() for k, v in program.build_networks(seed=0).items()}
    inputs = program.example_inputs(batch_size=3, seed=1)
    inputs = {k: (v.double() if v.is_floating_point() else v) for k, v in inputs.items()}
    got = program.losses(nets_, inputs)
    fake = nets_["G"](inputs["x"], inputs["c_t"], inputs["z"])
    src_x, cls_x = nets_["D"](inputs["x"])
    src_f, cls_f = nets_["D"](fake)
    d_adv = -torch.log(torch.sigmoid(src_x)).mean() - torch.log(1 - torch.sigmoid(src_f)).mean()
    d_cls = F.cross_entropy(cls_x, inputs["c_s"])
    g = -torch.log(torch.sigmoid(src_f)).mean() + F.cross_entropy(cls_f, inputs["c_t"])
    torch.testing.assert_close(got["D"], d_adv + d_cls)
    torch.testing.assert_close(got["D/cls"], d_cls)
    torch.testing.assert_close(got["G"], g)


def test_missing_random_variables_are_drawn_and_supplied_ones_kept(program):
    inputs = program.example_inputs(batch_size=5, seed=0)
    assert inputs["z"].shape == (5, 4) and inputs["c_t"].shape == (5,)
    assert 0 <= int(inputs["c_t"].min()) and int(inputs["c_t"].max()) < 3
    data_only = {k: inputs[k] for k in ("x", "c_s")}
    drawn = program.draw(data_only)
    assert drawn["z"].shape == (5, 4) and not torch.equal(drawn["z"], inputs["z"])
    assert program.draw(inputs)["z"] is inputs["z"]


def test_label_inputs_are_one_hot_channels(program):
    config = program.network_configs["G"]
    assert config.in_channels == 3 + 3 + 4  # image, one-hot label of 3 classes, latent of 4
    assert dict(config.options)["num_classes"] == 3


def test_head_errors_are_located():
    bad = SPEC.replace("cls: E[ce(D.cls(x), c_s)]", "cls: E[ce(D.clss(x), c_s)]")
    with pytest.raises(lossgraph.SpecError) as error:
        lossgraph.compile(lossgraph.loads(bad, "language.yaml"))
    assert "network 'D' has no head 'clss'" in str(error.value) and "did you mean 'cls'?" in str(error.value)
    bad = SPEC.replace("cls: E[ce(D.cls(x), c_s)]", "cls: E[ce(D(x), c_s)]")
    with pytest.raises(lossgraph.SpecError, match="has heads src, cls: choose one"):
        lossgraph.compile(lossgraph.loads(bad, "language.yaml"))


def test_random_kind_errors_are_located():
    bad = SPEC.replace("z: normal(4)", "z: normall(4)")
    with pytest.raises(lossgraph.SpecError) as error:
        lossgraph.loads(bad, "language.yaml")
    assert "language.yaml:6:" in str(error.value) and "did you mean 'normal'?" in str(error.value)


def test_kl_matches_its_definition():
    spec = """
name: kl
data: {x: image}
random: {eps: normal_like(E.mu(x))}
networks:
  E: {arch: encoder_for_tests, latent: 4, heads: {mu: raw, logvar: raw}}
  D: {arch: two_heads, classes: 2, heads: {src: raw, cls: raw}}
let:
  z: E.mu(x) + exp(E.logvar(x) / 2) * eps
players:
  G:
    networks: [E]
    minimize:
      kl: E[kl(E.mu(x), E.logvar(x))]
      use: E[D.cls(x) * 0] + E[z]
  D:
    networks: [D]
    minimize:
      adv: E[D.src(x)]
"""
    program = lossgraph.compile(lossgraph.loads(spec, "kl.yaml"))
    nets_ = program.build_networks(seed=0)
    inputs = program.example_inputs(batch_size=2)
    assert inputs["eps"].shape == (2, 4)  # shaped like E.mu(x)
    got = program.losses(nets_, inputs)
    mu, logvar = nets_["E"](inputs["x"])
    want = (0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)).sum(1).mean()
    torch.testing.assert_close(got["G/kl"], want)
