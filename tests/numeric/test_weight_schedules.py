"""Term weights that change with the iteration (`weight: {linear: ...}`, `{warmup: ...}`,
`{piecewise: ...}`): the schedule against its definition written out here, located mistakes, and a
weight that reaches the step as data: losses equal the formula with the iteration's weight, the
generated and compiled code never change as it does, a resumed trainer uses the weights an
uninterrupted one would, and a run logs them.
"""

import copy
import csv

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lossgraph
from lossgraph.cli import main
from lossgraph.language.schema import WeightSchedule

# StarGAN v2's diversity term (weight decaying from 2 to 0, maximized: -lambda_ds) and a term that
# joins after a warm-up (TUNIT's adversarial terms wait for the guiding network)
SPEC = """
name: schedules
data: {x: image}
random: {z: normal(4), z2: normal(4)}
networks:
  G: {arch: resnet_generator, width: 4, blocks: 1}
players:
  G:
    networks: [G]
    minimize:
      rec: E[l1(G(x, z) - x)]
      ds: {weight: {linear: [-2, 0], steps: 4}, expr: "E[l1(G(x, z) - stop_gradient(G(x, z2)))]"}
      late: {weight: {warmup: 2, value: 5}, expr: "E[l2sq(G(x, z))]"}
      steps: {weight: {piecewise: [[0, 1], [3, 0.1]]}, expr: "E[l1(G(x, z2))]"}
train: {image_size: 8}
"""


def compile_text(text=SPEC):
    return lossgraph.compile(lossgraph.loads(text, "schedules.yaml"))


@pytest.fixture(scope="module")
def program():
    return compile_text()


def linear(first, last, steps, start, i):
    """The definition: first until `start`, then a straight line to `last` at start + steps."""
    if i <= start:
        return first
    if i >= start + steps:
        return last
    return first + (last - first) * (i - start) / steps


@settings(max_examples=60, deadline=None)
@given(first=st.floats(-10, 10), last=st.floats(-10, 10), steps=st.integers(1, 1000), start=st.integers(0, 100), i=st.integers(0, 2000))
def test_a_linear_weight_is_the_straight_line(first, last, steps, start, i):
    schedule = WeightSchedule(linear=(first, last), steps=steps, start=start)
    assert schedule.at(i) == pytest.approx(linear(first, last, steps, start, i), abs=1e-9)
    low, high = schedule.bounds
    assert low - 1e-12 <= schedule.at(i) <= high + 1e-12


@settings(max_examples=40, deadline=None)
@given(changes=st.lists(st.tuples(st.integers(1, 500), st.floats(-5, 5)), max_size=4, unique_by=lambda c: c[0]),
       first=st.floats(-5, 5), i=st.integers(0, 600))
def test_piecewise_and_warmup_weights_hold_each_value_from_its_iteration_on(changes, first, i):
    pairs = [(0, first), *sorted(changes)]
    schedule = WeightSchedule(piecewise=pairs)
    assert schedule.at(i) == [value for start, value in pairs if start <= i][-1]
    assert WeightSchedule(warmup=7, value=3.0).at(i) == (0.0 if i < 7 else 3.0)
    assert WeightSchedule(warmup=7).at(i) == (0.0 if i < 7 else 1.0)


def test_losses_take_the_weight_of_the_iteration_asked(program):
    nets = {name: net.double() for name, net in program.build_networks(seed=2).items()}
    inputs = {k: (v.double() if v.is_floating_point() else v) for k, v in program.example_inputs(batch_size=2, seed=3).items()}
    G, x, z, z2 = nets["G"], inputs["x"], inputs["z"], inputs["z2"]
    with torch.no_grad():
        rec, ds = (G(x, z) - x).abs().mean(), (G(x, z) - G(x, z2)).abs().mean()
        late, steps = (G(x, z) ** 2).mean(), G(x, z2).abs().mean()
    for i in range(7):
        got = program.losses(nets, inputs, iteration=i)
        w_ds, w_late, w_steps = linear(-2, 0, 4, 0, i), (0 if i < 2 else 5), (1 if i < 3 else 0.1)
        for key, want in (("G/ds", w_ds * ds), ("G/late", w_late * late), ("G/steps", w_steps * steps),
                          ("G", rec + w_ds * ds + w_late * late + w_steps * steps)):
            torch.testing.assert_close(got[key].detach(), want, rtol=1e-12, atol=1e-12, msg=f"{key} at {i}")
    # a weight given among the inputs is used as given
    given_weight = program.losses(nets, {**inputs, "weight/G/ds": torch.tensor(0.5, dtype=torch.float64)})
    torch.testing.assert_close(given_weight["G/ds"].detach(), 0.5 * ds)


def test_the_weight_is_an_input_of_the_generated_code_not_a_constant(program):
    assert 'weight_ds = inputs["weight/G/ds"]' in program.code
    assert "ds = weight_ds * " in program.code
    assert program.weights(1) == {"weight/G/ds": -1.5, "weight/G/late": 0.0, "weight/G/steps": 1.0}


def test_a_trainer_step_uses_and_reports_the_weight_of_its_iteration(program):
    nets = program.build_networks(seed=0)
    trainer = program.trainer(nets)
    inputs = program.example_inputs(batch_size=2, seed=1)
    for i in range(6):
        before = copy.deepcopy(nets)
        torch.manual_seed(i)
        want = program.losses(before, inputs, iteration=i)
        stats = trainer.step(inputs)
        assert stats["weight/G/ds"] == program.weights(i)["weight/G/ds"] == linear(-2, 0, 4, 0, i)
        assert stats["weight/G/late"] == (0.0 if i < 2 else 5.0)
        for key in ("G", "G/ds", "G/late", "G/steps"):
            assert stats[key] == pytest.approx(float(want[key]), rel=1e-5, abs=1e-7), (key, i)


