"""specs/tunit.yaml against docs/methods.md's TUNIT objective, written out here in float64.

`losses()` at an iteration after the warm-up (every weight on) and during it equals each term as
docs/methods.md defines it, on the same networks and inputs (the view x_tf and the queue Q given);
an iteration after the warm-up is docs/methods.md's three steps, written out by hand: C's own step,
D's step with labels and styles from C after that step, and G's step whose one backward steps G's
RMSprop and C's Adam; the losses stay finite with logits in the hundreds; `losses()` applies each
distinct network call once; and the warm-up's idle steps (D and G, whose terms all weigh 0) are
not taken, so no optimizer moves their networks and C's Adam steps once.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import lossgraph
from tests.conftest import count_forwards
from tests.numeric.test_contrastive import mi_reference, nce_reference
from tests.numeric.test_phases import oracle_losses

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
    """docs/methods.md, TUNIT: the three steps' terms, at one set of weights."""
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
    out["G/adv"] = on * (-D(fake)[rows, y_ref].mean() - D(rec)[rows, y].mean())
    out["G/rec"] = on * 0.1 * (rec - x).abs().mean()
    out["G/sty"] = on * 0.01 * nce_reference(C(fake)[1], key_ref, Q, 0.07).mean()
    return out


@settings(max_examples=4, **PROPERTY)
@given(seed=st.integers(0, 2**16), batch=st.integers(2, 5), after_warmup=st.booleans())
def test_losses_equal_the_methods_objective_in_float64(program, seed, batch, after_warmup):
    nets, inputs = float64(program, seed, batch)
    got = program.losses(nets, inputs, iteration=WARMUP + 5 if after_warmup else 3)
    want = reference(nets, inputs, after_warmup)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value.to(got[key].dtype), rtol=1e-8, atol=1e-10, msg=key)
    assert set(got) == set(want) | {"C", "D", "G"}
    for player in ("C", "D", "G"):
        total = sum(value for key, value in want.items() if key.startswith(player + "/"))
        torch.testing.assert_close(got[player], total.to(got[player].dtype), rtol=1e-8, atol=1e-10, msg=player)


def mi_torch(p, p2):
    """docs/methods.md's `mi`, differentiable: the symmetric joint, clamped at 1e-10."""
    J = p.T @ p2
    P = (J + J.T) / 2
    P = P / P.sum()
    rows, columns = P.sum(1).clamp_min(1e-10), P.sum(0).clamp_min(1e-10)
    P = P.clamp_min(1e-10)
    return (P * (P.log() - rows.log()[:, None] - columns.log()[None, :])).sum()


def methods_iteration(nets, v):
    """docs/methods.md's three steps after the warm-up, in float64, with their optimizers; returns
    each step's loss. C's Adam is stepped by C's own step and again by G's one backward."""
    C, C_ema, Enc, Dec, D = (nets[name] for name in ("C", "C_ema", "Enc", "Dec", "D"))
    x, x_tf, Q = v["x"], v["x_tf"], v["Q"]
    rows = torch.arange(len(x))
    x_ref = torch.roll(x, 1, 0)
    c_opt = torch.optim.Adam(C.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-3)
    d_opt = torch.optim.RMSprop(D.parameters(), lr=1e-4, alpha=0.99, weight_decay=1e-4)
    g_opt = torch.optim.RMSprop([*Enc.parameters(), *Dec.parameters()], lr=1e-4, alpha=0.99, weight_decay=1e-4)
    with torch.no_grad():
        key_tf, key_ref = C_ema(x_tf)[1], C_ema(x_ref)[1]
    out = {}
    # 1. C's own step, w_C = 0.1 after the warm-up
    cls_x, style_x = C(x)
    cls_tf, _ = C(x_tf)
    out["C"] = 0.1 * nce_reference(style_x, key_tf, Q, 0.07).mean() - 5 * 0.1 * mi_torch(torch.softmax(cls_x, 1), torch.softmax(cls_tf, 1))
    c_opt.zero_grad()
    out["C"].backward()
    c_opt.step()
    # 2. D's step: labels, styles and fakes from C as step 1 left it, without gradient
    with torch.no_grad():
        y = C(x)[0].argmax(1)
        fake = Dec(Enc(x), C(x_ref)[1])
    y_ref = torch.roll(y, 1, 0)
    x_in = x.clone().requires_grad_(True)
    real = D(x_in)[rows, y]
    (g,) = torch.autograd.grad(real.sum(), x_in, create_graph=True)
    out["D"] = torch.relu(1 - real).mean() + torch.relu(1 + D(fake)[rows, y_ref]).mean() + 10 * (g ** 2).flatten(1).sum(1).mean()
    d_opt.zero_grad()
    out["D"].backward(inputs=list(D.parameters()))
    d_opt.step()
    # 3. G's step, C's second: one loss, one backward, G's RMSprop and C's Adam
    cls_x, style_x = C(x)
    y = cls_x.detach().argmax(1)
    y_ref = torch.roll(y, 1, 0)
    content = Enc(x)
    fake, rec = Dec(content, C(x_ref)[1]), Dec(content, style_x)
    out["G"] = (-D(fake)[rows, y_ref].mean() - D(rec)[rows, y].mean() + 0.1 * (rec - x).abs().mean()
                + 0.01 * nce_reference(C(fake)[1], key_ref, Q, 0.07).mean())
    g_opt.zero_grad()
    c_opt.zero_grad()
    out["G"].backward(inputs=[*Enc.parameters(), *Dec.parameters(), *C.parameters()])
    g_opt.step()
    c_opt.step()
    return out


