"""`fid`, `kid` and `diversity` in a run (lossgraph/train/metrics/): over the whole held-out set,
into eval.csv, TensorBoard and summary.json, on a judge's features; the numbers against FID and KID
computed here from the checkpoint; the errors before training."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy
import pytest
import scipy.linalg
import torch

import lossgraph
from lossgraph.cli import main
from lossgraph.data import open_dataset
from lossgraph.language.errors import LossgraphError
from lossgraph.train.checkpoint import latest_checkpoint, load_checkpoint
from lossgraph.train.metrics.inception import FIDInception
from lossgraph.train.run import RunOptions, train

SPEC = """\
name: judged
data: {x: image, y: image, c: label(3)}
random: {z: normal(2)}
dataset: {builtin: shapes, pairing: paired, size: 32, test_size: 6, labels: {c: shape(y)}}
networks:
  G: {arch: unet, width: 4, depth: 1, norm: none}
  D: {arch: patchgan, width: 4, layers: 1, norm: none}
  C: {arch: classifier, classes: 3, width: 4, depth: 2, norm: none}
judges:
  C: {minimize: "E[ce(C(y), c)]", steps: 20}
let:
  fake_y: G(x)
players:
  D: {networks: [D], minimize: {adv: "E[(D(y) - 1)^2] + E[D(fake_y)^2]"}}
  G: {networks: [G], minimize: {adv: "E[(D(fake_y) - 1)^2]", l1: "E[l1(fake_y - y)]"}}
train: {steps: 6, batch_size: 2, image_size: 8, log_every: 3, eval_every: 3, checkpoint_every: 3, sample_every: 100}
evaluate:
  fid_XY: fid(fake_y, y)
  error: E[l1(fake_y - y)]
  kid_XY: kid(fake_y, y)
