"""Crash safety: a run killed with SIGKILL resumes from its last checkpoint and then repeats the
uninterrupted run exactly; debris of a checkpoint write cut short is never taken for a checkpoint."""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lossgraph.train import checkpoint as checkpoint_module
from lossgraph.train.checkpoint import latest_checkpoint, list_checkpoints, read_checkpoint_state
from lossgraph.train.run import RunOptions, train

from run_fakes import FakeDataset, FakeProgram

ROOT = Path(__file__).resolve().parents[2]
TINY = Path(__file__).with_name("tiny.yaml")
STEPS = 200
CHECKPOINT_EVERY = 10  # tiny.yaml's train.checkpoint_every


def lossgraph_run(out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "lossgraph", "run", str(TINY), "--out", str(out), "--steps", str(STEPS),
               "--device", "cpu", "--no-progress", *extra]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def complete_rows(path: Path) -> list[dict[str, str]]:
    """metrics.csv's rows without `seconds`; a torn last line (the kill landed mid-write) is dropped."""
    with open(path, newline="") as handle:
        lines = list(csv.reader(handle))
    header, body = lines[0], lines[1:]
    return [{key: value for key, value in zip(header, line) if key != "seconds"}
            for line in body if len(line) == len(header) and all(line)]


def final_nets(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(latest_checkpoint(out / "checkpoints") / "nets.safetensors"))


def test_sigkill_then_resume_repeats_the_uninterrupted_run(tmp_path):
    crashed, whole = tmp_path / "crashed", tmp_path / "whole"
    victim = lossgraph_run(crashed)
    reference = lossgraph_run(whole)  # side by side: each spends seconds importing torch
    try:
        deadline = time.monotonic() + 120
        while not list_checkpoints(crashed / "checkpoints"):
            assert victim.poll() is None, victim.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
        delay = random.uniform(0.0, 0.4)  # somewhere after the first checkpoint, not at a fixed step
        time.sleep(delay)
        assert victim.poll() is None, f"the run finished before it could be killed (delay {delay:.3f} s)"
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL

    saved = latest_checkpoint(crashed / "checkpoints")
    assert saved is not None
    saved_step = read_checkpoint_state(saved)["step"]
    logged = complete_rows(crashed / "metrics.csv")
    last_logged = int(logged[-1]["step"])
    # (a) the kill lost at most the steps since the last checkpoint
    assert saved_step == max(path for path in (int(p.name[5:]) for p in list_checkpoints(crashed / "checkpoints")))
    assert 0 <= last_logged - saved_step <= CHECKPOINT_EVERY, (delay, saved_step, last_logged)
    assert last_logged < STEPS

    resumed = lossgraph_run(crashed, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"(step {saved_step})" in err
    reference_out, reference_err = reference.communicate(timeout=300)
    assert reference.returncode == 0, reference_err

    # (b) metrics after the resume equal the uninterrupted run's, row for row (CPU: exactly)
    crashed_rows, whole_rows = complete_rows(crashed / "metrics.csv"), complete_rows(whole / "metrics.csv")
    assert [int(row["step"]) for row in crashed_rows] == list(range(1, STEPS + 1))
    assert crashed_rows == whole_rows
    crashed_nets, whole_nets = final_nets(crashed), final_nets(whole)
    assert crashed_nets.keys() == whole_nets.keys()
    assert all(torch.equal(crashed_nets[key], whole_nets[key]) for key in whole_nets)


def run(out: Path, **options):
    options.setdefault("progress", False)
    return train(FakeProgram(), FakeDataset(), RunOptions(out_dir=out, device="cpu", **options))


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return [{key: value for key, value in row.items() if key != "seconds"} for row in csv.DictReader(handle)]


def test_half_written_checkpoints_are_never_taken_for_checkpoints(tmp_path):
    intervals = dict(log_every=1, sample_every=0, checkpoint_every=5, eval_every=0)
    run(tmp_path / "whole", steps=14, **intervals)
    run(tmp_path / "split", steps=10, **intervals)
    folder = tmp_path / "split" / "checkpoints"
    good = folder / "step_000010"

    # a folder that lost a file, named by `latest`; one holding only the state; a complete-looking
    # temporary folder whose rename never happened; a temporary `latest` file
    (folder / "step_000015").mkdir()
    shutil.copy(good / "nets.safetensors", folder / "step_000015")
    (folder / "step_000012").mkdir()
    shutil.copy(good / "state.pt", folder / "step_000012")
    shutil.copytree(good, folder / ".tmp-step_000013")
    (folder / ".tmp-latest.12345").write_text("step_000013\n")
    (folder / "latest").write_text("step_000015\n")

    assert latest_checkpoint(folder) == good
    assert [path.name for path in list_checkpoints(folder)] == ["step_000005", "step_000010"]

    summary = run(tmp_path / "split", steps=14, resume=True, **intervals)
    assert summary.step == 14 and summary.steps_run == 4  # resumed from step 10
    assert rows(tmp_path / "split" / "metrics.csv") == rows(tmp_path / "whole" / "metrics.csv")
    assert not [path for path in folder.iterdir() if path.name.startswith(".tmp")]


def test_a_save_cut_short_before_its_commit_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    run(tmp_path, steps=5, checkpoint_every=5)
    real_replace = os.replace

    def crash_at_commit(source, target):
        if Path(target).parent.name == "checkpoints" and Path(target).name.startswith("step_"):
            raise KeyboardInterrupt  # as if killed between writing the files and the rename
        return real_replace(source, target)

    monkeypatch.setattr(checkpoint_module.os, "replace", crash_at_commit)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, steps=10, checkpoint_every=5, resume=True)
    monkeypatch.undo()
    folder = tmp_path / "checkpoints"
    assert (folder / ".tmp-step_000010" / "state.pt").is_file()  # both files written, never committed
    assert latest_checkpoint(folder).name == "step_000005"
    summary = run(tmp_path, steps=10, checkpoint_every=5, resume=True)
    assert summary.steps_run == 5 and latest_checkpoint(folder).name == "step_000010"


def test_checkpoint_holds_the_schedule_position_and_every_state(tmp_path):
    run(tmp_path, steps=5, checkpoint_every=5)
    state = read_checkpoint_state(latest_checkpoint(tmp_path / "checkpoints"))
    assert state["step"] == 5 and state["trainer"]["iteration"] == 5
    assert set(state["trainer"]["optimizers"]) == {"D", "G"}
    assert {"torch", "python"} <= set(state["rng"]) and state["skipped"] == 0
