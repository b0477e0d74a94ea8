"""Overrides, the resolved spec and resume checks through the command line."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import lossgraph
from lossgraph.cli import main

TINY = Path(__file__).resolve().parents[1] / "run" / "tiny.yaml"


def test_check_show_and_emit_take_overrides(capsys):
    assert main(["check", "cyclegan", "players.G.minimize.cycle.weight=5", "train.steps=2000"]) == 0
    assert "cycle = 5 · (" in capsys.readouterr().out
    assert main(["show", "cyclegan", "--latex", "players.G.minimize.cycle.weight=5"]) == 0
    assert r"5 \cdot (" in capsys.readouterr().out
    # after an option too, and in order: the later one wins
    assert main(["emit", "cyclegan", "players.G.minimize.cycle.weight=3", "players.G.minimize.cycle.weight=4"]) == 0
    assert "cycle = 4 * (" in capsys.readouterr().out


def test_graph_takes_overrides(tmp_path, capsys):
    picture = tmp_path / "cyclegan.svg"
    assert main(["graph", "cyclegan", "players.G.minimize.cycle.weight=7", "-o", str(picture)]) == 0
    assert "cycle ×7" in picture.read_text()
    assert main(["graph", "cyclegan", "-o", str(picture), "players.G.minimize.cycle.weight=abc"]) == 2
    assert "<override 1>:1:33: players.G.minimize.cycle.weight" in capsys.readouterr().err


def test_a_bad_override_exits_2_with_the_argument_and_a_caret(capsys):
    assert main(["check", "cyclegan", "train.steps=10", "players.G.minimize.cycle.weight=abc"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error: <override 2>:1:33: players.G.minimize.cycle.weight: input should be a valid number")
    assert "    1 | players.G.minimize.cycle.weight=abc\n      |                                 ^~~\n" in err


def test_an_unknown_key_in_an_override_gets_a_hint(capsys):
    assert main(["emit", "cyclegan", "train.stesp=5"]) == 2
    assert "error: <override 1>:1:7: train.stesp: unknown key 'stesp' (did you mean 'steps'?)" in capsys.readouterr().err


def test_unknown_options_are_still_refused(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["check", "cyclegan", "train.steps=5", "--bogus"])
    assert caught.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def last_step(out: Path) -> str:
    with open(out / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))[-1]["step"]


def test_run_records_the_resolved_spec_and_resume_checks_it(tmp_path, capsys):
    out = tmp_path / "run"
    common = [str(TINY), "--out", str(out), "--no-progress"]
    assert main(["run", *common, "--steps", "2", "players.G.minimize.l1.weight=4"]) == 0
    spec = lossgraph.load(out / "spec.yaml")
    assert spec.train.steps == 2 and spec.players["G"].terms["l1"].weight == 4.0

    capsys.readouterr()
    assert main(["run", *common, "--steps", "2", "--resume"]) == 2  # the override is missing this time
    err = capsys.readouterr().err
    assert "players.G.minimize.l1.weight: 4.0 -> 10.0" in err and "--allow-spec-change" in err
    assert "Traceback" not in err

    assert main(["run", *common, "--resume", "--steps", "3", "players.G.minimize.l1.weight=4"]) == 0
    assert last_step(out) == "3"
    assert main(["run", *common, "--resume", "--steps", "4", "--allow-spec-change"]) == 0
    assert last_step(out) == "4"
    assert lossgraph.load(out / "spec.yaml").players["G"].terms["l1"].weight == 10.0


def test_run_with_a_data_folder_records_it_absolute(tmp_path, monkeypatch, capsys):
    from PIL import Image

    folder = tmp_path / "data"
    for side in ("trainA", "trainB"):
        (folder / side).mkdir(parents=True)
        for index in range(2):
            Image.new("RGB", (8, 8), (index * 90, 40, 200)).save(folder / side / f"{index}.png")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["run", str(TINY), "--out", str(out), "--no-progress", "--steps", "1", "--data", "data"]) == 0
    dataset = lossgraph.load(out / "spec.yaml").dataset
    assert dataset["folder"] == str(folder.resolve()) and "builtin" not in dataset
