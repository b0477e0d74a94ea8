"""Per-domain outputs and gradients inside a loss: `pick(v, c)`, `grad(out, v)`, and the standard
library's penalties written with them (`r1`, `gp`).

Each compiled loss is checked against the formula written out here independently, in float64, on
the same networks and inputs (hypothesis varies seeds, batch sizes and labels); the interpreter
(the oracle of tests/numeric/test_passes.py) is checked against the generated code; and
stargan-wgan-gp, whose `gp` was a builtin with its own helper before it became a macro, computes
exactly what that helper computed, losses and updates.
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import lossgraph
from lossgraph.compiler.interpret import interpret
from tests.conftest import count_forwards

PROPERTY = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], phases=(Phase.explicit, Phase.reuse, Phase.generate))

# StarGAN v2's discriminator objective (docs/methods.md): per-domain logits picked by a label, R1 on the reals
R1_SPEC = """
name: r1
data: {x: image, c_s: label(4)}
random: {c_t: label(4)}
networks:
  G: {arch: resnet_generator, width: 8, blocks: 1}
  D: {arch: classifier, classes: 4}
let:
  fake: G(x, c_t)
  real: pick(D(x), c_s)
players:
  D:
    networks: [D]
    minimize:
      adv: E[softplus(-real)] + E[softplus(pick(D(fake), c_t))]
      r1: {weight: 0.5, expr: "r1(real, x)"}
  G:
    networks: [G]
    minimize:
      adv: E[softplus(-pick(D(fake), c_t))]
train: {image_size: 16}
"""


def compile_text(text, name="grads.yaml"):
    return lossgraph.compile(lossgraph.loads(text, name))


@pytest.fixture(scope="module")
def r1_program():
    return compile_text(R1_SPEC)


def float64(program, seed, batch):
    nets = {name: net.double() for name, net in program.build_networks(seed=seed).items()}
    inputs = {k: (v.double() if v.is_floating_point() else v) for k, v in program.example_inputs(batch_size=batch, seed=seed).items()}
    return nets, inputs


def r1_reference(nets, v):
    """docs/methods.md: D_obj's adv and r1 (weight 0.5): g = d(sum_n real_n)/dx, r1 = mean_n sum g_n^2."""
    D, G = nets["D"], nets["G"]
    x = v["x"].detach().clone().requires_grad_(True)
    real = D(x)[torch.arange(len(x)), v["c_s"]]
    fake_logit = D(G(v["x"], v["c_t"]))[torch.arange(len(x)), v["c_t"]]
    (g,) = torch.autograd.grad(real.sum(), x, create_graph=True)
    adv = F.softplus(-real).mean() + F.softplus(fake_logit).mean()
    r1 = 0.5 * (g ** 2).reshape(len(x), -1).sum(1).mean()
    return {"D/adv": adv, "D/r1": r1, "D": adv + r1, "G": F.softplus(-fake_logit).mean()}


@settings(max_examples=8, **PROPERTY)
@given(seed=st.integers(0, 2**16), batch=st.integers(1, 4))
def test_pick_and_r1_equal_the_formula_in_float64(r1_program, seed, batch):
    nets, inputs = float64(r1_program, seed, batch)
    got = r1_program.losses(nets, inputs)
    want = r1_reference(nets, inputs)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=1e-10, atol=1e-12, msg=key)


def test_r1_is_differentiated_again_into_the_discriminator_only(r1_program):
    nets, inputs = float64(r1_program, 3, 3)
    got = r1_program.losses(nets, inputs)["D/r1"]
    want = r1_reference(nets, inputs)["D/r1"]
    parameters = list(nets["D"].parameters())  # the output layer's bias does not change the slope: unused
    mine = torch.autograd.grad(got, parameters, allow_unused=True)
    theirs = torch.autograd.grad(want, parameters, allow_unused=True)
    assert sum(g is not None for g in mine) >= len(parameters) - 1
    for a, b in zip(mine, theirs):
        assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, rtol=1e-10, atol=1e-12))
    assert all(g is None for g in torch.autograd.grad(got, list(nets["G"].parameters()), allow_unused=True))