def test_a_resumed_trainer_takes_the_weights_it_would_have_taken(program):
    inputs = program.example_inputs(batch_size=2, seed=1)
    straight = program.trainer(program.build_networks(seed=0))
    stats = [straight.step(inputs) for _ in range(4)]
    first = program.trainer(program.build_networks(seed=0))
    for _ in range(2):
        first.step(inputs)
    resumed = program.trainer(copy.deepcopy(first.nets))
    resumed.load_state_dict(copy.deepcopy(first.state_dict()))
    again = [resumed.step(inputs) for _ in range(2)]
    for want, got in zip(stats[2:], again):
        assert {k: v for k, v in got.items() if k.startswith("weight/")} == {k: v for k, v in want.items() if k.startswith("weight/")}
        assert got["G"] == pytest.approx(want["G"], rel=1e-6)


@pytest.mark.slow  # torch.compile on the CPU: about 40 s
def test_compiled_steps_are_not_recompiled_as_the_weights_change():
    """The weight reaches the step as a tensor among its inputs: the compiled graphs are made once.
    (torch.compile per network today: the weights never enter a compiled graph; a compiled whole
    step would take them as graph inputs, never as constants.)"""
    from torch._dynamo.utils import counters

    program = compile_text()
    nets = program.build_networks(seed=0)
    trainer = program.trainer(nets, compile=True)
    inputs = program.example_inputs(batch_size=2, seed=1)
    torch._dynamo.reset()
    counters.clear()
    trainer.step(inputs)
    compiled = (counters["stats"]["unique_graphs"], counters["frames"]["total"])
    assert compiled[0] >= 1
    for i in range(1, 6):  # every weight changes at least once over these iterations
        before = copy.deepcopy(nets)
        want = program.losses(before, inputs, iteration=i)
        stats = trainer.step(inputs)
        assert (counters["stats"]["unique_graphs"], counters["frames"]["total"]) == compiled, f"recompiled at iteration {i}"
        assert stats["weight/G/ds"] == linear(-2, 0, 4, 0, i)
        # the loss the compiled step reports is the formula with that iteration's weight
        assert stats["G"] == pytest.approx(float(want["G"]), rel=1e-4, abs=1e-6), i


@pytest.mark.parametrize(("weight", "message", "column"), [
    ("{linear: [2, 0]}", "linear: [from, to] needs steps: N", 33),
    ("{warmup: 5, steps: 3}", "steps: belongs to linear, not warmup", 33),
    ("{linear: [2, 0], steps: 4, warmup: 3}", "exactly one of linear: [from, to], warmup: N, piecewise: [[0, w], [N, w2]], not linear and warmup", 33),
    ("{piecewise: [[5, 1]]}", "piecewise lists [iteration, weight] pairs from iteration 0 on", 33),
    ("{piecewise: [[0, 1], [-3, 2]]}", "greater than or equal to 0", 55),
    ("{lnear: [1, 2]}", "unknown key 'lnear' (did you mean 'linear'?)", 34),
    ("{linear: [2, 0], steps: 0}", "greater than 0", 57),
])
def test_schedule_mistakes_are_located(weight, message, column):
    with pytest.raises(lossgraph.SpecError) as error:
        lossgraph.compile("cyclegan", [f"players.G.minimize.cycle.weight={weight}"])
    text = str(error.value)
    assert message in text and f"<override 1>:1:{column}:" in text, text


def test_show_writes_the_schedule_as_the_factor(capsys, tmp_path):
    path = tmp_path / "schedules.yaml"
    path.write_text(SPEC)
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ds = [-2 → 0 over iterations 0..4] · 𝔼[l1(G(x, z) - stop_gradient(G(x, z2)))]" in out
    assert "late = [0 until iteration 2, then 5] · 𝔼[l2sq(G(x, z))]" in out


def test_show_latex_writes_the_schedule_as_text(capsys, tmp_path):
    # words in math mode read as one italic product of letters ("0untiliteration2")
    path = tmp_path / "schedules.yaml"
    path.write_text(SPEC)
    assert main(["show", str(path), "--latex"]) == 0
    out = capsys.readouterr().out
    assert r"ds = \left[\text{-2 $\rightarrow$ 0 over iterations 0..4}\right] \cdot " in out
    assert r"late = \left[\text{0 until iteration 2, then 5}\right] \cdot " in out
    assert "→" not in out


def test_a_run_logs_the_weights_in_metrics_csv(tmp_path):
    path = tmp_path / "schedules.yaml"
    path.write_text(SPEC + "dataset: {builtin: shapes, size: 16, styles: {x: [flat]}}\n")
    out = tmp_path / "run"
    assert main(["run", str(path), "--steps", "4", "--batch-size", "2", "--out", str(out), "--no-progress",
                 "train.log_every=1", "train.sample_every=100", "train.eval_every=100", "train.checkpoint_every=100"]) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [float(row["weight/G/ds"]) for row in rows] == [-2.0, -1.5, -1.0, -0.5]
    assert [float(row["weight/G/late"]) for row in rows] == [0.0, 0.0, 5.0, 5.0]
