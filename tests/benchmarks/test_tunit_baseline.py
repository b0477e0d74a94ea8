"""benchmarks/baselines/tunit.py against docs/methods.md's TUNIT iteration, written out here in float64.

One iteration of the baseline, in the warm-up (C's step alone) and past it (C's, D's and G's
steps, G's one backward stepping C too), gives the losses, the gradients left on every parameter,
the parameters after the optimizers' steps (Adam and RMSprop written out by hand, C's Adam state
shared by its two steps), C_ema and the queue that the reference below computes from the formulas
of docs/methods.md. The baseline's objectives equal the compiled spec's `losses()`, which are
computed on one state of the networks (the spec's departures in the iteration do not reach them);
its one iteration in the warm-up equals the trainer's, queue and average included (past the
warm-up tests/benchmarks/test_baselines.py expects the spec's departures to differ).
"""

import copy

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import lossgraph
from benchmarks.baselines import TUNIT
from tests.numeric.test_contrastive import mi_reference, nce_reference

PROPERTY = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], phases=(Phase.explicit, Phase.reuse, Phase.generate))
WARMUP = 700
NETWORKS = ("C", "C_ema", "Enc", "Dec", "D")


@pytest.fixture(scope="module")
def program():
    return lossgraph.compile("tunit")


def float64(program, seed, batch):
    nets = {name: net.double() for name, net in program.build_networks(seed=seed).items()}
    inputs = {k: v.double() for k, v in program.example_inputs(batch_size=batch, seed=seed).items()}
    return nets, inputs


def mi(p, p2):
    """docs/methods.md's mi, differentiable: the symmetric joint, its marginals, each clamped at 1e-10."""
    joint = torch.einsum("ni,nj->ij", p, p2)
    joint = (joint + joint.T) / 2
    P = joint / joint.sum()
    P_i = torch.clamp(P.sum(1), min=1e-10)[:, None]
    P_j = torch.clamp(P.sum(0), min=1e-10)[None, :]
    P = torch.clamp(P, min=1e-10)
    return (P * (torch.log(P) - torch.log(P_i) - torch.log(P_j))).sum()


def adam(parameters, grads, state, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, decay=1e-3):
    """torch.optim.Adam's update (L2 weight decay added to the gradient), written out."""
    state["t"] = t = state.get("t", 0) + 1
    for index, (p, g) in enumerate(zip(parameters, grads)):
        if g is None:  # not reached by the loss: torch skips it, weight decay and all
            continue
        g = g + decay * p
        m = betas[0] * state.get(("m", index), 0) + (1 - betas[0]) * g
        v = betas[1] * state.get(("v", index), 0) + (1 - betas[1]) * g * g
        state["m", index], state["v", index] = m, v
        p -= lr * (m / (1 - betas[0] ** t)) / ((v / (1 - betas[1] ** t)).sqrt() + eps)


def rmsprop(parameters, grads, lr=1e-4, alpha=0.99, eps=1e-8, decay=1e-4):
    """torch.optim.RMSprop's first update from a zero square average, written out."""
    for p, g in zip(parameters, grads):
        g = g + decay * p
        p -= lr * g / ((1 - alpha) * g * g).sqrt().add(eps)


