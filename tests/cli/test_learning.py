"""Training learns. A short pix2pix run is in the default test run (CI); the README's main command,
`lossgraph run specs/discogan.yaml`, is slow (about 75 s on 2 cores): `pytest -m slow`.
"""

import csv

import pytest

from lossgraph.cli import main
from lossgraph.train.accelerate import native_cpu_bf16


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


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_pix2pix_learns_in_a_short_run(tmp_path, precision):
    """In the default run, so that CI checks that training learns: 250 steps of pix2pix (about 10 s
    on 2 cores) take the held-out L1 error from the do-nothing baseline's ~1.5 to below a tenth of it.
    Also under `--precision bf16`, the CPU's fast path where it has native bf16 (the README's table)."""
    if precision == "bf16" and not native_cpu_bf16():
        pytest.skip("this CPU has no native bf16: emulated, it is slow, and the fast path is what is checked")
    out = tmp_path / "run"
    assert main(["run", "pix2pix", "--steps", "250", "--out", str(out), "--no-progress", "--no-tensorboard",
                 "--precision", precision,
                 "train.eval_every=50", "train.sample_every=1000", "train.checkpoint_every=1000"]) == 0
    rows = list(csv.DictReader(open(out / "eval.csv")))
    errors = [float(row["error"]) for row in rows]
    baseline = float(rows[-1]["identity"])
    assert rows[-1]["step"] == "250"
    assert errors[-1] < 0.1 * baseline, (errors, baseline)
    assert errors[-1] < errors[0], "the error falls during training"


@pytest.mark.slow
def test_default_munit_run_translates_and_its_styles_vary(tmp_path):
    """MUNIT's spec as shipped (about 11 minutes on 2 busy cores): the judge puts translations in
    their target domain where the untranslated inputs never are, the example-guided translation
    redraws the true target far better than the input does, and different styles give different
    images (in the judge's features and in pixels), where a do-nothing translation gives none."""
    out = tmp_path / "run"
    assert main(["run", "specs/munit.yaml", "--out", str(out), "--no-progress", "--no-tensorboard"]) == 0
    last = list(csv.DictReader(open(out / "eval.csv")))[-1]
    assert last["step"] == "1000" and float(last["judge_accuracy"]) > 0.95
    for forward, backward in (("12", "21"), ("21", "12")):
        assert float(last[f"accuracy_{forward}"]) > 0.9 > 0.1 > float(last[f"accuracy_identity_{forward}"])
        assert float(last[f"error_guided_{forward}"]) < 0.2 * float(last[f"error_identity_{forward}"])
        assert float(last[f"diversity_{forward}"]) > 0 and float(last[f"spread_{forward}"]) > 0.01


@pytest.mark.slow
def test_lptn_with_the_readme_overrides_learns_the_grade(tmp_path):
    """The README's LPTN row (about 5 minutes on 2 busy cores): with a pixel weight of 1 and rates of
    1e-3 (the code's 1000 and 1e-4 hold the output at the input for a run this short), the held-out
    error against the graded ground truth ends below the input's own and falls during training."""
    out = tmp_path / "run"
    assert main(["run", "specs/lptn.yaml", "--out", str(out), "--no-progress", "--no-tensorboard",
                 "players.G.minimize.pix.weight=1", "optim.G.adam.lr=1e-3", "optim.D.adam.lr=1e-3",
                 "train.steps=2000", "train.eval_every=250"]) == 0
    rows = list(csv.DictReader(open(out / "eval.csv")))
    errors = [float(row["error"]) for row in rows]
    baseline = float(rows[-1]["identity"])
    assert rows[-1]["step"] == "2000"
    assert errors[-1] < 0.8 * baseline, (errors, baseline)
    assert errors[-1] < errors[0], "the error falls during training"


@pytest.mark.slow
def test_tunit_translates_into_the_references_domain_and_clusters_them(tmp_path):
    """The README's TUNIT row (about 6 minutes on 2 busy cores), with IIC's weight on the cluster
    sizes at 1.75 (`mi(p, p_tf, 1.75)`; at the code's 1 the guide stops at two groups of two styles):
    after the warm-up G puts translations in their reference's true domain (a judge fitted to the
    true domains) where the untranslated inputs never are, and C's pseudo-domains match the true
    domains far better than an untrained C's (0.25 to 0.50 over seeds)."""
    out = tmp_path / "run"
    assert main(["run", "specs/tunit.yaml", "--out", str(out), "--no-progress", "--no-tensorboard",
                 "players.C.minimize.mi.expr=mi(p, p_tf, 1.75)", "train.eval_every=250"]) == 0
    rows = list(csv.DictReader(open(out / "eval.csv")))
    last = rows[-1]
    assert last["step"] == "2000"
    assert float(last["translation"]) > 0.9 > 0.1 > float(last["translation_identity"])
    assert float(last["clusters"]) >= 0.7, [row["clusters"] for row in rows]
    assert float(rows[1]["translation"]) < 0.5, "before G trains (the warm-up) the judge does not see the reference's domain"
