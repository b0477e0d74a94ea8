"""TensorBoard event files (RUN/tensorboard/): the scalars of metrics.csv and eval.csv at the same
steps, the sample grids, a resume that purges what the interrupted run wrote past its checkpoint,
and the switches: on when tensorboard is installed, --tensorboard to require it, --no-tensorboard."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

import lossgraph
from lossgraph.train import tensorboard_log
from lossgraph.cli import main
from lossgraph.data import open_dataset
from lossgraph.language.errors import LossgraphError
from lossgraph.train.run import RunOptions, train

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TINY = Path(__file__).with_name("tiny.yaml")


@pytest.fixture(scope="module")
def program():
    return lossgraph.compile(lossgraph.load(TINY, overrides=["optim.G.schedule={constant: 3, decay: 6}"]))


def run(program, out: Path, steps: int, **options):
    spec = program.spec
    dataset = open_dataset(spec.dataset, spec.kinds, spec.train.image_size, seed=0, base_dir=TINY.parent)
    options.setdefault("progress", False)
    return train(program, dataset, RunOptions(out_dir=out, device="cpu", steps=steps, **options))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def events(out: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def scalars(accumulator: EventAccumulator, tag: str) -> dict[int, float]:
    found = accumulator.Scalars(tag)
    steps = [event.step for event in found]
    assert len(steps) == len(set(steps)), f"{tag}: a step logged twice: {steps}"
    return {event.step: event.value for event in found}


def assert_events_match_the_csvs(out: Path) -> None:
    accumulator = events(out)
    rows = read_csv(out / "metrics.csv")
    columns = [column for column in rows[0] if column != "step"]
    assert {"D", "D/adv", "G", "G/adv", "G/l1", "lr/G", "seconds"} <= set(columns)
    for column in columns:
        logged = scalars(accumulator, column)
        assert sorted(logged) == [int(row["step"]) for row in rows], column
        for row in rows:
            # event files hold float32
            assert logged[int(row["step"])] == pytest.approx(float(row[column]), rel=1e-6), (column, row["step"])
    evaluated = read_csv(out / "eval.csv")
    logged = scalars(accumulator, "eval/error")
    assert sorted(logged) == [int(row["step"]) for row in evaluated]
    for row in evaluated:
        assert logged[int(row["step"])] == pytest.approx(float(row["error"]), rel=1e-6)


def test_event_files_hold_every_csv_value_and_the_sample_grids(program, tmp_path, capsys):
    run(program, tmp_path, 9, log_every=2, eval_every=4, sample_every=3, checkpoint_every=0)
    assert f"TensorBoard events in {tmp_path / 'tensorboard'}" in capsys.readouterr().err
    assert_events_match_the_csvs(tmp_path)
    accumulator = events(tmp_path)
    assert [int(row["step"]) for row in read_csv(tmp_path / "metrics.csv")] == [2, 4, 6, 8, 9]
    assert scalars(accumulator, "lr/G")[8] == pytest.approx(1e-3 * (1 - 5 / 7), rel=1e-6)
    images = accumulator.Images("samples")
    assert [image.step for image in images] == [3, 6, 9]
    from PIL import Image

    with Image.open(tmp_path / "samples" / "step_000009.png") as grid:
        assert (images[-1].width, images[-1].height) == grid.size


def test_a_resume_purges_what_the_interrupted_run_logged_past_its_checkpoint(program, tmp_path):
    intervals = dict(log_every=1, eval_every=2, sample_every=4, checkpoint_every=5)
    run(program, tmp_path / "whole", 12, **intervals)
    run(program, tmp_path / "split", 8, **intervals)
    # as if killed after step 8 with its last checkpoint at step 5: steps 6 to 8 are logged twice
    shutil.rmtree(tmp_path / "split" / "checkpoints" / "step_000008")
    run(program, tmp_path / "split", 12, resume=True, **intervals)
    files = sorted((tmp_path / "split" / "tensorboard").iterdir())
    assert len(files) == 2  # a resumed run appends a file, which says where TensorBoard purges from
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.compat.proto.event_pb2 import SessionLog

    starts = [event.step for path in files for event in EventFileLoader(str(path)).Load()
              if event.HasField("session_log") and event.session_log.status == SessionLog.START]
    assert starts == [6]
    assert_events_match_the_csvs(tmp_path / "split")
    whole, split = events(tmp_path / "whole"), events(tmp_path / "split")
    for tag in ("D", "G/l1", "lr/G", "eval/error"):
        assert scalars(whole, tag) == scalars(split, tag), tag  # the resumed run repeats the whole one
    assert [image.step for image in split.Images("samples")] == [4, 8, 12]


def test_a_new_run_in_a_folder_without_checkpoints_replaces_old_events(program, tmp_path):
    run(program, tmp_path, 3, checkpoint_every=0)
    shutil.rmtree(tmp_path / "checkpoints")
    run(program, tmp_path, 2, checkpoint_every=0)
    assert len(list((tmp_path / "tensorboard").iterdir())) == 1
    assert sorted(scalars(events(tmp_path), "G")) == [1, 2]


def test_no_tensorboard_writes_none(program, tmp_path, capsys):
    assert main(["run", str(TINY), "--steps", "2", "--out", str(tmp_path), "--no-progress", "--no-tensorboard"]) == 0
    assert not (tmp_path / "tensorboard").exists()
    assert "TensorBoard" not in capsys.readouterr().err


def test_without_the_package_nothing_breaks_and_nothing_is_said(program, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tensorboard_log, "installed", lambda: False)
    run(program, tmp_path / "quiet", 2)
    assert not (tmp_path / "quiet" / "tensorboard").exists()
    assert "tensorboard" not in capsys.readouterr().err.lower()
    # asked for, it is a clear error before anything is written
    with pytest.raises(LossgraphError, match="tensorboard package is not installed.*pip install tensorboard"):
        run(program, tmp_path / "asked", 2, tensorboard=True)
    assert not (tmp_path / "asked").exists()
    assert main(["run", str(TINY), "--steps", "2", "--out", str(tmp_path / "cli"), "--tensorboard"]) == 2
    assert "error: --tensorboard asked for event files, but the tensorboard package is not installed" in capsys.readouterr().err


def test_tensorboard_flags_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        main(["run", str(TINY), "--tensorboard", "--no-tensorboard"])
    assert "not allowed with argument" in capsys.readouterr().err