"""


def write(tmp_path: Path, text: str = SPEC) -> Path:
    path = tmp_path / "judged.yaml"
    path.write_text(text)
    return path


def run(spec_path: Path, out: Path, overrides=(), **options):
    program = lossgraph.compile(lossgraph.load(spec_path, overrides=list(overrides)))
    spec = program.spec
    dataset = open_dataset(spec.dataset, spec.kinds, spec.train.image_size, seed=0, base_dir=spec_path.parent)
    options.setdefault("progress", False)
    return program, dataset, train(program, dataset, RunOptions(out_dir=out, device="cpu", **options))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def fid_by_hand(real: numpy.ndarray, generated: numpy.ndarray) -> float:
    mean = real.mean(0) - generated.mean(0)
    cov_real, cov_generated = numpy.cov(real, rowvar=False), numpy.cov(generated, rowvar=False)
    return float(mean @ mean + numpy.trace(cov_real + cov_generated - 2 * scipy.linalg.sqrtm(cov_real @ cov_generated).real))


def mmd_by_hand(real: numpy.ndarray, generated: numpy.ndarray) -> float:
    count, size = real.shape
    kernel = lambda a, b: (a @ b.T / size + 1) ** 3  # noqa: E731
    off = 1 - numpy.eye(count)
    return float((kernel(real, real) * off).sum() / (count * (count - 1)) + (kernel(generated, generated) * off).sum()
                 / (count * (count - 1)) - 2 * kernel(real, generated).mean())


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """One run of the judged spec: eval at steps 3 and 6 on the 6 held-out samples, 4 per batch."""
    folder = tmp_path_factory.mktemp("judged")
    program, dataset, summary = run(write(folder), folder / "run", eval_count=4)
    return folder / "run", program, dataset, summary


def test_eval_csv_has_the_distribution_metrics_in_evaluate_order(judged):
    out, _, _, summary = judged
    rows = read_csv(out / "eval.csv")
    assert list(rows[0]) == ["step", "fid_XY", "error", "kid_XY"]
    assert [int(row["step"]) for row in rows] == [3, 6]
    assert all(float(row["fid_XY"]) >= -1e-9 for row in rows)
    assert summary.metrics["fid_XY"] == pytest.approx(float(rows[-1]["fid_XY"]))


def test_the_numbers_are_fid_and_kid_of_the_judges_features_over_the_whole_held_out_set(judged):
    out, program, dataset, summary = judged
    nets = program.build_networks(seed=0)
    load_checkpoint(latest_checkpoint(out / "checkpoints"), nets)
    held_out = dataset.held_out(100)
    assert held_out["x"].shape[0] == 6  # more than the 4 the batch metrics see
    judge, generator = nets["C"].eval(), nets["G"].eval()
    with torch.no_grad():
        real = judge.features(judge.combine(held_out["y"])).double().numpy()
        generated = judge.features(judge.combine(generator(held_out["x"]))).double().numpy()
    assert summary.metrics["fid_XY"] == pytest.approx(fid_by_hand(real, generated), rel=1e-5, abs=1e-9)
    assert summary.metrics["kid_XY"] == pytest.approx(mmd_by_hand(real, generated), rel=1e-5, abs=1e-9)


def test_summary_json_names_the_feature_network(judged):
    out, _, _, summary = judged
    record = json.loads((out / "summary.json").read_text())
    assert record["step"] == 6 and record["metrics"]["fid_XY"] == pytest.approx(summary.metrics["fid_XY"])
    features = record["features"]
    assert features["network"] == "judge C" and features["metrics"] == ["fid_XY", "kid_XY"]
    assert features["held_out_samples"] == 6 and features["features_per_image"] == 8  # the classifier's 2 * width
    assert "last linear layer" in features["description"]


def test_tensorboard_has_the_scalars_and_the_feature_network(judged):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _, _, _ = judged
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    rows = read_csv(out / "eval.csv")
    for name in ("fid_XY", "kid_XY"):
        logged = {event.step: event.value for event in events.Scalars(f"eval/{name}")}
        assert logged == pytest.approx({int(row["step"]): float(row[name]) for row in rows})
    text = events.Tensors("eval/features/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "judge C's features" in text and "6 held-out samples" in text


def test_real_features_are_computed_once_a_run(tmp_path, monkeypatch):
    from lossgraph.train.metrics import features

    calls = []
    original = features.JudgeFeatures.features
    monkeypatch.setattr(features.JudgeFeatures, "features", lambda self, images: calls.append(images.shape[0]) or original(self, images))
    run(write(tmp_path), tmp_path / "run", eval_count=4)
    # two evaluations of batches of 4 and 2: generated every time, real (y) only at the first
    assert calls == [4, 4, 2, 2, 4, 2]


def test_diversity_of_outputs_under_fresh_draws(tmp_path):
    text = SPEC.replace("fake_y: G(x)", "fake_y: G(x, z)").replace("  kid_XY: kid(fake_y, y)\n", "  spread: diversity(fake_y, 3)\n")
    _, _, first = run(write(tmp_path, text), tmp_path / "one")
    _, _, again = run(write(tmp_path, text), tmp_path / "two")
    assert 0 < first.metrics["spread"] <= 4
    assert first.metrics == again.metrics  # evaluation draws under its own seed
    assert list(read_csv(tmp_path / "one" / "eval.csv")[0]) == ["step", "fid_XY", "error", "spread"]


def test_a_held_out_set_of_one_sample_is_an_error_before_training(tmp_path):
    with pytest.raises(LossgraphError, match="fid_XY, kid_XY: compare sets of images, but the held-out set has 1 sample"):
        run(write(tmp_path, SPEC.replace("test_size: 6", "test_size: 1")), tmp_path / "run")


def test_a_missing_weights_file_stops_the_run_before_anything_is_written(tmp_path, capsys):
    spec = write(tmp_path)
    code = main(["run", str(spec), "--out", str(tmp_path / "run"), "--fid-weights", str(tmp_path / "none.pth"), "--no-progress"])
    assert code == 2
    assert "train.fid_weights: the FID Inception weights file" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    # a path in the spec is relative to the spec's folder, as dataset.folder is
    elsewhere = tmp_path / "specs"
    elsewhere.mkdir()
    relative = write(elsewhere, SPEC.replace("train: {", "train: {fid_weights: weights/none.pth, "))
    assert main(["run", str(relative), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert f"{elsewhere.resolve() / 'weights' / 'none.pth'} does not exist" in capsys.readouterr().err


def test_without_torchmetrics_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchmetrics", None)  # import torchmetrics now fails
    with pytest.raises(LossgraphError, match=r"pip install 'lossgraph\[metrics\]'"):
        run(write(tmp_path), tmp_path / "run")


def test_check_names_the_feature_network(tmp_path, capsys, monkeypatch):
    spec = write(tmp_path)
    assert main(["check", str(spec)]) == 0
    assert "fid_XY, kid_XY: over the whole held-out set, on the features of judge C" in capsys.readouterr().out
    assert main(["check", str(spec), "train.features=inception"]) == 2
    assert "inception needs the FID Inception weights file" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(spec), "train.features=inception", "--fid-weights", "w.pth"]) == 0
    assert f"the FID Inception network ({tmp_path.resolve() / 'w.pth'})" in capsys.readouterr().out


@pytest.mark.slow
def test_a_run_on_inception_features_from_a_weights_file(tmp_path):
    # random tensors in the weights file's layout stand for the real file, which is never downloaded
    weights = tmp_path / "pt_inception.pth"
    torch.manual_seed(0)
    network = FIDInception()
    torch.save({key: value for key, value in network.state_dict().items() if not key.endswith("num_batches_tracked")}, weights)
    text = SPEC.replace("test_size: 6", "test_size: 3").replace("steps: 6,", "steps: 3,")
    _, _, summary = run(write(tmp_path, text), tmp_path / "run", overrides=[f"train.fid_weights={weights}"])
    record = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert record["features"]["network"] == "inception" and record["features"]["features_per_image"] == 2048
    assert "not the standard file" in record["features"]["description"]
    assert summary.metrics["fid_XY"] >= -1e-6 and numpy.isfinite(summary.metrics["kid_XY"])
    assert f"fid_weights: {weights}" in (tmp_path / "run" / "spec.yaml").read_text()
