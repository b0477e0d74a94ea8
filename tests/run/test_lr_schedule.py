"""Learning-rate schedules (`optim: {G: {adam: {...}, schedule: {constant: C, decay: N}}}`): the
grammar and its located errors, the rate after k iterations, metrics.csv's `lr/G`, resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import lossgraph
from lossgraph.data import open_dataset
from lossgraph.language.errors import SpecError
from lossgraph.train.run import RunOptions, train

TINY = Path(__file__).with_name("tiny.yaml")
LR = 1e-3  # tiny.yaml's learning rate for both players
SCHEDULE = "optim.G.schedule={constant: 3, decay: 4}"


def expected_rate(step: int, constant: int, decay: int) -> float:
    """CycleGAN's linear policy, written out: lr for steps 1..constant, then
    lr * (1 - (step - constant) / (decay + 1)), never below 0."""
    if step <= constant:
        return LR
    return LR * max(0.0, 1.0 - (step - constant) / (decay + 1))


def compile_tiny(*overrides: str):
    return lossgraph.compile(lossgraph.load(TINY, overrides=list(overrides)))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_schedule_is_part_of_the_optimizer_spec():
    spec = lossgraph.load(TINY, overrides=[SCHEDULE])
    schedule = spec.optim["G"].schedule
    assert (schedule.constant, schedule.decay) == (3, 4)
    assert spec.optim["D"].schedule is None
    assert [schedule.factor(step) for step in range(1, 10)] == \
        [expected_rate(step, 3, 4) / LR for step in range(1, 10)]
    # constant defaults to 0: decay from the first step on
    assert lossgraph.load(TINY, overrides=["optim.G.schedule={decay: 9}"]).optim["G"].schedule.factor(1) == 0.9


@pytest.mark.parametrize("override, message", [
    ("optim.G.schedule={constant: 3}", "optim.G.schedule: missing key 'decay'"),
    ("optim.G.schedule={constant: -1, decay: 4}", "optim.G.schedule.constant: input should be greater than or equal to 0"),
    ("optim.G.schedule={decay: 0}", "optim.G.schedule.decay: input should be greater than 0"),
    ("optim.G.schedule={decay: 4, constnt: 2}", "unknown key 'constnt' (did you mean 'constant'?)"),
    ("optim.G.schedule={decay: soon}", "optim.G.schedule.decay: input should be a valid integer"),
])
def test_bad_schedules_are_located_errors(override, message):
    with pytest.raises(SpecError) as caught:
        lossgraph.load(TINY, overrides=[override])
    assert message in str(caught.value)
    assert "<override 1>:1:" in str(caught.value)


def test_a_schedule_in_a_spec_file_points_at_its_line(tmp_path):
    text = TINY.read_text().replace("G: {adam: {lr: 1.0e-3, betas: [0.5, 0.999]}}",
                                    "G: {adam: {lr: 1.0e-3, betas: [0.5, 0.999]}, schedule: {constant: 2, decay: -5}}")
    path = tmp_path / "scheduled.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        lossgraph.load(path)
    line = next(number for number, content in enumerate(text.splitlines(), 1) if "decay: -5" in content)
    assert f"scheduled.yaml:{line}:" in str(caught.value)
    assert "optim.G.schedule.decay" in str(caught.value)


def test_the_rate_after_k_iterations_follows_the_formula():
    program = compile_tiny(SCHEDULE)
    trainer = program.trainer(program.build_networks(seed=0))
    for step in range(1, 11):
        stats = trainer.step(program.example_inputs(batch_size=2, seed=step))
        assert stats["lr/G"] == pytest.approx(expected_rate(step, 3, 4), rel=1e-12, abs=0)  # the rate step used
        assert "lr/D" not in stats  # D has no schedule: its rate is the spec's
        # after the iteration, the optimizer holds the next step's rate
        assert trainer.optimizers["G"].param_groups[0]["lr"] == pytest.approx(expected_rate(step + 1, 3, 4), rel=1e-12, abs=0)
        assert trainer.optimizers["D"].param_groups[0]["lr"] == LR
    assert trainer.optimizers["G"].param_groups[0]["lr"] == 0.0


def test_the_rate_steps_once_per_iteration_not_per_repeated_critic_step():
    program = compile_tiny("schedule=[{D: 3}, G]", "optim.D.schedule={constant: 1, decay: 3}")
    trainer = program.trainer(program.build_networks(seed=0))
    for step in range(1, 5):
        stats = trainer.step(program.example_inputs(batch_size=2, seed=step))
        assert stats["lr/D"] == pytest.approx(expected_rate(step, 1, 3), rel=1e-12, abs=0)
    assert trainer.schedulers["D"].last_epoch == 4


def test_a_zero_rate_leaves_the_weights_alone():
    # past constant + decay the rate is 0: Adam's update is lr times something finite
    program = compile_tiny("optim.G.schedule={constant: 0, decay: 1}")
    nets = program.build_networks(seed=0)
    trainer = program.trainer(nets)
    for step in range(1, 3):
        trainer.step(program.example_inputs(batch_size=2, seed=step))
    before = {key: value.clone() for key, value in nets["G"].state_dict().items()}
    trainer.step(program.example_inputs(batch_size=2, seed=3))
    assert all(torch.equal(before[key], value) for key, value in nets["G"].state_dict().items())


def test_scheduler_state_is_in_the_trainer_state_and_restores_the_rate():
    program = compile_tiny(SCHEDULE)
    trainer = program.trainer(program.build_networks(seed=0))
    for step in range(1, 6):
        trainer.step(program.example_inputs(batch_size=2, seed=step))
    state = trainer.state_dict()
    assert state["schedulers"]["G"]["last_epoch"] == 5
    other = program.trainer(program.build_networks(seed=1))
    other.load_state_dict(state)
    assert other.optimizers["G"].param_groups[0]["lr"] == trainer.optimizers["G"].param_groups[0]["lr"]
    assert other.step(program.example_inputs(batch_size=2, seed=6))["lr/G"] == pytest.approx(expected_rate(6, 3, 4))


def test_a_run_logs_the_rate_and_resumes_exactly(tmp_path):
    program = compile_tiny("optim.G.schedule={constant: 4, decay: 6}", "optim.D.schedule={decay: 12}")
    spec = program.spec
    dataset = open_dataset(spec.dataset, spec.kinds, spec.train.image_size, seed=0, base_dir=TINY.parent)

    def run(out: Path, steps: int, **options):
        return train(program, dataset, RunOptions(out_dir=out, device="cpu", steps=steps, progress=False,
                                                  checkpoint_every=5, tensorboard=False, **options))

    run(tmp_path / "whole", 12)
    rows = read_csv(tmp_path / "whole" / "metrics.csv")
    assert list(rows[0])[-3:] == ["lr/D", "lr/G", "seconds"]  # after the players' losses
    for row in rows:
        step = int(row["step"])
        assert float(row["lr/G"]) == pytest.approx(expected_rate(step, 4, 6), rel=1e-12, abs=0)
        assert float(row["lr/D"]) == pytest.approx(expected_rate(step, 0, 12), rel=1e-12, abs=0)

    run(tmp_path / "split", 8)
    run(tmp_path / "split", 12, resume=True)
    strip = lambda rows: [{key: value for key, value in row.items() if key != "seconds"} for row in rows]  # noqa: E731
    assert strip(read_csv(tmp_path / "split" / "metrics.csv")) == strip(rows)


# -- schedules and runs counted in epochs (train/epochs.py) ---------------------------------------

EPOCHS = "optim.G.schedule={constant_epochs: 2, decay_epochs: 3}"


def expected_epoch_rate(step: int, per_epoch: int, constant: int, decay: int) -> float:
    """The linear policy over epochs: step n trains in epoch (n - 1) // per_epoch + 1."""
    epoch = (step - 1) // per_epoch + 1
    return LR * max(0.0, 1.0 - max(0, epoch - constant) / (decay + 1))


