"""The default run learns: `lossgraph run specs/discogan.yaml` ends below the do-nothing baseline.

Slow (about 75 s on 2 cores): `pytest -m slow`.
"""

import csv

import pytest

from lossgraph.cli import main


@pytest.mark.slow
def test_default_discogan_run_beats_the_do_nothing_baseline(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "specs/discogan.yaml", "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader(open(out / "eval.csv")))
    first, last = rows[0], rows[-1]
    assert last["step"] == "1500"
    for direction in ("XY", "YX"):
        error, baseline = float(last[f"error_{direction}"]), float(last[f"identity_{direction}"])
        assert error < 0.25 * baseline, (direction, error, baseline)
        assert error < float(first[f"error_{direction}"]), "the error falls during training"
