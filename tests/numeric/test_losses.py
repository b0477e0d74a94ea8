"""Compiled losses equal the reference objectives of docs/methods.md.

The references below are written directly from docs/methods.md, naively (log of a sigmoid, as the
paper writes it), and evaluated in float64 on the same random networks and inputs. Hypothesis
varies seeds, batch sizes and the scale of the discriminator logits; in the hundreds the naive
float32 formula overflows, the compiled float32 losses must stay finite and match float64.
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import lossgraph
from tests.conftest import count_forwards


class Scaled(torch.nn.Module):
    """A discriminator whose logits are multiplied by `scale` (to push them into the hundreds)."""

    def __init__(self, net, scale):
        super().__init__()
        self.net = net
        self.scale = scale

    def forward(self, *args):
        out = self.net(*args)
        return tuple(o * self.scale for o in out) if isinstance(out, tuple) else out * self.scale


def l1(v):
    return v.abs().flatten(1).mean(1)


def l2sq(v):
    return (v ** 2).flatten(1).mean(1)


def naive_log_d(logits):
    return torch.log(torch.sigmoid(logits))


def naive_log_one_minus_d(logits):
    return torch.log(1 - torch.sigmoid(logits))


def _elementwise_mpmath(function):
    """Apply `function` to every element with 400 significant digits: exact for |logits| < 900."""
    import mpmath

    def apply(logits):
        flat = logits.detach().double().flatten().tolist()
        with mpmath.workdps(400):
            values = [float(function(mpmath.mpf(v))) for v in flat]
        return torch.tensor(values, dtype=torch.float64).reshape(logits.shape)

    return apply


exact_log_d = _elementwise_mpmath(lambda l: mpmath_log(1 / (1 + mpmath_exp(-l))))
exact_log_one_minus_d = _elementwise_mpmath(lambda l: mpmath_log(1 - 1 / (1 + mpmath_exp(-l))))


def mpmath_log(v):
    import mpmath

    return mpmath.log(v)


def mpmath_exp(v):
    import mpmath

    return mpmath.exp(v)


def discogan_reference(n, v, log_d=naive_log_d, log_one_minus_d=naive_log_one_minus_d):
    """docs/methods.md: log D(v) with D = sigmoid(logits), written as the paper writes it."""
    x, y = v["x"], v["y"]
    G_XY, G_YX = n["G_XY"], n["G_YX"]
    E = torch.mean
    V_D = (E(log_d(n["D_Y"](y))) + E(log_one_minus_d(n["D_Y"](G_XY(x))))
           + E(log_d(n["D_X"](x))) + E(log_one_minus_d(n["D_X"](G_YX(y)))))
    G = (-E(log_d(n["D_Y"](G_XY(x)))) - E(log_d(n["D_X"](G_YX(y))))
         + E(l2sq(G_YX(G_XY(x)) - x)) + E(l2sq(G_XY(G_YX(y)) - y)))
    return {"D": -V_D, "G": G}


def cyclegan_reference(n, v, **_):
    x, y = v["x"], v["y"]
    D_X, D_Y, G_XY, G_YX = n["D_X"], n["D_Y"], n["G_XY"], n["G_YX"]
    E = torch.mean
    D = E((D_Y(y) - 1) ** 2) + E(D_Y(G_XY(x)) ** 2) + E((D_X(x) - 1) ** 2) + E(D_X(G_YX(y)) ** 2)
    G = E((D_Y(G_XY(x)) - 1) ** 2) + E((D_X(G_YX(y)) - 1) ** 2) + 10 * (E(l1(G_YX(G_XY(x)) - x)) + E(l1(G_XY(G_YX(y)) - y)))
    return {"D": D, "G": G, "G/cycle": 10 * (E(l1(G_YX(G_XY(x)) - x)) + E(l1(G_XY(G_YX(y)) - y)))}


def pix2pix_reference(n, v, log_d=naive_log_d, log_one_minus_d=naive_log_one_minus_d):
    x, y = v["x"], v["y"]
    G, D = n["G"], n["D"]
    E = torch.mean
    V = E(log_d(D(x, y))) + E(log_one_minus_d(D(x, G(x))))
    G_loss = -E(log_d(D(x, G(x)))) + 100 * E(l1(y - G(x)))
    return {"D": -V, "G": G_loss, "G/l1": 100 * E(l1(y - G(x)))}


def dualgan_reference(n, v, **_):
    x, y = v["x"], v["y"]
    D_X, D_Y, G_XY, G_YX = n["D_X"], n["D_Y"], n["G_XY"], n["G_YX"]
    E = torch.mean
    V = E(D_Y(y)) - E(D_Y(G_XY(x))) + E(D_X(x)) - E(D_X(G_YX(y)))
    G = -E(D_Y(G_XY(x))) - E(D_X(G_YX(y))) + 500 * (E(l1(G_YX(G_XY(x)) - x)) + E(l1(G_XY(G_YX(y)) - y)))
    return {"D": -V, "G": G}


def bicyclegan_reference(n, v, log_d=naive_log_d, log_one_minus_d=naive_log_one_minus_d):
    G, Enc, D_VAE, D_LR = n["G"], n["E"], n["D_VAE"], n["D_LR"]
    x, y, z, eps = v["x"], v["y"], v["z"], v["eps"]
    E = torch.mean
    mu, logvar = Enc(y)
    fake_vae = G(x, mu + torch.exp(logvar / 2) * eps)
    fake_lr = G(x, z)
    V = E(log_d(D_VAE(y))) + E(log_one_minus_d(D_VAE(fake_vae))) + E(log_d(D_LR(y))) + E(log_one_minus_d(D_LR(fake_lr)))
    kl = (0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)).sum(1)
    latent = E(l1(z - Enc(fake_lr)[0]))
    G_loss = -E(log_d(D_VAE(fake_vae))) - E(log_d(D_LR(fake_lr))) + 10 * E(l1(y - fake_vae)) + 0.01 * E(kl) + 0.5 * latent
    return {"D": -V, "G": G_loss, "G/latent": 0.5 * latent}


def cogan_reference(n, v, log_d=naive_log_d, log_one_minus_d=naive_log_one_minus_d):
    E = torch.mean
    x1, x2, z = v["x1"], v["x2"], v["z"]
    V = (E(log_d(n["D1"](x1))) + E(log_one_minus_d(n["D1"](n["G1"](z))))
         + E(log_d(n["D2"](x2))) + E(log_one_minus_d(n["D2"](n["G2"](z)))))
    return {"D": -V, "G": V}


def unit_reference(n, v, log_d=naive_log_d, log_one_minus_d=naive_log_one_minus_d):
    E = torch.mean
    x1, x2 = v["x1"], v["x2"]
    mu1, mu2 = n["E1"](x1), n["E2"](x2)
    z1, z2 = mu1 + v["eps1"], mu2 + v["eps2"]
    x12, x21 = n["G2"](z1), n["G1"](z2)
    mu12, mu21 = n["E2"](x12), n["E1"](x21)
    x121, x212 = n["G1"](mu12 + v["eps12"]), n["G2"](mu21 + v["eps21"])
    VAE_1 = 0.1 * E(mu1 ** 2) + 100 * E(l1(x1 - n["G1"](z1)))
    VAE_2 = 0.1 * E(mu2 ** 2) + 100 * E(l1(x2 - n["G2"](z2)))
    GAN_1 = 10 * (E(log_d(n["D1"](x1))) + E(log_one_minus_d(n["D1"](x21))))
    GAN_2 = 10 * (E(log_d(n["D2"](x2))) + E(log_one_minus_d(n["D2"](x12))))
    CC_1 = 0.1 * E(mu1 ** 2) + 0.1 * E(mu12 ** 2) + 100 * E(l1(x1 - x121))
    CC_2 = 0.1 * E(mu2 ** 2) + 0.1 * E(mu21 ** 2) + 100 * E(l1(x2 - x212))
    V = VAE_1 + GAN_1 + CC_1 + VAE_2 + GAN_2 + CC_2
    return {"D": -V, "G": V, "G/GAN_2": GAN_2}


def pixelda_reference(n, v, log_d=naive_log_d, log_one_minus_d=naive_log_one_minus_d):
    E = torch.mean
    G, D, T = n["G"], n["D"], n["T"]
    fake = G(v["x_s"], v["z"])
    V = E(log_d(D(v["x_t"]))) + E(log_one_minus_d(D(fake)))
    task = 0.1 * (F.cross_entropy(T(fake), v["c_s"]) + F.cross_entropy(T(v["x_s"]), v["c_s"]))
    return {"D": -V, "G": -E(log_d(D(fake))) + task, "G/task": task}


def stargan_reference(n, v, log_d=naive_log_d, log_one_minus_d=naive_log_one_minus_d):
    E = torch.mean
    G, D = n["G"], n["D"]
    x, c_s, c_t = v["x"], v["c_s"], v["c_t"]
    fake = G(x, c_t)
    (src_x, cls_x), (src_f, cls_f) = D(x), D(fake)
    adv = E(log_d(src_x)) + E(log_one_minus_d(src_f))
    return {
        "D": -adv + F.cross_entropy(cls_x, c_s),
        "G": adv + F.cross_entropy(cls_f, c_t) + 10 * E(l1(x - G(fake, c_s))),
    }


def munit_reference(n, v, **_):
    """docs/methods.md's MUNIT: least squares summed over D's heads (full, half), nothing detached."""
    E = torch.mean
    x1, x2, s1, s2 = v["x1"], v["x2"], v["s1"], v["s2"]
    c1, c2 = n["Ec1"](x1), n["Ec2"](x2)
    x12, x21 = n["G2"](c1, s2), n["G1"](c2, s1)
    (d1_x1_full, d1_x1_half), (d1_x21_full, d1_x21_half) = n["D1"](x1), n["D1"](x21)
    (d2_x2_full, d2_x2_half), (d2_x12_full, d2_x12_half) = n["D2"](x2), n["D2"](x12)
    D = (E((d1_x1_full - 1) ** 2) + E(d1_x21_full ** 2) + E((d1_x1_half - 1) ** 2) + E(d1_x21_half ** 2)
         + E((d2_x2_full - 1) ** 2) + E(d2_x12_full ** 2) + E((d2_x2_half - 1) ** 2) + E(d2_x12_half ** 2))
    adv = E((d1_x21_full - 1) ** 2) + E((d1_x21_half - 1) ** 2) + E((d2_x12_full - 1) ** 2) + E((d2_x12_half - 1) ** 2)
    recon_x = E(l1(n["G1"](c1, n["Es1"](x1)) - x1)) + E(l1(n["G2"](c2, n["Es2"](x2)) - x2))
    recon_s = E(l1(n["Es1"](x21) - s1)) + E(l1(n["Es2"](x12) - s2))
    recon_c = E(l1(n["Ec2"](x12) - c1)) + E(l1(n["Ec1"](x21) - c2))
    return {"D": D, "G": adv + 10 * recon_x + recon_s + recon_c, "G/adv": adv, "G/recon_x": 10 * recon_x,
            "G/recon_s": recon_s, "G/recon_c": recon_c}


REFERENCES = {
    "pixelda": pixelda_reference,
    "stargan": stargan_reference,
    "bicyclegan": bicyclegan_reference,
    "cogan": cogan_reference,
    "unit": unit_reference,
    "discogan": discogan_reference,
    "cyclegan": cyclegan_reference,
    "pix2pix": pix2pix_reference,
    "dualgan": dualgan_reference,
    "munit": munit_reference,
}

# Distinct network applications in each objective: what losses() must run, once each.
FORWARDS = {
    "discogan": {"G_XY": 2, "G_YX": 2, "D_X": 2, "D_Y": 2},   # G_XY: x, fake_x; D_Y: y, fake_y; ...
    "cyclegan": {"G_XY": 2, "G_YX": 2, "D_X": 2, "D_Y": 2},
    "dualgan": {"G_XY": 2, "G_YX": 2, "D_X": 2, "D_Y": 2},
    "pix2pix": {"G": 1, "D": 2},                                # G(x); D(x, y), D(x, fake)
    "bicyclegan": {"G": 2, "E": 2, "D_VAE": 2, "D_LR": 2},      # E(y), E(fake_lr); G(x, z_enc), G(x, z)
    "cogan": {"G1": 1, "G2": 1, "D1": 2, "D2": 2},              # one z feeds both generators
    "unit": {"E1": 2, "E2": 2, "G1": 3, "G2": 3, "D1": 2, "D2": 2},
    "pixelda": {"G": 1, "D": 2, "T": 2},                        # T(fake), T(x_s)
    "stargan": {"G": 2, "D": 2},                                # G(x, c_t), G(fake, c_s); D(x), D(fake) serve both heads
    # Ec1(x1), Ec1(x21); Es1(x1), Es1(x21); G1(c2, s1), G1(c1, Es1(x1)); D1(x1), D1(x21) serve both heads
    "munit": {"Ec1": 2, "Ec2": 2, "Es1": 2, "Es2": 2, "G1": 2, "G2": 2, "D1": 2, "D2": 2},
}


@pytest.fixture(scope="module", params=sorted(REFERENCES))
def compiled(request):
    return request.param, lossgraph.compile(request.param)


def networks(program, seed, scale, dtype):
    nets = program.build_networks(seed=seed)
    for name in nets:
        nets[name] = nets[name].to(dtype)
        if name.startswith("D"):
            nets[name] = Scaled(nets[name], scale)
    return nets


# No shrinking: a failing example is reported as drawn (shrinking networks is slow and adds little).
PROPERTY = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], phases=(Phase.explicit, Phase.reuse, Phase.generate))


@settings(max_examples=12, **PROPERTY)
@given(seed=st.integers(0, 2**16), batch=st.integers(2, 3), scale=st.sampled_from([0.1, 1.0, 10.0]))  # batch norm needs 2
def test_losses_equal_reference_in_float64(compiled, seed, batch, scale):
    name, program = compiled
    nets = networks(program, seed, scale, torch.float64)
    inputs = {k: (v.double() if v.is_floating_point() else v) for k, v in program.example_inputs(batch_size=batch, seed=seed).items()}
    got = program.losses(nets, inputs)
    # log D and log(1 - D) exactly (mpmath): written naively they lose digits once |logit| > ~15,
    # more than this test's 1e-10 tolerance (the compiled, stable forms do not)
    with torch.no_grad():
        want = REFERENCES[name](nets, inputs, log_d=exact_log_d, log_one_minus_d=exact_log_one_minus_d)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=1e-10, atol=1e-10, msg=f"{name} {key}")


@settings(max_examples=6, **PROPERTY)
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([100.0, 300.0]))
def test_float32_losses_stay_finite_and_exact_with_logits_in_the_hundreds(compiled, seed, scale):
    name, program = compiled
    nets = networks(program, seed, scale, torch.float32)
    inputs = program.example_inputs(batch_size=2, seed=seed)
    got = program.losses(nets, inputs)
    assert all(torch.isfinite(v) for v in got.values()), {k: float(v) for k, v in got.items()}
    nets64 = {k: v.double() for k, v in nets.items()}
    with torch.no_grad():
        inputs64 = {k: (v.double() if v.is_floating_point() else v) for k, v in inputs.items()}
        want = REFERENCES[name](nets64, inputs64, log_d=exact_log_d, log_one_minus_d=exact_log_one_minus_d)
    for key, value in want.items():
        assert torch.isfinite(value), "the float64 reference must be exact here"
        torch.testing.assert_close(got[key].double(), value, rtol=2e-4, atol=2e-3, msg=f"{name} {key}")


def test_naive_float32_discogan_overflows_where_compiled_does_not():
    program = lossgraph.compile("discogan")
    nets = networks(program, 0, 300.0, torch.float32)
    inputs = program.example_inputs(batch_size=2, seed=0)
    naive = discogan_reference(nets, inputs)
    assert not all(torch.isfinite(v) for v in naive.values())


def test_losses_run_each_distinct_network_application_once(compiled):
    name, program = compiled
    nets = program.build_networks(seed=0)
    counts = count_forwards(nets)
    program.losses(nets, program.example_inputs(batch_size=2))
    judges = set(program.spec.judges)  # they only evaluate: losses() never runs them
    assert {net: count for net, count in counts.items() if net not in judges} == FORWARDS[name]
    assert all(counts[judge] == 0 for judge in judges)


def test_losses_leave_train_and_eval_modes_as_set(compiled):
    _, program = compiled
    nets = program.build_networks(seed=0)
    first, *others = sorted(nets)
    nets[first].eval()
    program.losses(nets, program.example_inputs(batch_size=2))
    assert not nets[first].training and all(nets[name].training for name in others)


def test_each_backward_reaches_only_its_players_parameters(compiled):
    """Every parameter takes one gradient per step of the player that owns it, none from another
    player's backward; judges (which only evaluate) take none in training."""
    _, program = compiled
    nets = program.build_networks(seed=0)
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in nets.items()}
    owner = {id(p): player.name for player in program.graph.players for name in player.networks for p in nets[name].parameters()}
    accumulated = {}
    for net in nets.values():
        for parameter in net.parameters():
            if id(parameter) not in accumulated:  # a parameter shared by two networks is counted once
                accumulated[id(parameter)] = 0
                parameter.register_post_accumulate_grad_hook(lambda p: accumulated.__setitem__(id(p), accumulated[id(p)] + 1))
    trainer = program.trainer(nets)
    trainer.step(program.example_inputs(batch_size=2))
    steps = {}
    for player, repeats in program.spec.schedule_steps:
        steps[player] = steps.get(player, 0) + repeats
    for key, count in accumulated.items():
        assert count <= steps.get(owner.get(key), 0), f"a parameter of {owner.get(key)} took {count} gradients"
    for player in program.graph.players:
        moved = any(not torch.equal(a, b) for name in player.networks for a, b in zip(before[name], nets[name].parameters()))
        assert moved, f"{player.name}'s networks did not move"
    for judge in program.judges:
        assert all(torch.equal(a, b) for a, b in zip(before[judge], nets[judge].parameters()))


def test_calls_no_step_differentiates_run_without_autograd():
    """With G's steps repeated, G computes its fakes anew; D's fakes are data to D alone."""
    program = lossgraph.compile("cyclegan", ["schedule=[D, {G: 2}]"])
    d_phase = program.phases[0]
    data_only = [node for node in d_phase.computed if node not in d_phase.with_grad]
    assert {node.arg for node in data_only} == {"G_XY", "G_YX"}
    assert "with torch.no_grad():\n        fake_y = G_XY(x)" in program.code


def test_trainer_step_reports_every_player_and_term(compiled):
    _, program = compiled
    trainer = program.trainer(program.build_networks(seed=0))
    stats = trainer.step(program.example_inputs(batch_size=2))
    assert set(program.players) <= set(stats)
    assert all(isinstance(v, float) for v in stats.values())