def test_r1_shares_the_discriminators_forward_on_the_reals(r1_program):
    """R1 differentiates D(x) with respect to x: the same call as the adversarial term's, run once
    on `x.requires_grad_()`, as a hand-written step runs it (Note [One forward for R1])."""
    nets = r1_program.build_networks(seed=0)
    counts = count_forwards(nets)
    r1_program.losses(nets, r1_program.example_inputs(batch_size=2))
    assert counts == {"D": 2, "G": 1}  # D(x), D(fake); G(x, c_t)
    iteration = r1_program.code.split("def iteration")[1].split("def samples")[0]
    assert iteration.count("torch.autograd.grad(") == 1 and "create_graph=True" in iteration
    assert "x_in = x.detach().requires_grad_()" in iteration and "D_x_in = D(x_in)" in iteration


def test_a_trainer_step_with_r1_is_the_hand_written_step():
    # plain SGD: the update is the gradient itself (Adam's first step would be its sign, noise included)
    program = compile_text(R1_SPEC + "optim: {D: {sgd: {lr: 0.5}}}\n")
    nets = program.build_networks(seed=1)
    mine = program.build_networks(seed=1)
    trainer = program.trainer(nets)
    inputs = program.example_inputs(batch_size=3, seed=2)
    stats = trainer.step(inputs)
    optimizer = torch.optim.SGD(mine["D"].parameters(), lr=0.5)  # D's step by hand
    want = r1_reference(mine, inputs)
    optimizer.zero_grad()
    want["D"].backward()
    optimizer.step()
    assert stats["D"] == pytest.approx(float(want["D"].detach()), rel=1e-6)
    for a, b in zip(nets["D"].parameters(), mine["D"].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_interpreter_computes_what_the_generated_code_does(r1_program):
    nets, inputs = float64(r1_program, 5, 3)
    got = r1_program.losses(nets, inputs)
    for player in r1_program.graph.players:
        values = interpret([player.loss], nets, inputs)
        torch.testing.assert_close(values[player.loss], got[player.name], rtol=1e-12, atol=1e-12)


def test_gp_is_a_standard_macro_written_with_grad():
    from lossgraph.language.macros import standard_library

    assert standard_library()["gp"].body == "gp_at(D, interpolate(real, fake))"
    assert "grad(D(v), v)" in standard_library()["gp_at"].body
    program = lossgraph.compile("stargan-wgan-gp")
    for function in ("def losses", "def iteration"):
        body = program.code.split(function)[1].split("\ndef ")[0]
        assert body.count("torch.autograd.grad(") == 1 and body.count("interpolate(x, fake") == 1


def _old_gradient_penalty(D, real, fake):
    """The `gp` builtin's helper as it was (runtime.gradient_penalty), written out: the reference."""
    alpha = torch.rand((real.shape[0], 1, 1, 1), dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(mixed)[0].sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def _stargan_wgan_gp_iteration(nets, v, optimizers):
    """stargan-wgan-gp's iteration by hand, the penalty as the old helper drew and computed it."""
    D, G, x, c_s, c_t = nets["D"], nets["G"], v["x"], v["c_s"], v["c_t"]
    with torch.no_grad():
        fake = G(x, c_t)
    for _ in range(5):
        src_fake, _ = D(fake)
        src_x, cls_x = D(x)
        gp = _old_gradient_penalty(D, x, fake)
        loss = src_fake.mean() - src_x.mean() + 10 * gp + F.cross_entropy(cls_x, c_s, reduction="none").mean()
        optimizers["D"].zero_grad(set_to_none=True)
        loss.backward(inputs=list(D.parameters()))
        optimizers["D"].step()
    fake = G(x, c_t)
    src_fake, cls_fake = D(fake)
    loss = -src_fake.mean() + F.cross_entropy(cls_fake, c_t, reduction="none").mean() + 10 * (x - G(fake, c_s)).abs().mean()
    optimizers["G"].zero_grad(set_to_none=True)
    loss.backward(inputs=list(G.parameters()))
    optimizers["G"].step()


def test_stargan_wgan_gp_computes_exactly_what_the_gp_builtin_did():
    """The penalty's draw happens where the helper drew it (the only draw in D's step), and the
    arithmetic is the helper's: losses and two iterations' updates are equal to the bit."""
    program = lossgraph.compile("stargan-wgan-gp")
    inputs = program.example_inputs(batch_size=3, seed=7)
    nets = program.build_networks(seed=3)
    torch.manual_seed(11)
    got = program.losses(nets, inputs)["D/adv"]
    torch.manual_seed(11)
    D, fake = nets["D"], nets["G"](inputs["x"], inputs["c_t"])
    want = D(fake)[0].mean() - D(inputs["x"])[0].mean() + 10 * _old_gradient_penalty(D, inputs["x"], fake)
    assert torch.equal(got, want)

    trainer = program.trainer(nets)
    mine = program.build_networks(seed=3)
    adam = lambda net: torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.5, 0.999), fused=True)  # noqa: E731
    optimizers = {"D": adam(mine["D"]), "G": adam(mine["G"])}
    for _ in range(2):
        torch.manual_seed(12)
        trainer.step(inputs)
        torch.manual_seed(12)
        _stargan_wgan_gp_iteration(mine, inputs, optimizers)
    for name in ("D", "G"):
        for (key, a), b in zip(nets[name].named_parameters(), mine[name].parameters()):
            assert torch.equal(a, b), f"{name}.{key}"


