"""specs/lptn.yaml's losses equal the LPTN objective of docs/methods.md, written out here independently.

The reference is the objective as docs/methods.md gives it (the official code's): with
fake = G(x), D (a critic, raw output) minimizes E[D(fake)] - E[D(y)] + 100 gp(D, y, fake), G
minimizes -E[D(fake)] + 1000 E[l2sq(fake - x)]. The penalty's mixing weights a ~ U(0, 1) are the
one random draw of the objective: the reference draws them after the same seed. Evaluated in
float64 on the same networks and inputs; hypothesis varies seeds, batch sizes and the scale of the
critic's output; in the hundreds the compiled float32 losses stay finite and match float64.
"""

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import lossgraph
from tests.conftest import count_forwards

PROPERTY = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], phases=(Phase.explicit, Phase.reuse, Phase.generate))
SEED = 11


class Scaled(torch.nn.Module):
    """A critic whose outputs are multiplied by `scale`."""

    def __init__(self, net, scale):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, *args):
        return self.net(*args) * self.scale


@pytest.fixture(scope="module")
def program():
    return lossgraph.compile("lptn")


def lptn_reference(n, v, drawn_as=None):
    """The LPTN objective of docs/methods.md, by hand. Call right after torch.manual_seed(SEED); `drawn_as`:
    the dtype the compiled losses drew the mixing weights in, if not the inputs' own."""
    G, D, x, y = n["G"], n["D"], v["x"], v["y"]
    alpha = torch.rand((len(y), 1, 1, 1), dtype=drawn_as or y.dtype).to(y.dtype)  # a ~ U(0, 1) per sample
    fake = G(x)
    mix = (alpha * y + (1 - alpha) * fake).detach().requires_grad_(True)
    # the gradient of the critic's output (summed over its patches) with respect to each mixed image
    (slope,) = torch.autograd.grad(D(mix).sum(), mix, create_graph=True)
    gp = ((slope.reshape(len(y), -1).pow(2).sum(1).sqrt() - 1) ** 2).mean()
    pix = ((fake - x) ** 2).reshape(len(x), -1).mean(1).mean()  # E[l2sq(fake - x)]
    return {
        "D": D(fake).mean() - D(y).mean() + 100 * gp,
        "D/adv": D(fake).mean() - D(y).mean(),
        "D/gp": 100 * gp,
        "G": -D(fake).mean() + 1000 * pix,
        "G/adv": -D(fake).mean(),
        "G/pix": 1000 * pix,
    }


def networks(program, seed, scale, dtype):
    nets = {name: net.to(dtype) for name, net in program.build_networks(seed=seed).items()}
    nets["D"] = Scaled(nets["D"], scale)
    return nets


def inputs_of(program, batch, seed, dtype):
    return {k: v.to(dtype) for k, v in program.example_inputs(batch_size=batch, seed=seed).items()}


@settings(max_examples=8, **PROPERTY)
@given(seed=st.integers(0, 2**16), batch=st.integers(1, 3), scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_losses_equal_the_objective_in_float64(program, seed, batch, scale):
    nets = networks(program, seed, scale, torch.float64)
    inputs = inputs_of(program, batch, seed, torch.float64)
    torch.manual_seed(SEED)
    got = program.losses(nets, inputs)
    torch.manual_seed(SEED)
    want = lptn_reference(nets, inputs)
    assert set(got) == set(want)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=1e-10, atol=1e-10, msg=key)


@settings(max_examples=4, **PROPERTY)
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([100.0, 300.0]))
def test_float32_losses_stay_finite_and_exact_with_critic_outputs_in_the_hundreds(program, seed, scale):
    nets = networks(program, seed, scale, torch.float32)
    inputs = inputs_of(program, 2, seed, torch.float32)
    torch.manual_seed(SEED)
    got = program.losses(nets, inputs)
    assert all(torch.isfinite(v) for v in got.values()), {k: float(v) for k, v in got.items()}
    with torch.no_grad():
        assert float(nets["D"](inputs["y"]).abs().max()) > 10  # the critic's outputs really are large
    nets64 = {name: net.double() for name, net in nets.items()}
    torch.manual_seed(SEED)
    want = lptn_reference(nets64, inputs_of(program, 2, seed, torch.float64), drawn_as=torch.float32)
    for key, value in want.items():
        torch.testing.assert_close(got[key].double(), value.detach(), rtol=2e-4, atol=2e-3, msg=key)


def test_losses_run_each_distinct_network_application_once(program):
    nets = program.build_networks(seed=0)
    counts = count_forwards(nets)
    program.losses(nets, program.example_inputs(batch_size=2))
    assert counts == {"G": 1, "D": 3}  # G(x); D(fake), D(y), D(mix) for the penalty


def test_an_iteration_steps_the_critic_on_the_fake_as_data_then_the_generator():
    """[D, G]: G(x) once with autograd; D's step reads it detached (one batched D forward on the
    fake and the real, one on the mixes); G's step runs the stepped critic on the fake."""
    program = lossgraph.compile("lptn")
    nets = program.build_networks(seed=0)
    counts = count_forwards(nets)
    stats = program.trainer(nets).step(program.example_inputs(batch_size=2))
    assert counts == {"G": 1, "D": 3}
    assert set(stats) == {"D", "D/adv", "D/gp", "G", "G/adv", "G/pix"}
    assert "D_fake, D_y = batched(D, (fake.detach(),), (y,))" in program.code


def test_the_spec_is_the_codes_objective_and_optimizers():
    spec = lossgraph.load("lptn")
    assert spec.schedule_steps == [("D", 1), ("G", 1)]
    for player in ("D", "G"):
        assert spec.optim[player].kind == "adam"
        assert spec.optim[player].settings.lr == 1e-4 and tuple(spec.optim[player].settings.betas) == (0.9, 0.99)
    assert "2105.09188" in spec.paper