def test_a_schedule_in_epochs_moves_once_an_epoch():
    program = compile_tiny(EPOCHS)
    schedule = program.spec.optim["G"].schedule
    assert schedule.in_epochs and not program.spec.optim["D"].schedule
    trainer = program.trainer(program.build_networks(seed=0), steps_per_epoch=3)
    rates = [trainer.step(program.example_inputs(batch_size=2, seed=step))["lr/G"] for step in range(1, 19)]
    assert rates == pytest.approx([expected_epoch_rate(step, 3, 2, 3) for step in range(1, 19)], rel=1e-12, abs=0)
    assert rates[:6] == [LR] * 6 and rates[6] == rates[8] == pytest.approx(LR * 3 / 4)  # epoch 3: the first decay
    assert rates[-1] == 0.0  # epoch 6, after constant + decay


def test_the_epoch_schedule_is_the_released_codes_linear_policy():
    """The released train.py stepped its LambdaLR at the end of every epoch until 2020 and at the
    start since; lossgraph's {constant_epochs: C, decay_epochs: D} is the first, and C - 1 the second."""
    from benchmarks.baselines.released_parts import epoch_rates

    end = epoch_rates(2e-4, 100, 100, stepped_at="end")
    start = epoch_rates(2e-4, 100, 100, stepped_at="start")
    paper = lossgraph.load("cyclegan-authors").optim["G"].schedule
    assert (paper.constant_epochs, paper.decay_epochs) == (100, 100)
    shifted = paper.model_copy(update={"constant_epochs": 99})
    ours = [2e-4 * paper.factor(epoch, steps_per_epoch=1) for epoch in range(1, 201)]
    assert ours == pytest.approx(end, rel=1e-12, abs=1e-20)
    assert [2e-4 * shifted.factor(epoch, steps_per_epoch=1) for epoch in range(1, 201)] == pytest.approx(start, rel=1e-12, abs=1e-20)
    assert end[99] == 2e-4 and end[100] == pytest.approx(2e-4 * 100 / 101) and end[-1] == pytest.approx(2e-4 / 101)
    assert start[98] == 2e-4 and start[99] == pytest.approx(2e-4 * 100 / 101) and start[-1] == 0.0


