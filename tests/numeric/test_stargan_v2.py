"""specs/stargan-v2.yaml against StarGAN v2's objective as docs/methods.md gives it, written out
here by hand: losses() of all four steps (D latent, D reference, G latent, G reference) equal it in
float64 at any iteration (the ds weight decays from 2), stay finite with logits in the hundreds,
and run each distinct network application once. Small networks keep it fast on the CPU."""

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import lossgraph
from tests.conftest import count_forwards

SMALL = ["networks.G.width=4", "networks.G.blocks=1", "networks.M.hidden=8", "networks.S.width=4",
         "networks.D.width=4", "networks.C.width=4", "train.image_size=16"]
STEPS = 2000  # the spec's run length, over which lambda_ds decays


@pytest.fixture(scope="module")
def program():
    return lossgraph.compile(lossgraph.load("stargan-v2", overrides=SMALL))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Scaled(torch.nn.Module):
    def __init__(self, net, scale):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, *args):
        return self.net(*args) * self.scale


def softplus(v):
    return torch.logaddexp(torch.zeros_like(v), v)  # log(1 + e^v), exact in float64


def l1(v):
    return v.abs().flatten(1).mean(1)


def pick(v, c):
    return v[torch.arange(v.shape[0]), c]


def r1(D, x, c):
    """R1 on real images: the batch mean of the per-sample sum of squared gradients."""
    leaf = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(pick(D(leaf), c).sum(), leaf)
    return (g ** 2).flatten(1).sum(1).mean()


def reference(n, v, iteration):
    """The four steps' objectives of docs/methods.md (StarGAN v2), each term and each step's total."""
    G, M, S, D, E = n["G"], n["M"], n["S"], n["D"], torch.mean
    x, c_s, c_t = v["x"], v["c_s"], v["c_t"]
    lambda_ds = 2 * max(0.0, 1 - iteration / STEPS)
    s_src, real = pick(S(x), c_s), pick(D(x), c_s)
    styles = {"": (pick(M(v["z1"]), c_t), pick(M(v["z2"]), c_t)),
              "_ref": (pick(S(v["x_ref"]), c_t), pick(S(v["x_ref2"]), c_t))}
    out = {}
    for suffix, (s, s2) in styles.items():
        fake = G(x, s)
        d = {"adv": E(softplus(-real)) + E(softplus(pick(D(fake), c_t))), "r1": 0.5 * r1(D, x, c_s)}
        g = {"adv": E(softplus(-pick(D(fake), c_t))), "sty": E(l1(pick(S(fake), c_t) - s)),
             "ds": -lambda_ds * E(l1(fake - G(x, s2))), "cyc": E(l1(G(fake, s_src) - x))}
        for player, terms in (("D" + suffix, d), ("G" + suffix, g)):
            out[player] = sum(terms.values())
            out.update({f"{player}/{term}": value for term, value in terms.items()})
    return out


def networks(program, seed, scale, dtype):
    nets = {name: net.to(dtype) for name, net in program.build_networks(seed=seed).items()}
    nets["D"] = Scaled(nets["D"], scale)
    return nets


def inputs_of(program, seed, batch, dtype):
    return {k: (v.to(dtype) if v.is_floating_point() else v)
            for k, v in program.example_inputs(batch_size=batch, seed=seed).items()}


PROPERTY = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                phases=(Phase.explicit, Phase.reuse, Phase.generate))


@settings(max_examples=6, **PROPERTY)
@given(seed=st.integers(0, 2**16), batch=st.integers(2, 3), scale=st.sampled_from([0.1, 1.0, 10.0]),
       iteration=st.sampled_from([0, 1, 777, 1999, 2000, 5000]))
def test_losses_equal_the_methods_objective_in_float64(program, seed, batch, scale, iteration):
    nets = networks(program, seed, scale, torch.float64)
    inputs = inputs_of(program, seed, batch, torch.float64)
    got = program.losses(nets, inputs, iteration=iteration)
    want = reference(nets, inputs, iteration)
    assert set(want) <= set(got), sorted(set(want) - set(got))
    for key, value in want.items():
        torch.testing.assert_close(got[key].detach(), value.detach(), rtol=1e-10, atol=1e-10, msg=key)


def test_the_data_gives_two_references_of_the_target_domain():
    program = lossgraph.compile(lossgraph.load("stargan-v2", overrides=SMALL))
    batch = program.example_inputs(batch_size=4, seed=0)
    assert batch["x_ref"].shape == batch["x_ref2"].shape == batch["x"].shape
    assert not torch.equal(batch["x_ref"], batch["x_ref2"])