def test_gp_at_points_and_the_wgan_gp_formula_in_float64():
    program = lossgraph.compile("stargan-wgan-gp", ["players.D.minimize.adv=gp_at(D.src, x)"])
    nets, inputs = float64(program, 4, 3)
    got = program.losses(nets, inputs)["D/adv"]
    x = inputs["x"].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(nets["D"](x)[0].sum(), x, create_graph=True)
    want = ((g.reshape(3, -1).pow(2).sum(1).sqrt() - 1) ** 2).mean()
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_two_penalties_draw_their_own_mixes():
    program = lossgraph.compile("stargan-wgan-gp", ["players.D.minimize.adv=gp(D.src, x, fake) - gp(D.src, x, fake)"])
    assert program.code.count("= interpolate(x, fake") == 4  # two in losses, two in the iteration
    assert float(program.losses(program.build_networks(), program.example_inputs(batch_size=4))["D/adv"]) != 0


@pytest.mark.parametrize(("override", "message"), [
    ("players.D.minimize.cls=E[pick(l1(x - fake), c_s)]", "pick(v, c) needs v with one output per class in dimension 1, shape (N, K, ...); l1(x - fake) has shape (2,)"),
    ("players.D.minimize.cls=E[pick(D.cls(x), x)]", "pick(v, c) selects each sample's output by its label c, but x is an image"),
    ("players.D.minimize.cls=E[l2sq(grad(D.cls(x), fake))]", "grad(out, v) differentiates out with respect to v, but out does not depend on v"),
    ("players.D.minimize.cls=E[l2sq(grad(D.cls(x), c_s))]", "grad(out, v) differentiates out with respect to v, but out does not depend on v"),
    ("+evaluate.slope=E[l2sq(grad(D.src(x), x))]", "grad needs autograd, which samples: and evaluate: run without"),
])
def test_pick_and_grad_mistakes_are_located(override, message):
    with pytest.raises(lossgraph.SpecError) as error:
        lossgraph.compile("stargan-wgan-gp", [override])
    text = str(error.value)
    assert message in text and "<override 1>:1:" in text


def test_pick_takes_a_label_of_as_many_classes_as_outputs():
    with pytest.raises(lossgraph.SpecError) as error:
        lossgraph.compile("stargan-wgan-gp", ["+random.k=label(3)", "players.D.minimize.cls=E[relu(1 - pick(D.cls(x), k))]"])
    assert "<override 2>:1:35: players.D.minimize.cls: pick: D.cls(x) gives 4 outputs per sample, but k is a label of 3 classes" in str(error.value)


def test_pick_needs_a_label_of_as_many_classes_as_outputs():
    text = R1_SPEC.replace("D: {arch: classifier, classes: 4}", "D: {arch: classifier, classes: 3}")
    with pytest.raises(lossgraph.SpecError) as error:
        compile_text(text, "r1.yaml")
    assert "pick: D(x) gives 3 outputs per sample, but c_s is a label of 4 classes" in str(error.value)
    assert "r1.yaml:" in str(error.value)


def test_grad_of_a_label_is_refused():
    text = R1_SPEC.replace('adv: E[softplus(-pick(D(fake), c_t))]', 'adv: E[softplus(-pick(D(fake), c_t))] + E[l2sq(grad(fake, c_t))]')
    with pytest.raises(lossgraph.SpecError, match="c_t is a label \\(a class index\\), not a number: grad cannot take it"):
        compile_text(text)