def test_an_iteration_is_the_methods_three_steps_in_float64(program):
    nets, inputs = float64(program, seed=2, batch=4)
    mine = copy.deepcopy(nets)
    trainer = program.trainer(nets)
    trainer.iteration = WARMUP + 5
    trainer.queues.load_state_dict({"Q": inputs["Q"]})
    stats = trainer.step(inputs)
    want = methods_iteration(mine, inputs)
    for player in ("C", "D", "G"):
        assert stats[player] == pytest.approx(want[player].item(), rel=1e-6), player  # stats come back as float32
    for name in ("C", "D", "Enc", "Dec"):
        for a, b in zip(nets[name].parameters(), mine[name].parameters()):
            # a step moves a weight by about lr = 1e-4; the biases before C's batch norm get a
            # gradient of rounding noise only, which Adam turns into moves of 1e-10
            torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9, msg=name)
    # C's own step and G's, one Adam; G's loss reads C's style, not its cls head (the labels carry no gradient)
    steps = {name: int(trainer.optimizers["C"].state[p]["step"]) for name, p in nets["C"].named_parameters()}
    assert {name for name, count in steps.items() if count != 2} == {"cls.weight", "cls.bias"}, steps


def test_each_step_is_the_plans_loss_by_the_independent_evaluator(program):
    inputs = program.example_inputs(batch_size=3, seed=4)
    stats, expected = oracle_losses(program, program.build_networks(seed=1), inputs, iteration=WARMUP + 5, queues={"Q": inputs["Q"]})
    assert set(expected) == {"C", "D", "G"}
    for player, value in expected.items():
        assert stats[player] == pytest.approx(value, rel=1e-5, abs=1e-6), player


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
    # the judge J serves evaluation only
    assert counts == {"C": 4, "C_ema": 2, "Enc": 1, "Dec": 2, "D": 3, "J": 0}


def test_the_warm_up_trains_the_guide_alone():
    program = lossgraph.compile("tunit")
    assert program.idle_steps(0) == program.idle_steps(WARMUP - 1) == {"D", "G"}
    assert program.idle_steps(WARMUP) == frozenset()
    # the weights a step is given decide, where it is given them (a weight input of 1 takes D's step)
    given = {**program.weights(0), "weight/D/adv": 1.0}
    assert program.idle_steps(0, given) == {"G"}
    # the first iteration that takes every step; a run that ends in its warm-up has none: the first
    assert program.full_iteration == WARMUP
    assert lossgraph.compile("tunit", ["train.steps=100"]).full_iteration == 0
    nets = program.build_networks(seed=0)
    before = {name: [p.detach().clone() for p in nets[name].parameters()] for name in ("C", "D", "Enc", "Dec")}
    trainer = program.trainer(nets)
    stats = trainer.step({"x": program.example_inputs(batch_size=4)["x"]})
    assert set(stats) >= {"C", "C/moco", "C/mi"} and not {"D", "G"} & set(stats)
    for name in ("D", "Enc", "Dec"):  # RMSprop's weight decay would move them on a zero gradient
        assert all(torch.equal(a, b) for a, b in zip(before[name], nets[name].parameters())), name
    assert not all(torch.equal(a, b) for a, b in zip(before["C"], nets["C"].parameters()))
    state = trainer.optimizers["C"].state_dict()["state"]
    assert all(int(entry["step"]) == 1 for entry in state.values())  # one Adam step: C's own


def iteration_steps(program) -> dict[str, str]:
    """The generated iteration's code, step by step (each starts at its `# P: minimize` line)."""
    code = program.code.split("def iteration(")[1].split("\ndef ")[0]
    steps, player = {}, None
    for line in code.splitlines():
        stripped = line.strip()
        if stripped.startswith("# ") and ": minimize" in stripped:
            player = stripped[2:].split(":")[0]
        if player:
            steps[player] = steps.get(player, "") + line + "\n"
    return steps


def test_g_reads_the_pseudo_labels_and_references_d_computed(program):
    # the labels are an argmax of C(x) as C's step left it, and G's step reads that same call:
    # the values carry no gradient, so G reads D's variables instead of computing them again
    steps = iteration_steps(program)
    assert "argmax" in steps["D"] and "roll" in steps["D"]
    assert "argmax" not in steps["G"] and "roll" not in steps["G"]
    assert "y_ref[:, None]" in steps["G"] and "C_ema(x_ref)" in steps["G"]


def test_without_fresh_g_computes_the_labels_again_from_its_own_call():
    # without `fresh: [C]` D's labels come from C's call as the iteration found it; G's step (which
    # also steps C) calls C(x) again after C's update, so its labels are that call's, computed there
    program = lossgraph.compile(lossgraph.load("tunit", overrides=["players.D.fresh=[]", "players.G.fresh=[]"]))
    steps = iteration_steps(program)
    assert "argmax" in steps["D"] and "argmax" in steps["G"]
    assert "roll(1, 0)" not in steps["G"].split("argmax")[0]  # the data's roll is still D's x_ref
    inputs = program.example_inputs(batch_size=3, seed=4)
    stats, expected = oracle_losses(program, program.build_networks(seed=1), inputs, iteration=WARMUP + 5, queues={"Q": inputs["Q"]})
    for player, value in expected.items():
        assert stats[player] == pytest.approx(value, rel=1e-5, abs=1e-6), player
