"""Training learns on real photographs: the builtin `photos` dataset's grade task against the
do-nothing baseline (`identity`: the input itself judged against the ground truth).

pix2pix runs in the default test run (about 10 s on 2 idle cores, 150 steps of 16x16 crops);
CycleGAN, unpaired, is slow (`pytest -m slow`).
"""

import csv
from pathlib import Path

import pytest

from lossgraph.cli import main

HERE = Path(__file__).parent
QUIET = ["--no-progress", "--no-tensorboard"]


def eval_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "eval.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_pix2pix_on_photographs_beats_doing_nothing(tmp_path):
    out = tmp_path / "run"
    assert main(["run", str(HERE / "photos-pix2pix.yaml"), "--out", str(out), *QUIET]) == 0
    rows = eval_rows(out)
    errors = [float(row["error"]) for row in rows]
    baseline = float(rows[-1]["identity"])
    assert rows[-1]["step"] == "150"
    assert errors[-1] < 0.75 * baseline, (errors, baseline)
    assert errors[-1] < errors[0], "the error falls during training"


@pytest.mark.slow
def test_cyclegan_on_unpaired_photographs_beats_doing_nothing(tmp_path):
    out = tmp_path / "run"
    assert main(["run", str(HERE / "photos-cyclegan.yaml"), "--out", str(out), *QUIET]) == 0
    rows = eval_rows(out)
    last = rows[-1]
    assert last["step"] == "600"
    for direction in ("XY", "YX"):
        error, baseline = float(last[f"error_{direction}"]), float(last[f"identity_{direction}"])
        assert error < 0.75 * baseline, (direction, error, baseline)