class PerDomain(torch.nn.Module):
    """Image to (N, K, d): one d-vector per domain, as StarGAN v2's style encoder and mapping network."""

    def __init__(self, in_channels, out_channels, image_size, *, domains=4, size=3):
        super().__init__()
        self.domains, self.size = domains, size
        self.linear = torch.nn.Linear(in_channels, domains * size)

    def forward(self, x):
        return self.linear(x.mean(dim=(2, 3))).view(len(x), self.domains, self.size)


@settings(max_examples=10, **PROPERTY)
@given(seed=st.integers(0, 2**16), labels=st.lists(st.integers(0, 3), min_size=1, max_size=4))
def test_pick_of_per_domain_vectors_takes_each_samples_row(seed, labels):
    """pick on (N, K, d) outputs (StarGAN v2's style codes): the label indexes dimension 1."""
    import lossgraph.nets as architectures

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(architectures.ARCHS, "per_domain", architectures._arch("per_domain", "encoder", PerDomain))
        program = compile_text("""
name: styles
data: {x: image, c: label(4)}
networks:
  S: {arch: per_domain}
  G: {arch: resnet_generator, width: 8, blocks: 1}
players:
  G:
    networks: [G, S]
    minimize:
      sty: E[l1(pick(S(G(x)), c) - pick(S(x), c))]
train: {image_size: 16}
""")
        nets, inputs = float64(program, seed, len(labels))
    inputs["c"] = torch.tensor(labels)
    got = program.losses(nets, inputs)["G/sty"]
    rows = torch.arange(len(labels))
    want = (nets["S"](nets["G"](inputs["x"]))[rows, inputs["c"]] - nets["S"](inputs["x"])[rows, inputs["c"]]).abs().mean()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_log_of_a_picked_probability_is_computed_stably():
    """A probability network's per-domain output: pick(D(x), c) is sigmoid(pick(logits, c)), so
    log(pick(D(x), c)) becomes -softplus(-logit), finite with logits in the hundreds."""
    program = compile_text(R1_SPEC.replace("D: {arch: classifier, classes: 4}", "D: {arch: classifier, classes: 4, output: probability}")
                           .replace("adv: E[softplus(-real)] + E[softplus(pick(D(fake), c_t))]", "adv: -E[log(real)] - E[log(1 - pick(D(fake), c_t))]")
                           .replace('r1: {weight: 0.5, expr: "r1(real, x)"}', "").replace("adv: E[softplus(-pick(D(fake), c_t))]", "adv: -E[log(pick(D(fake), c_t))]"))
    assert "F.softplus(" in program.code and "torch.log(" not in program.code
    nets = program.build_networks(seed=0)

    class Scaled(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, *args):
            return 300 * self.net(*args)

    nets["D"] = Scaled(nets["D"])
    inputs = program.example_inputs(batch_size=4, seed=1)
    got = program.losses(nets, inputs)
    with torch.no_grad():
        rows = torch.arange(4)
        real = nets["D"](inputs["x"]).double()[rows, inputs["c_s"]]
        fake = nets["D"](nets["G"](inputs["x"], inputs["c_t"])).double()[rows, inputs["c_t"]]
        want = F.softplus(-real).mean() + F.softplus(fake).mean()  # -log sigmoid and -log(1 - sigmoid), exactly
    assert torch.isfinite(got["D"]) and float(got["D"]) == pytest.approx(float(want), rel=1e-5)


def test_losses_with_a_gradient_inside_work_under_no_grad():
    # a caller evaluating losses under torch.no_grad() still gets the penalty, not autograd's error
    import lossgraph

    program = lossgraph.compile("stargan-wgan-gp")
    assert program.takes_gradients and not lossgraph.compile("cyclegan").takes_gradients
    nets = program.build_networks(seed=0)
    inputs = program.draw(program.example_inputs(batch_size=2, seed=0))
    torch.manual_seed(0)  # the penalty's mixing weights
    expected = {key: float(value) for key, value in program.losses(nets, inputs).items()}
    torch.manual_seed(0)
    with torch.no_grad():
        got = {key: float(value) for key, value in program.losses(nets, inputs).items()}
    assert got == expected