def reference(nets, x, x_tf, Q, iteration, lr_C=1e-4):
    """docs/methods.md's TUNIT iteration on copies of `nets`: losses, the gradient each parameter
    holds after it (None where no step reached it), the networks after it and the queue."""
    nets = copy.deepcopy(nets)
    C, C_ema, Enc, Dec, D = (nets[name] for name in NETWORKS)
    rows = torch.arange(len(x))
    w_C = 1.0 if iteration < WARMUP else 0.1
    losses, grads, adam_state = {}, {name: None for name in NETWORKS}, {}
    labels = {"before C's step": C(x)[0].argmax(1)}

    # 1. C's own step
    cls_x, style_x = C(x)
    cls_tf, _ = C(x_tf)
    keys = C_ema(x_tf)[1].detach()
    p, p_tf = torch.softmax(cls_x, 1), torch.softmax(cls_tf, 1)
    assert abs(float(mi(p, p_tf).detach()) - mi_reference(p, p_tf)) < 1e-12
    losses["C"] = w_C * nce_reference(style_x, keys, Q, 0.07).mean() - 5 * w_C * mi(p, p_tf)
    grads["C"] = torch.autograd.grad(losses["C"], list(C.parameters()))
    first_C = grads["C"]
    with torch.no_grad():
        adam(list(C.parameters()), grads["C"], adam_state, lr=lr_C)

    if iteration >= WARMUP:
        # 2. D's step: labels, references and fake from C as step 1 left it, no gradient
        cls_x1, style_x1 = C(x)
        y = labels["after"] = cls_x1.argmax(1).detach()
        x_ref, y_ref = torch.roll(x, 1, 0), torch.roll(y, 1, 0)
        content = Enc(x)
        fake = Dec(content, C(x_ref)[1])
        rec = Dec(content, style_x1)
        x_in = x.clone().requires_grad_(True)
        real = D(x_in)[rows, y]
        (slope,) = torch.autograd.grad(real.sum(), x_in, create_graph=True)
        losses["D"] = (torch.relu(1 - real).mean() + torch.relu(1 + D(fake.detach())[rows, y_ref]).mean()
                       + 10 * (slope ** 2).flatten(1).sum(1).mean())
        grads["D"] = torch.autograd.grad(losses["D"], list(D.parameters()))
        with torch.no_grad():
            rmsprop(list(D.parameters()), grads["D"])
        # 3. G's step, one backward: Enc and Dec (RMSprop) and C (Adam, its second step) from it
        key_ref = C_ema(x_ref)[1].detach()
        losses["G"] = (-D(fake)[rows, y_ref].mean() - D(rec)[rows, y].mean() + 0.1 * (rec - x).abs().mean()
                       + 0.01 * nce_reference(C(fake)[1], key_ref, Q, 0.07).mean())
        stepped = {name: list(nets[name].parameters()) for name in ("C", "Enc", "Dec")}
        # C's cls head gives only the labels here: no gradient, so Adam leaves it (set_to_none)
        every = torch.autograd.grad(losses["G"], [p for params in stepped.values() for p in params], allow_unused=True)
        start = 0
        for name, params in stepped.items():
            grads[name] = every[start:start + len(params)]
            start += len(params)
        with torch.no_grad():
            rmsprop(stepped["Enc"] + stepped["Dec"], grads["Enc"] + grads["Dec"])
            adam(stepped["C"], grads["C"], adam_state, lr=lr_C)

    with torch.no_grad():  # after the steps: push step 1's keys, move the average
        queue = torch.cat([Q, keys])[-1024:]
        for shadow, live in zip(C_ema.parameters(), C.parameters()):
            shadow.copy_(0.999 * shadow + 0.001 * live)
    # a parameter whose every gradient is rounding (zero in exact arithmetic: a bias before a
    # norm) takes optimizer steps of rounding * lr / eps, which no two implementations share
    rounding = {name: [False] * len(list(nets[name].parameters())) for name in NETWORKS}
    for name, steps in (("C", (first_C, grads["C"])), ("D", (grads["D"],)), ("Enc", (grads["Enc"],)), ("Dec", (grads["Dec"],))):
        steps = [step for step in steps if step is not None]
        largest = max((float(g.abs().max()) for step in steps for g in step if g is not None), default=0.0)
        rounding[name] = [bool(steps) and all(step[i] is None or float(step[i].abs().max()) <= 1e-9 * largest for step in steps)
                          for i in range(len(rounding[name]))]
    return losses, grads, nets, queue, labels, rounding


def close(got, want, where, floor):
    """Equal to float64 rounding: relative to the tensor, or to `floor` where the tensor is all
    rounding (a gradient zero in exact arithmetic: a bias before batch norm)."""
    assert float((got - want).abs().max()) <= 1e-7 * float(want.abs().max()) + floor, where


@settings(max_examples=3, **PROPERTY)
@given(seed=st.integers(0, 2**16), batch=st.integers(2, 4), iteration=st.sampled_from([3, WARMUP, 1000]))
def test_one_iteration_equals_the_methods_iteration_in_float64(program, seed, batch, iteration):
    check_one_iteration(program, seed, batch, iteration)


def test_the_labels_are_cs_after_its_own_step(program):
    """With C's rate at 0.05 (both sides), C's own step changes pseudo-labels: D's and G's steps
    must read the new ones (at 1e-4 one step seldom moves an argmax)."""
    labels = check_one_iteration(program, 1, 6, WARMUP, lr_C=0.05)
    assert not torch.equal(labels["before C's step"], labels["after"])


