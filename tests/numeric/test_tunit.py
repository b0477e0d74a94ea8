"""specs/tunit.yaml against docs/methods.md's TUNIT objective, written out here in float64.

`losses()` at an iteration after the warm-up (every weight on) and during it equals each term as
docs/methods.md defines it, on the same networks and inputs (the view x_tf and the queue Q given);
the losses stay finite with logits in the hundreds; `losses()` applies each distinct network call
once; and the warm-up's idle steps (D, G and C's second step, whose terms all weigh 0) are not
taken, so no optimizer moves their networks.
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import lossgraph
from tests.conftest import count_forwards
from tests.numeric.test_contrastive import mi_reference, nce_reference

PROPERTY = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], phases=(Phase.explicit, Phase.reuse, Phase.generate))
WARMUP = 700  # the spec's warm-up: a third of its 2000 iterations


@pytest.fixture(scope="module")
def program():
    return lossgraph.compile("tunit")


def float64(program, seed, batch):
    nets = {name: net.double() for name, net in program.build_networks(seed=seed).items()}
    inputs = {k: (v.double() if v.is_floating_point() else v) for k, v in program.example_inputs(batch_size=batch, seed=seed).items()}
    return nets, inputs


def reference(nets, v, after_warmup):
    """docs/methods.md, TUNIT: the three steps' terms (C_g, C's second step, has G's terms)."""
    C, C_ema, Enc, Dec, D = (nets[name] for name in ("C", "C_ema", "Enc", "Dec", "D"))
    x, x_tf, Q = v["x"], v["x_tf"], v["Q"]
    rows = torch.arange(len(x))
    cls_x, style_x = C(x)
    cls_tf, _ = C(x_tf)
    with torch.no_grad():
        key_tf = C_ema(x_tf)[1]
        key_ref = C_ema(torch.roll(x, 1, 0))[1]
    p, p_tf = torch.softmax(cls_x, 1), torch.softmax(cls_tf, 1)
    y = cls_x.detach().argmax(1)
    x_ref, y_ref = torch.roll(x, 1, 0), torch.roll(y, 1, 0)
    content = Enc(x)
    fake = Dec(content, C(x_ref)[1])
    rec = Dec(content, style_x)
    w_C = 0.1 if after_warmup else 1.0
    on = 1.0 if after_warmup else 0.0
    out = {"C/moco": w_C * nce_reference(style_x, key_tf, Q, 0.07).mean(),
           "C/mi": -5 * w_C * torch.tensor(mi_reference(p, p_tf), dtype=torch.float64)}
    x_in = x.detach().clone().requires_grad_(True)
    real = D(x_in)[rows, y]
    (g,) = torch.autograd.grad(real.sum(), x_in, create_graph=True)
    out["D/adv"] = on * (torch.relu(1 - real).mean() + torch.relu(1 + D(fake)[rows, y_ref]).mean())
    out["D/r1"] = on * 10 * (g ** 2).flatten(1).sum(1).mean()
    for player in ("G", "C_g"):
        out[f"{player}/adv"] = on * (-D(fake)[rows, y_ref].mean() - D(rec)[rows, y].mean())
        out[f"{player}/rec"] = on * 0.1 * (rec - x).abs().mean()
        out[f"{player}/sty"] = on * 0.01 * nce_reference(C(fake)[1], key_ref, Q, 0.07).mean()
    return out


@settings(max_examples=4, **PROPERTY)
@given(seed=st.integers(0, 2**16), batch=st.integers(2, 5), after_warmup=st.booleans())
def test_losses_equal_the_methods_objective_in_float64(program, seed, batch, after_warmup):
    nets, inputs = float64(program, seed, batch)
    got = program.losses(nets, inputs, iteration=WARMUP + 5 if after_warmup else 3)
    want = reference(nets, inputs, after_warmup)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value.to(got[key].dtype), rtol=1e-8, atol=1e-10, msg=key)
    for player in ("C", "D", "G", "C_g"):
        total = sum(value for key, value in want.items() if key.startswith(player + "/"))
        torch.testing.assert_close(got[player], total.to(got[player].dtype), rtol=1e-8, atol=1e-10, msg=player)


def test_the_losses_stay_finite_with_logits_in_the_hundreds(program):
    nets = program.build_networks(seed=1)
    inputs = program.example_inputs(batch_size=4, seed=1)
    with torch.no_grad():
        nets["C"].cls.weight.mul_(3e3)
        nets["C"].style.weight.mul_(3e2)
        last = [m for m in nets["D"].modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.mul_(3e3)
        last.bias.copy_(torch.tensor([300.0, -300.0, 250.0, -250.0]))
        inputs["Q"].mul_(100)
    assert nets["C"](inputs["x"])[0].abs().max() > 100 and nets["D"](inputs["x"]).abs().max() > 100
    losses = program.losses(nets, inputs, iteration=WARMUP)
    assert all(torch.isfinite(value) for value in losses.values()), losses
    parameters = [p for name in ("C", "D", "Enc", "Dec") for p in nets[name].parameters()]
    for player in ("C", "D", "G"):
        grads = torch.autograd.grad(losses[player], parameters, allow_unused=True, retain_graph=True)
        assert all(g is None or torch.isfinite(g).all() for g in grads), player


def test_losses_apply_each_distinct_network_call_once(program):
    nets = program.build_networks(seed=0)
    counts = count_forwards(nets)
    program.losses(nets, program.example_inputs(batch_size=3), iteration=WARMUP)
    # C: x, x_tf, roll(x), fake; C_ema: x_tf, roll(x); Enc: x; Dec: fake, rec; D: x, fake, rec
    assert counts == {"C": 4, "C_ema": 2, "Enc": 1, "Dec": 2, "D": 3}


def test_the_warm_up_trains_the_guide_alone():
    program = lossgraph.compile("tunit")
    assert program.idle_steps(0) == program.idle_steps(WARMUP - 1) == {"D", "G", "C_g"}
    assert program.idle_steps(WARMUP) == frozenset()
    nets = program.build_networks(seed=0)
    before = {name: [p.detach().clone() for p in nets[name].parameters()] for name in ("C", "D", "Enc", "Dec")}
    trainer = program.trainer(nets)
    stats = trainer.step({"x": program.example_inputs(batch_size=4)["x"]})
    assert set(stats) >= {"C", "C/moco", "C/mi"} and not {"D", "G", "C_g"} & set(stats)
    for name in ("D", "Enc", "Dec"):  # RMSprop's weight decay would move them on a zero gradient
        assert all(torch.equal(a, b) for a, b in zip(before[name], nets[name].parameters())), name
    assert not all(torch.equal(a, b) for a, b in zip(before["C"], nets["C"].parameters()))
    state = trainer.optimizers["C"].state_dict()["state"]
    assert all(int(entry["step"]) == 1 for entry in state.values())  # one Adam step: C's own
