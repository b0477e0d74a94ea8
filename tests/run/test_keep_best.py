"""`train.keep_best` (lossgraph/train/best.py): the best checkpoint by an evaluation metric beside
the latest, named in summary.json and on stdout, kept through rotation, restored on resume, and
applied by `translate --checkpoint best`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import lossgraph
from lossgraph.cli import main
from lossgraph.data import open_dataset
from lossgraph.language.errors import LossgraphError
from lossgraph.train import loop
from lossgraph.train.best import BestCheckpoint, best_checkpoints, named_checkpoint
from lossgraph.train.checkpoint import list_checkpoints, read_checkpoint_state
from lossgraph.train.run import RunOptions, train

TINY = Path(__file__).with_name("tiny.yaml")
EVERY = ["train.eval_every=4", "train.checkpoint_every=8", "train.log_every=4"]


def run(out: Path, steps: int, mode: str = "min", overrides=(), **options):
    program = lossgraph.compile(lossgraph.load(TINY, overrides=[*EVERY, f"train.keep_best={{metric: error, mode: {mode}}}", *overrides]))
    spec = program.spec
    dataset = open_dataset(spec.dataset, spec.kinds, spec.train.image_size, seed=0, base_dir=TINY.parent)
    options.setdefault("progress", False)
    return train(program, dataset, RunOptions(out_dir=out, device="cpu", steps=steps, **options))


def errors(out: Path) -> dict[int, float]:
    with open(out / "eval.csv", newline="") as handle:
        return {int(row["step"]): float(row["error"]) for row in csv.DictReader(handle)}


def best_of(values: dict[int, float], mode: str) -> int:
    pick = min if mode == "min" else max
    target = pick(values.values())
    return min(step for step, value in values.items() if value == target)  # the first reaching it


@pytest.mark.parametrize("mode", ["min", "max"])
def test_the_best_evaluation_is_kept_beside_the_latest_and_named_in_the_summary(tmp_path, mode, capsys):
    summary = run(tmp_path, 24, mode)
    values = errors(tmp_path)
    step = best_of(values, mode)
    folder = tmp_path / "checkpoints" / f"best_step_{step:06d}"
    assert best_checkpoints(tmp_path / "checkpoints")[-1] == folder
    state = read_checkpoint_state(folder)
    assert state["best"] == {"metric": "error", "mode": mode, "step": step, "value": pytest.approx(values[step])}
    record = json.loads((tmp_path / "summary.json").read_text())["best"]
    assert record == {"metric": "error", "mode": mode, "step": step, "value": pytest.approx(values[step]),
                      "checkpoint": f"checkpoints/best_step_{step:06d}"}
    assert summary.best == record
    assert f"best error ({mode}) {values[step]:.4f} at step {step}" in capsys.readouterr().out


def test_the_best_networks_are_those_its_evaluation_saw(tmp_path):
    run(tmp_path, 8, "min", overrides=["train.checkpoint_every=4"])
    # tiny's G learns to copy x, so its error against y grows: the min is the first evaluation,
    # where a step checkpoint is too
    assert best_checkpoints(tmp_path / "checkpoints")[-1].name == "best_step_000004"
    best = load_file(str(tmp_path / "checkpoints" / "best_step_000004" / "nets.safetensors"))
    step = load_file(str(tmp_path / "checkpoints" / "step_000004" / "nets.safetensors"))
    assert best.keys() == step.keys() and all(torch.equal(best[key], step[key]) for key in best)


def test_rotation_never_deletes_the_best_and_old_bests_go_when_nothing_needs_them(tmp_path):
    run(tmp_path, 40, "min", keep_checkpoints=1)
    folder = tmp_path / "checkpoints"
    assert [path.name for path in list_checkpoints(folder)] == ["step_000040"]
    # the min error is at step 4 (the error grows), long rotated out of the step checkpoints: it stays, alone
    assert [path.name for path in best_checkpoints(folder)] == ["best_step_000004"]
    assert read_checkpoint_state(folder / "step_000040")["best"]["step"] == 4


def test_resume_restores_the_best_so_far(tmp_path):
    whole = run(tmp_path / "whole", 24, "min")
    run(tmp_path / "parts", 12, "min")
    resumed = run(tmp_path / "parts", 24, "min", resume=True)
    # the min error is at step 4, before the resume: forgetting it would keep a later, higher one
    assert whole.best["step"] == resumed.best["step"] == 4
    assert resumed.best["value"] == whole.best["value"]
    assert errors(tmp_path / "whole") == errors(tmp_path / "parts")


def test_a_best_written_after_the_last_checkpoint_is_removed_on_resume(tmp_path, monkeypatch):
    original = loop.Loop.train

    def crash_at_22(self, step):
        if step == 22:
            raise RuntimeError("simulated crash")
        return original(self, step)

    monkeypatch.setattr(loop.Loop, "train", crash_at_22)
    with pytest.raises(RuntimeError):
        run(tmp_path, 24, "max")  # the error grows: every evaluation is the best so far
    monkeypatch.undo()
    folder = tmp_path / "checkpoints"
    assert [path.name for path in list_checkpoints(folder)][-1] == "step_000016"
    # kept: the best each step checkpoint (8, 16) would restore, and the current one (20)
    assert [path.name for path in best_checkpoints(folder)] == ["best_step_000008", "best_step_000016", "best_step_000020"]
    assert read_checkpoint_state(folder / "step_000016")["best"]["step"] == 16
    original_restore = BestCheckpoint.restore
    after_restore = []

    def restore(self, recorded, step):
        notes = original_restore(self, recorded, step)
        after_restore.append(([path.name for path in best_checkpoints(folder)], self.current and self.current.step))
        return notes

    monkeypatch.setattr(BestCheckpoint, "restore", restore)
    resumed = run(tmp_path, 24, "max", resume=True)
    # resumed from step 16: the interrupted run's best of step 20 went, the best of step 16 is current
    assert after_restore[0] == (["best_step_000008", "best_step_000016"], 16)
    assert resumed.best["step"] == 24
    uninterrupted = run(tmp_path / "whole", 24, "max")
    assert resumed.best["value"] == uninterrupted.best["value"]


def test_restore_keeps_the_recorded_best_and_removes_later_ones(tmp_path):
    from lossgraph.train.run_state import RunNetworks

    folder = tmp_path / "checkpoints"
    (folder / "step_000008").mkdir(parents=True)  # a step checkpoint of step 8: it needs the best of step 4
    (folder / "step_000008" / "nets.safetensors").touch()
    (folder / "step_000008" / "state.pt").touch()
    net = torch.nn.Linear(2, 2)
    best = BestCheckpoint(folder, "error", "min", RunNetworks({"G": net}, {}, {"G": net}), "tiny")
    assert best.consider(4, {"error": 0.5}) and not best.consider(8, {"error": 0.7})
    assert best.consider(12, {"error": 0.25}) and not best.consider(16, {"error": float("nan")})
    assert [path.name for path in best_checkpoints(folder)] == ["best_step_000004", "best_step_000012"]
    notes = best.restore({"metric": "error", "mode": "min", "step": 4, "value": 0.5}, step=8)
    assert [path.name for path in best_checkpoints(folder)] == ["best_step_000004"]
    assert best.current.step == 4 and "best error so far 0.5 at step 4" in notes[0]
    other = best.restore({"metric": "fid", "mode": "min", "step": 4, "value": 1.0}, step=8)
    assert best.current is None and "starting afresh" in other[0]


def test_translate_applies_the_best_latest_or_a_step(tmp_path, capsys):
    from PIL import Image

    run(tmp_path / "run", 16, "min")
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(images / "a.png")
    outputs = {}
    for name in ("best", "latest", "8"):
        assert main(["translate", str(tmp_path / "run"), "--input", str(images), "--output", str(tmp_path / name),
                     "--checkpoint", name]) == 0
        outputs[name] = capsys.readouterr().out
    assert "best_step_000004" in outputs["best"] and "step_000016" in outputs["latest"] and "step_000008" in outputs["8"]
    assert main(["translate", str(tmp_path / "run"), "--input", str(images), "--output", str(tmp_path / "x"),
                 "--checkpoint", "5"]) == 2
    assert "no checkpoint of step 5 in" in capsys.readouterr().err


def test_a_run_without_keep_best_has_no_best_checkpoint(tmp_path):
    program = lossgraph.compile(lossgraph.load(TINY, overrides=EVERY))
    spec = program.spec
    dataset = open_dataset(spec.dataset, spec.kinds, spec.train.image_size, seed=0, base_dir=TINY.parent)
    summary = train(program, dataset, RunOptions(out_dir=tmp_path, device="cpu", steps=8, progress=False))
    assert summary.best is None and not best_checkpoints(tmp_path / "checkpoints")
    assert "best" not in json.loads((tmp_path / "summary.json").read_text())
    with pytest.raises(LossgraphError, match=r"no best checkpoint in .*train.keep_best.*it has step_000008"):
        named_checkpoint(tmp_path / "checkpoints", "best")
    assert "keep_best" not in (tmp_path / "spec.yaml").read_text()  # unset settings stay out of spec.yaml