@settings(max_examples=3, **PROPERTY)
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([100.0, 300.0]))
def test_float32_losses_stay_finite_with_logits_in_the_hundreds(program, seed, scale):
    nets = networks(program, seed, scale, torch.float32)
    inputs = inputs_of(program, seed, 2, torch.float32)
    got = program.losses(nets, inputs)
    assert all(torch.isfinite(v) for v in got.values()), {k: float(v) for k, v in got.items()}
    nets64 = {name: net.double() for name, net in nets.items()}
    want = reference(nets64, inputs_of(program, seed, 2, torch.float64), 0)
    for key in ("D", "D_ref", "G/adv", "G_ref/adv"):
        assert torch.isfinite(want[key])
        torch.testing.assert_close(got[key].double().detach(), want[key].detach(), rtol=2e-4, atol=2e-3, msg=key)


def test_losses_run_each_distinct_network_application_once(program):
    nets = program.build_networks(seed=0)
    counts = count_forwards(nets)
    program.losses(nets, program.example_inputs(batch_size=2))
    # D: x (R1's too), fake_l, fake_r; G: fake_l, fake_r, their ds partners, two cycles;
    # M: z1, z2; S: x, x_ref, x_ref2, fake_l, fake_r; the judge C only evaluates. G_ref's terms,
    # `updates: [G]`, read S's styles cut from S: losses() computes those (S(x_ref), S(x)) and
    # what follows from them (G(x, sr1), D(fake_r)) once more, as values of their own.
    assert counts == {"D": 3 + 1, "G": 6 + 1, "M": 2, "S": 5 + 2, "C": 0}


def test_an_iteration_runs_no_more_forwards_than_the_released_code(program):
    """The released code's iteration runs D 6, G 8, M 3 and S 7 times (core/solver.py's four
    losses); the compiled one reuses step 1's fake in step 3 (G has not moved in between) and
    batches G_ref's two styles."""
    nets = program.build_networks(seed=0)
    counts = count_forwards(nets)
    program.trainer(nets).step(program.example_inputs(batch_size=2))
    assert counts["D"] <= 6 and counts["G"] <= 8 and counts["M"] <= 3 and counts["S"] <= 7 and counts["C"] == 0


def test_one_iteration_equals_the_hand_written_four_steps(program):
    """trainer.step against the released code's iteration written from docs/methods.md: one Adam per
    network (betas (0, 0.99), weight decay 1e-4, lr 1e-4, M 1e-6); D latent, D reference, G latent
    (G, M, S stepped), G reference (G alone stepped); the generator side constant in D's steps,
    only ds's second image detached in G's."""
    import copy

    # float64: a first Adam step is about lr * sign(g), so in float32 the rounding noise of a
    # gradient that is zero in exact arithmetic (a bias under instance norm) would move it by lr
    nets = {name: net.double() for name, net in program.build_networks(seed=0).items()}
    mine = copy.deepcopy(nets)
    inputs = inputs_of(program, 3, 2, torch.float64)
    program.trainer(nets).step(inputs)
    G, M, S, D = (mine[name] for name in "GMSD")
    adam = {name: torch.optim.Adam(mine[name].parameters(), lr=1e-6 if name == "M" else 1e-4,
                                   betas=(0.0, 0.99), weight_decay=1e-4) for name in "GMSD"}
    x, c_s, c_t = inputs["x"], inputs["c_s"], inputs["c_t"]
    E = torch.mean

    def styles(kind):
        if kind == "latent":
            return pick(M(inputs["z1"]), c_t), pick(M(inputs["z2"]), c_t)
        return pick(S(inputs["x_ref"]), c_t), pick(S(inputs["x_ref2"]), c_t)

    for kind in ("latent", "reference"):  # D's two steps
        with torch.no_grad():
            fake = G(x, styles(kind)[0])
        real = pick(D(x), c_s)
        loss = E(softplus(-real)) + E(softplus(pick(D(fake), c_t))) + 0.5 * r1_graph(D, x, c_s)
        adam["D"].zero_grad()
        loss.backward()
        adam["D"].step()
    for kind, stepped in (("latent", "GMS"), ("reference", "G")):  # G's two steps
        s, s2 = styles(kind)
        fake = G(x, s)
        with torch.no_grad():
            fake2 = G(x, s2)
        loss = (E(softplus(-pick(D(fake), c_t))) + E(l1(pick(S(fake), c_t) - s)) - 2 * E(l1(fake - fake2))
                + E(l1(G(fake, pick(S(x), c_s)) - x)))
        for name in "GMSD":
            adam[name].zero_grad()
        loss.backward()
        for name in stepped:
            adam[name].step()
    for name in "GMSD":
        for a, b in zip(nets[name].parameters(), mine[name].parameters()):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=name)


def r1_graph(D, x, c):
    """R1 kept differentiable, for a step that minimizes it."""
    leaf = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(pick(D(leaf), c).sum(), leaf, create_graph=True)
    return (g ** 2).flatten(1).sum(1).mean()