def test_a_trainer_without_steps_per_epoch_says_what_it_needs():
    program = compile_tiny(EPOCHS)
    with pytest.raises(lossgraph.LossgraphError, match=r"optim\.G\.schedule: the schedule counts epochs, so the trainer needs steps_per_epoch"):
        program.trainer(program.build_networks(seed=0))


@pytest.mark.parametrize("override, message", [
    ("optim.G.schedule={decay: 4, decay_epochs: 2}",
     "optim.G.schedule.decay_epochs: a schedule counts steps (constant, decay) or epochs (constant_epochs, decay_epochs), not both (drop decay or decay_epochs)"),
    ("optim.G.schedule={constant: 4, constant_epochs: 1, decay_epochs: 2}",
     "optim.G.schedule.constant_epochs: a schedule counts steps (constant, decay) or epochs"),
    ("optim.G.schedule={constant_epochs: 3}", "optim.G.schedule: missing key 'decay_epochs'"),
    ("optim.G.schedule={decay_epochs: 0}", "optim.G.schedule.decay_epochs: input should be greater than 0"),
    ("train.epochs=3", "train.epochs: give train.steps or train.epochs, not both"),
    ("train.epochs=0", "train.epochs: input should be greater than 0"),
])
def test_mixing_steps_and_epochs_is_a_located_error(override, message):
    with pytest.raises(SpecError) as caught:
        lossgraph.load(TINY, overrides=[override])
    assert message in str(caught.value)


def test_a_judges_schedule_counts_steps(tmp_path):
    text = TINY.read_text().replace("networks:\n", "networks:\n  J: {arch: patchgan, width: 4, layers: 1, norm: none}\n", 1)
    text += "judges:\n  J:\n    minimize: E[J(x)^2]\n    steps: 3\n    optim: {adam: {lr: 1.0e-3}, schedule: {decay_epochs: 2}}\n"
    path = tmp_path / "judged.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        lossgraph.load(path)
    line = next(number for number, content in enumerate(text.splitlines(), 1) if "decay_epochs" in content)
    assert f"judged.yaml:{line}:" in str(caught.value)
    assert "judges.J.optim.schedule.decay_epochs: a judge is fitted for its steps before training" in str(caught.value)


def test_a_derived_spec_trades_steps_for_epochs(tmp_path):
    (tmp_path / "base.yaml").write_text(TINY.read_text())
    (tmp_path / "by-epochs.yaml").write_text("extends: base.yaml\nname: by-epochs\ntrain: {steps: null, epochs: 3}\n")
    spec = lossgraph.load(tmp_path / "by-epochs.yaml")
    assert spec.train.epochs == 3 and "steps" not in spec.train.model_fields_set


def test_a_run_in_epochs_trains_epochs_times_the_steps_of_an_epoch(tmp_path):
    # tiny.yaml's dataset: 64 items a stream; at batch 30 an epoch is 3 steps (the last a partial one)
    program = compile_tiny("train.steps=null", "train.epochs=2", "optim.G.schedule={constant_epochs: 1, decay_epochs: 1}")
    spec = program.spec
    dataset = open_dataset(spec.dataset, spec.kinds, spec.train.image_size, seed=0, base_dir=TINY.parent)
    assert len(dataset) == 64
    summary = train(program, dataset, RunOptions(out_dir=tmp_path / "run", device="cpu", batch_size=30, progress=False,
                                                 checkpoint_every=1000, tensorboard=False))
    assert summary.step == 2 * 3
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert [float(row["lr/G"]) for row in rows] == pytest.approx([LR] * 3 + [LR / 2] * 3, rel=1e-12)
    recorded = lossgraph.load(tmp_path / "run" / "spec.yaml")  # the run's length, in steps
    assert recorded.train.steps == 6 and recorded.train.epochs is None
    # --steps counts steps and replaces train.epochs
    short = train(program, dataset, RunOptions(out_dir=tmp_path / "short", device="cpu", steps=5, progress=False,
                                               tensorboard=False))
    assert short.step == 5


def test_a_dataset_without_a_length_cannot_count_epochs():
    from lossgraph.train.options import plan_run

    program = compile_tiny(EPOCHS)
    with pytest.raises(lossgraph.LossgraphError, match="has no length to make an epoch of"):
        plan_run(program, RunOptions(device="cpu"), dataset=object())


def test_the_command_line_counts_the_specs_epochs(tmp_path, capsys):
    from lossgraph.cli import main

    out = tmp_path / "run"
    arguments = ["run", str(TINY), "train.steps=null", "train.epochs=2", "--batch-size", "32", "--out", str(out),
                 "--no-progress", "--no-tensorboard"]
    assert main(arguments) == 0
    assert "tiny: 4 steps" in capsys.readouterr().out  # 64 items at batch 32: 2 steps an epoch
    assert main([*arguments[:-4], "--steps", "1", "--out", str(tmp_path / "one"), "--no-progress", "--no-tensorboard"]) == 0
    assert "tiny: 1 steps" in capsys.readouterr().out
