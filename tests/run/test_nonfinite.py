"""A NaN or infinite loss: the run stops (exit 2, last good checkpoint kept) or, with
--skip-nonfinite, the step's updates are undone and the run goes on, counting the skips."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

import lossgraph
from lossgraph.train.checkpoint import latest_checkpoint, list_checkpoints, read_checkpoint_state
from lossgraph.cli import main
from lossgraph.data import open_dataset
from lossgraph.language.errors import LossgraphError
from lossgraph.train.nonfinite import NonFiniteError, first_nonfinite
from lossgraph.train.run import RunOptions, train

from run_fakes import FakeDataset, FakeProgram, FakeTrainer

TINY = Path(__file__).with_name("tiny.yaml")
BAD_STEP = 15


class PoisonedData:
    """The tiny spec's data, with NaN images at one step: every loss of that step is NaN."""

    def __init__(self, dataset, bad_step: int = BAD_STEP):
        self.dataset = dataset
        self.bad_step = bad_step

    def batch(self, step: int, batch_size: int):
        batch = self.dataset.batch(step, batch_size)
        if step == self.bad_step:
            batch = dict(batch, x=torch.full_like(batch["x"], math.nan))
        return batch

    def held_out(self, count: int):
        return self.dataset.held_out(count)


@pytest.fixture(scope="module")
def program():
    return lossgraph.compile(TINY)


def data(program, poisoned: bool = True):
    spec = program.spec
    dataset = open_dataset(spec.dataset, spec.kinds, spec.train.image_size, seed=0, base_dir=TINY.parent)
    return PoisonedData(dataset) if poisoned else dataset


def run(program, dataset, out: Path, **options):
    options.setdefault("progress", False)
    options.setdefault("checkpoint_every", 10)
    return train(program, dataset, RunOptions(out_dir=out, device="cpu", **options))


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_first_nonfinite_names_the_player_and_its_first_bad_term():
    stats = {"D": 0.5, "D/adv": 0.5, "G": math.nan, "G/adv": 1.0, "G/l1": math.inf, "G/idt": math.nan}
    found = first_nonfinite(stats, ["D", "G"])
    assert (found.player, found.key) == ("G", "G/l1")
    assert first_nonfinite({"D": 1.0, "judge/x": math.nan}, ["D"]) is None  # not a loss
    assert first_nonfinite({"D": 1.0}, ["D"]) is None


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(program, tmp_path):
    with pytest.raises(NonFiniteError) as caught:
        run(program, data(program), tmp_path, steps=30)
    error = caught.value
    assert isinstance(error, LossgraphError)
    assert (error.step, error.player, error.term) == (BAD_STEP, "D", "D/adv")  # D steps first
    message = str(error)
    assert f"step {BAD_STEP}: player D's loss is not finite: term D/adv = nan" in message
    assert "--skip-nonfinite" in message and "step_000010" in message
    checkpoints = tmp_path / "checkpoints"
    assert [path.name for path in list_checkpoints(checkpoints)] == ["step_000010"]
    assert latest_checkpoint(checkpoints).name == "step_000010"
    logged = rows(tmp_path / "metrics.csv")
    assert logged[-1]["step"] == str(BAD_STEP) and logged[-1]["D"] == "nan"  # the poisoned step, recorded

    # resuming with --skip-nonfinite gets past the bad step
    summary = run(program, data(program), tmp_path, steps=30, resume=True, skip_nonfinite=True)
    assert summary.step == 30 and summary.skipped == 1
    assert read_checkpoint_state(latest_checkpoint(checkpoints))["skipped"] == 1


