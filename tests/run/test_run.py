"""The run loop end to end on a fake program: logs, samples, checkpoints, resume, folder policy."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from PIL import Image

from lossgraph.train.checkpoint import latest_checkpoint
from lossgraph.language.errors import LossgraphError
from lossgraph.train.images import PADDING
from lossgraph.train.run import RunOptions, RunSummary, train

from run_fakes import IMAGE_SIZE, FakeDataset, FakeProgram


def run(out_dir: Path, program: FakeProgram | None = None, **options) -> RunSummary:
    options.setdefault("progress", False)
    return train(program or FakeProgram(), FakeDataset(), RunOptions(out_dir=out_dir, device="cpu", **options))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def without_seconds(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]


def final_parameters(out_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(latest_checkpoint(out_dir / "checkpoints") / "nets.safetensors"))


def test_metrics_csv_has_stable_columns_and_a_row_every_log_interval(tmp_path):
    summary = run(tmp_path, steps=10, log_every=3)
    with open(tmp_path / "metrics.csv", newline="") as handle:
        header = next(csv.reader(handle))
    # Players in schedule order, each total before its terms, seconds last.
    assert header == ["step", "D", "D/real", "G", "G/adv", "G/l1", "seconds"]
    rows = read_csv(tmp_path / "metrics.csv")
    assert [int(row["step"]) for row in rows] == [3, 6, 9, 10]  # the last step is always logged
    seconds = [float(row["seconds"]) for row in rows]
    assert seconds == sorted(seconds) and seconds[0] >= 0
    assert summary.step == 10 and summary.steps_run == 10
    assert set(summary.stats) == {"D", "D/real", "G", "G/adv", "G/l1"}
    assert summary.stats["D"] == pytest.approx(float(rows[-1]["D"]))
    assert summary.steps_per_second > 0


def test_samples_written_periodically_and_at_the_end_with_the_grid_size(tmp_path):
    program = FakeProgram()
    run(tmp_path, program, steps=10, sample_every=4, sample_count=3)
    names = sorted(path.name for path in (tmp_path / "samples").iterdir())
    assert names == ["step_000004.png", "step_000008.png", "step_000010.png"]
    with Image.open(tmp_path / "samples" / "step_000010.png") as picture:
        width, height = picture.size
        assert picture.mode == "RGB"
    rows, columns = 4, 3  # four entries from FakeProgram.samples, three held-out examples
    assert height == PADDING + rows * (IMAGE_SIZE + PADDING)
    assert width > PADDING + columns * (IMAGE_SIZE + PADDING)  # plus the label margin


def test_eval_csv_and_final_metrics(tmp_path, capsys):
    summary = run(tmp_path, steps=10, eval_every=4)
    rows = read_csv(tmp_path / "eval.csv")
    assert [int(row["step"]) for row in rows] == [4, 8, 10]
    assert list(rows[0]) == ["step", "error_XY", "draw"]
    assert summary.metrics["error_XY"] == pytest.approx(float(rows[-1]["error_XY"]))
    assert "error_XY" in capsys.readouterr().out  # final metrics printed


def test_side_computations_do_not_change_training(tmp_path):
    # Samples and evaluation draw random numbers and leave nets in eval mode; training must not notice.
    often = run(tmp_path / "often", steps=8, sample_every=1, eval_every=1, checkpoint_every=0)
    rarely = run(tmp_path / "rarely", steps=8, sample_every=0, eval_every=0, checkpoint_every=0)
    assert without_seconds(read_csv(tmp_path / "often" / "metrics.csv")) == \
        without_seconds(read_csv(tmp_path / "rarely" / "metrics.csv"))
    assert often.stats == rarely.stats
    # Every grid uses the same noise, so the sampled noise row reads back the same each time.
    draws = {row["draw"] for row in read_csv(tmp_path / "often" / "eval.csv")}
    assert len(draws) == 1


def test_checkpoints_every_interval_keep_the_last_three(tmp_path):
    run(tmp_path, steps=11, checkpoint_every=2)
    folder = tmp_path / "checkpoints"
    kept = sorted(path.name for path in folder.iterdir() if path.is_dir())
    assert kept == ["step_000008", "step_000010", "step_000011"]  # the end is always saved
    assert (folder / "latest").read_text().strip() == "step_000011"
    assert not [path for path in folder.iterdir() if path.name.startswith(".tmp")]


def test_resume_continues_exactly_like_the_uninterrupted_run(tmp_path):
    intervals = dict(log_every=1, sample_every=3, checkpoint_every=4, eval_every=5)
    run(tmp_path / "whole", steps=12, **intervals)
    first = run(tmp_path / "split", steps=7, **intervals)
    assert first.step == 7
    second = run(tmp_path / "split", steps=12, resume=True, **intervals)
    assert second.steps_run == 5 and second.step == 12

    whole_rows = without_seconds(read_csv(tmp_path / "whole" / "metrics.csv"))
    split_rows = without_seconds(read_csv(tmp_path / "split" / "metrics.csv"))
    assert [row["step"] for row in split_rows] == [str(step) for step in range(1, 13)]
    assert split_rows == whole_rows  # identical stats at every step, bit for bit
    assert read_csv(tmp_path / "split" / "eval.csv")[-1] == read_csv(tmp_path / "whole" / "eval.csv")[-1]
    whole, split = final_parameters(tmp_path / "whole"), final_parameters(tmp_path / "split")
    assert whole.keys() == split.keys()
    for key in whole:
        assert torch.equal(whole[key], split[key]), key


def test_resume_after_a_crash_drops_log_rows_past_the_checkpoint(tmp_path):
    intervals = dict(log_every=1, sample_every=0, checkpoint_every=5, eval_every=3)
    run(tmp_path / "whole", steps=12, **intervals)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "split", FakeProgram(fail_at=9), steps=12, **intervals)
    assert [row["step"] for row in read_csv(tmp_path / "split" / "metrics.csv")][-1] == "8"
    # Debris of a checkpoint write cut short must not be mistaken for a checkpoint.
    debris = tmp_path / "split" / "checkpoints" / ".tmp-step_000010"
    debris.mkdir()
    (debris / "nets.safetensors").write_bytes(b"half a file")

    run(tmp_path / "split", steps=12, resume=True, **intervals)
    assert without_seconds(read_csv(tmp_path / "split" / "metrics.csv")) == \
        without_seconds(read_csv(tmp_path / "whole" / "metrics.csv"))
    assert read_csv(tmp_path / "split" / "eval.csv") == read_csv(tmp_path / "whole" / "eval.csv")
    assert not debris.exists()


def test_resume_without_a_checkpoint_says_where_it_looked(tmp_path):
    with pytest.raises(LossgraphError, match="no complete checkpoint in .*checkpoints"):
        run(tmp_path / "empty", steps=3, resume=True)


def test_resume_with_another_spec_is_refused(tmp_path):
    run(tmp_path, steps=2)
    with pytest.raises(LossgraphError, match="written by spec 'fakegan', not 'othergan'"):
        run(tmp_path, FakeProgram(name="othergan"), steps=4, resume=True)


def test_resume_past_the_last_step_trains_nothing(tmp_path):
    run(tmp_path, steps=4)
    summary = run(tmp_path, steps=4, resume=True)
    assert summary.steps_run == 0 and summary.step == 4
    assert [row["step"] for row in read_csv(tmp_path / "metrics.csv")] == ["1", "2", "3", "4"]


def test_existing_run_is_not_touched_without_resume(tmp_path):
    run(tmp_path, steps=3)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    with pytest.raises(LossgraphError, match="--resume.*--out"):
        run(tmp_path, steps=3)
    after = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert before == after


def test_folder_without_checkpoints_is_reused(tmp_path, capsys):
    (tmp_path / "metrics.csv").write_text("step,D\n1,0.5\n")
    run(tmp_path, steps=2)
    assert [row["step"] for row in read_csv(tmp_path / "metrics.csv")] == ["1", "2"]
    assert "starting a new run" in capsys.readouterr().err


def test_plain_progress_lines_every_log_interval(tmp_path, capsys):
    run(tmp_path, steps=6, log_every=2, progress=False)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fakegan step ")]
    assert len(lines) == 3
    assert "D 0." in lines[0] or "D 1." in lines[0]
    assert "it/s" in lines[0] and "6/6" in lines[-1]


def test_progress_bar_shows_player_losses(tmp_path, capsys):
    run(tmp_path, steps=6, log_every=2, progress=True)
    err = capsys.readouterr().err
    assert "6/6" in err and "it/s" in err and "D=" in err and "G=" in err


def test_missing_cuda_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(LossgraphError, match="no CUDA"):
        train(FakeProgram(), FakeDataset(), RunOptions(out_dir=tmp_path, device="cuda", steps=1))


def test_defaults_come_from_the_spec(tmp_path):
    program = FakeProgram(steps=3, log_every=2, sample_every=0, checkpoint_every=0, eval_every=0)
    summary = train(program, FakeDataset(), RunOptions(out_dir=tmp_path, progress=False))
    assert summary.step == 3
    assert [row["step"] for row in read_csv(tmp_path / "metrics.csv")] == ["2", "3"]
    assert sorted(path.name for path in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_000003"]
