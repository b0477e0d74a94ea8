"""Step learning-rate schedules (`schedule: {every: N, gamma: g}` or `{milestones: [...], gamma: g}`):
the rate each iteration uses against the rule written out and against torch's own StepLR and
MultiStepLR driven by hand, located errors, and resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lossgraph
from lossgraph.language.errors import SpecError

TINY = Path(__file__).with_name("tiny.yaml")
LR = 1e-3  # tiny.yaml's learning rate for both players


def compile_tiny(*overrides: str):
    return lossgraph.compile(lossgraph.load(TINY, overrides=list(overrides)))


def rates_of(program, iterations: int, player: str = "G") -> list[float]:
    trainer = program.trainer(program.build_networks(seed=0))
    return [trainer.step(program.example_inputs(batch_size=2, seed=step))[f"lr/{player}"]
            for step in range(1, iterations + 1)]


def torch_rates(make, iterations: int) -> list[float]:
    """The rate each iteration runs at under torch's own scheduler, stepped after each iteration."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    scheduler = make(optimizer)
    rates = []
    for _ in range(iterations):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_every_n_steps_is_torchs_step_lr():
    got = rates_of(compile_tiny("optim.G.schedule={every: 3, gamma: 0.5}"), 10)
    want = torch_rates(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5), 10)
    assert got == pytest.approx(want, rel=1e-12, abs=0)
    assert got[:3] == [LR] * 3 and got[3] == pytest.approx(LR / 2)  # iteration 4 is the first after 3 done


def test_milestones_are_torchs_multi_step_lr():
    # LPTN's rule at a small scale: halved after iterations 2, 5 and 7
    got = rates_of(compile_tiny("optim.G.schedule={milestones: [2, 5, 7], gamma: 0.5}"), 9)
    want = torch_rates(lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 5, 7], gamma=0.5), 9)
    assert got == pytest.approx(want, rel=1e-12, abs=0)
    assert got == pytest.approx([LR, LR, LR / 2, LR / 2, LR / 2, LR / 4, LR / 4, LR / 8, LR / 8], rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(every=st.integers(1, 50), gamma=st.floats(0.05, 2.0), step=st.integers(1, 500))
def test_the_factor_is_gamma_to_the_drops_so_far(every, gamma, step):
    schedule = lossgraph.load(TINY, overrides=[f"optim.G.schedule={{every: {every}, gamma: {gamma!r}}}"]).optim["G"].schedule
    assert schedule.factor(step) == pytest.approx(gamma ** ((step - 1) // every), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(milestones=st.lists(st.integers(1, 200), min_size=1, max_size=5, unique=True), step=st.integers(1, 300))
def test_milestones_count_those_already_passed(milestones, step):
    milestones = sorted(milestones)
    schedule = lossgraph.load(TINY, overrides=[f"optim.G.schedule={{milestones: {milestones}, gamma: 0.5}}"]).optim["G"].schedule
    assert schedule.factor(step) == 0.5 ** len([m for m in milestones if m < step])


def test_a_resumed_trainer_continues_the_drops():
    program = compile_tiny("optim.G.schedule={every: 2, gamma: 0.1}")
    trainer = program.trainer(program.build_networks(seed=0))
    for step in range(1, 4):
        trainer.step(program.example_inputs(batch_size=2, seed=step))
    other = program.trainer(program.build_networks(seed=1))
    other.load_state_dict(trainer.state_dict())
    # iteration 4 has 3 done: one drop; iteration 5 has 4 done: two
    assert other.step(program.example_inputs(batch_size=2, seed=4))["lr/G"] == pytest.approx(LR * 0.1, rel=1e-12)
    assert other.step(program.example_inputs(batch_size=2, seed=5))["lr/G"] == pytest.approx(LR * 0.01, rel=1e-12)


@pytest.mark.parametrize("override, message", [
    ("optim.G.schedule={every: 3}", "optim.G.schedule: missing key 'gamma'"),
    ("optim.G.schedule={gamma: 0.5}", "optim.G.schedule.gamma: a step schedule needs every: N"),
    ("optim.G.schedule={every: 3, gamma: 0.5, decay: 4}", "optim.G.schedule.decay: a schedule is a linear decay"),
    ("optim.G.schedule={milestones: [5, 3], gamma: 0.5}", "optim.G.schedule.milestones: milestones must rise; got [5, 3]"),
    ("optim.G.schedule={milestones: [5], every: 3, gamma: 0.5}", "optim.G.schedule.milestones: a step schedule drops"),
    ("optim.G.schedule={every: 0, gamma: 0.5}", "optim.G.schedule.every: input should be greater than 0"),
    ("optim.G.schedule={every: 3, gamma: 0}", "optim.G.schedule.gamma: input should be greater than 0"),
    ("optim.G.schedule={every: 3, gama: 0.5}", "unknown key 'gama' (did you mean 'gamma'?)"),
])
def test_bad_step_schedules_are_located_errors(override, message):
    with pytest.raises(SpecError) as caught:
        lossgraph.load(TINY, overrides=[override])
    assert message in str(caught.value)
    assert "<override 1>:1:" in str(caught.value)


def test_munit_and_lptn_carry_their_released_codes_halvings():
    munit = lossgraph.load("munit").optim
    lptn = lossgraph.load("lptn").optim
    for player in ("D", "G"):
        assert [munit[player].schedule.factor(n) for n in (100000, 100001, 200001)] == [1, 0.5, 0.25]
        assert [lptn[player].schedule.factor(n) for n in (50000, 50001, 100001, 200001, 299999)] == [1, 0.5, 0.25, 0.125, 0.125]