def test_skip_nonfinite_undoes_the_step_and_goes_on(program, tmp_path, capsys):
    # Reference: the state after BAD_STEP - 1 steps; skipping BAD_STEP must leave exactly that state.
    run(program, data(program), tmp_path / "before", steps=BAD_STEP - 1, checkpoint_every=0)
    skipped = run(program, data(program), tmp_path / "skip", steps=BAD_STEP, checkpoint_every=0, skip_nonfinite=True)
    assert skipped.skipped == 1
    before = read_checkpoint_state(latest_checkpoint(tmp_path / "before" / "checkpoints"))
    after = read_checkpoint_state(latest_checkpoint(tmp_path / "skip" / "checkpoints"))
    from safetensors.torch import load_file

    nets_before = load_file(str(latest_checkpoint(tmp_path / "before" / "checkpoints") / "nets.safetensors"))
    nets_after = load_file(str(latest_checkpoint(tmp_path / "skip" / "checkpoints") / "nets.safetensors"))
    assert nets_before.keys() == nets_after.keys()
    for key in nets_before:
        assert torch.equal(nets_before[key], nets_after[key]), key
    assert after["trainer"]["iteration"] == before["trainer"]["iteration"] == BAD_STEP - 1
    for player in ("D", "G"):
        old, new = before["trainer"]["optimizers"][player]["state"], after["trainer"]["optimizers"][player]["state"]
        assert old.keys() == new.keys()
        for index in old:
            for name in old[index]:
                assert torch.equal(old[index][name], new[index][name]), (player, index, name)

    # and the run goes on past it: finite losses, the count in metrics.csv and the summary
    capsys.readouterr()
    summary = run(program, data(program), tmp_path / "on", steps=BAD_STEP + 5, skip_nonfinite=True)
    out, err = capsys.readouterr()
    assert summary.skipped == 1 and summary.step == BAD_STEP + 5
    assert all(math.isfinite(value) for value in summary.stats.values())
    assert f"step {BAD_STEP}: player D's loss is not finite: term D/adv = nan; step skipped" in err
    assert "1 steps skipped for a non-finite loss" in out
    logged = rows(tmp_path / "on" / "metrics.csv")
    assert list(logged[0])[-2:] == ["skipped", "seconds"]
    assert [row["skipped"] for row in logged] == ["0"] * (BAD_STEP - 1) + ["1"] * 6


class PoisoningTrainer(FakeTrainer):
    """Returns finite losses, but leaves an infinite weight in D at the fifth call."""

    calls = 0  # not trainer state: an undone step does not undo the count

    def step(self, inputs):
        stats = super().step(inputs)
        self.calls += 1
        if self.calls == 5:
            with torch.no_grad():
                self.nets["D"].score.weight[0, 0] = math.inf
        return stats


class PoisoningProgram(FakeProgram):
    def trainer(self, nets, device="cpu"):
        return PoisoningTrainer(nets)


def test_a_poisoned_state_with_finite_losses_is_never_checkpointed(tmp_path):
    with pytest.raises(NonFiniteError, match="step 5: network D has non-finite parameters") as caught:
        train(PoisoningProgram(), FakeDataset(), RunOptions(out_dir=tmp_path, steps=10, checkpoint_every=5, progress=False))
    assert caught.value.network == "D"
    assert latest_checkpoint(tmp_path / "checkpoints") is None
    # skipping notices it after the step, so the state stays finite and checkpoints are written
    summary = train(PoisoningProgram(), FakeDataset(),
                    RunOptions(out_dir=tmp_path / "skip", steps=10, checkpoint_every=5, progress=False, skip_nonfinite=True))
    assert summary.skipped == 1
    assert latest_checkpoint(tmp_path / "skip" / "checkpoints").name == "step_000010"


def test_cli_exits_2_on_a_nonfinite_loss_and_names_the_flag(tmp_path, capsys):
    out = tmp_path / "run"
    # a learning rate of 1e30 makes D's outputs overflow: G's adversarial term is infinite at once
    code = main(["run", str(TINY), "--out", str(out), "--no-progress", "--steps", "3", "optim.D.adam.lr=1e30"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert "error: step 1: player G's loss is not finite: term G/adv = inf" in err
    assert "--skip-nonfinite" in err
    assert "training diverged. Lower the learning rate" in err  # nothing in (D(fake_y) - 1)^2 overflows by itself
    code = main(["run", str(TINY), "--out", str(tmp_path / "skip"), "--no-progress", "--steps", "3",
                 "optim.D.adam.lr=1e30", "--skip-nonfinite"])
    assert code == 0
    assert "3 steps skipped for a non-finite loss" in capsys.readouterr().out


def test_a_term_that_can_overflow_is_named_as_the_likely_cause(tmp_path, capsys):
    code = main(["run", str(TINY), "--out", str(tmp_path / "run"), "--no-progress", "--steps", "2",
                 "players.G.minimize.adv=E[exp(100000 * D(fake_y))]"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "error: step 1: player G's loss is not finite: term G/adv = inf" in err
    assert "Likely cause, from the spec: exp(100000 * D(fake_y)) overflows float32 (to inf) once its argument exceeds 88 at <override 1>:1:26" in err
    assert "Lower the learning rate" not in err