def check_one_iteration(program, seed, batch, iteration, lr_C=1e-4):
    nets, inputs = float64(program, seed, batch)
    x, x_tf, Q = inputs["x"], inputs["x_tf"], inputs["Q"]
    losses, grads, after, queue, labels, rounding = reference(nets, x, x_tf, Q, iteration, lr_C)
    before = {name: [p.detach().clone() for p in nets[name].parameters()] for name in NETWORKS}
    baseline = TUNIT(nets)
    baseline.queue, baseline.iteration = Q, iteration  # a queue already full, the weights of `iteration`
    baseline.optimizer_C.param_groups[0]["lr"] = lr_C
    stats = baseline.step(inputs)

    assert set(stats) == set(losses)  # D's and G's steps taken past the warm-up only
    for player, value in losses.items():
        assert stats[player] == pytest.approx(float(value.detach()), rel=1e-6, abs=1e-9), player  # reported in float32
    for name in NETWORKS:
        floor = 1e-9 * max((float(g.abs().max()) for g in grads[name] or () if g is not None), default=0.0)
        for index, parameter in enumerate(nets[name].parameters()):
            want = None if grads[name] is None else grads[name][index]
            assert (parameter.grad is None) == (want is None), (name, index)  # C.cls after G's step: None
            if want is not None:
                close(parameter.grad, want, (name, index, "grad"), floor)
        # the updates, each at most about lr, where a gradient is more than rounding
        lr = lr_C if name in ("C", "C_ema") else 1e-4
        for index, (parameter, want, first) in enumerate(zip(nets[name].parameters(), after[name].parameters(), before[name])):
            if not rounding["C" if name == "C_ema" else name][index]:
                close(parameter.detach() - first, want.detach() - first, (name, index, "update"), 1e-6 * lr)
    torch.testing.assert_close(baseline.queue, queue, rtol=1e-12, atol=1e-12)
    assert baseline.iteration == iteration + 1
    return labels


@pytest.mark.parametrize("iteration", [999, 1000])
def test_the_average_takes_the_guides_buffers_every_1000_iterations(program, iteration):
    nets = program.build_networks(seed=0)
    baseline = TUNIT(nets)
    baseline.iteration = iteration
    baseline.step(program.example_inputs(batch_size=3, seed=0))
    same = [torch.equal(a, b) for a, b in zip(nets["C_ema"].buffers(), nets["C"].buffers())]
    assert same and all(same) == (iteration == 1000)


def test_the_queue_starts_from_the_first_batch_and_keeps_the_newest_1024(program):
    nets = program.build_networks(seed=0)
    baseline = TUNIT(nets)
    inputs = program.example_inputs(batch_size=300, seed=0)
    with torch.no_grad():
        keys = nets["C_ema"](inputs["x_tf"])[1]  # C_ema moves only after the step
    baseline.step(inputs)
    torch.testing.assert_close(baseline.queue, torch.cat([keys, keys]))  # started, then pushed
    for _ in range(3):
        baseline.step(inputs)
    assert baseline.queue.shape == (1024, 128)


@pytest.mark.parametrize("iteration", [0, 1000])
def test_losses_equal_the_programs(program, iteration):
    nets = program.build_networks(seed=2)
    inputs = program.example_inputs(batch_size=3, seed=2)
    want = program.losses(nets, inputs, iteration=iteration)
    got = TUNIT.losses(nets, inputs, iteration=iteration)
    for player in ("C", "D", "G"):
        torch.testing.assert_close(got[player], want[player], rtol=1e-5, atol=1e-6, msg=player)
    assert (float(got["D"]) != 0) == (iteration >= WARMUP)


def test_one_warm_up_iteration_equals_the_trainers_queue_and_average_included(program):
    # in float64: Adam turns a gradient that is all rounding (a bias before batch norm) into a
    # step of up to lr, which float32's rounding would make differ between any two implementations
    trained, inputs = float64(program, 3, 3)
    hand = copy.deepcopy(trained)
    trainer, baseline = program.trainer(trained), TUNIT(hand)
    for _ in range(2):
        compiled_stats, baseline_stats = trainer.step(inputs), baseline.step(inputs)
        assert baseline_stats == {"C": pytest.approx(compiled_stats["C"], rel=1e-6)}
    torch.testing.assert_close(baseline.queue, trainer.queues.values["Q"], rtol=1e-10, atol=1e-12)
    for name in NETWORKS:
        for a, b in zip(hand[name].parameters(), trained[name].parameters()):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=name)
