"""The shipped specs on photographs (specs/photos/): each derives a translation spec for the
builtin photos dataset's grade task, passes `check`, and measures held-out error and KID beside
their do-nothing baselines. They live in a subfolder, so the tests that enumerate specs/*.yaml
(golden code, graphs, numeric passes) see only the survey's specs; `photos/<name>` names them."""

from pathlib import Path

import pytest

import lossgraph
from lossgraph.cli import main
from tests.conftest import ROOT

FOLDER = ROOT / "specs" / "photos"
PHOTO_SPECS = sorted(FOLDER.glob("*.yaml"))
TRANSLATION = ["bicyclegan", "cyclegan", "discogan", "dualgan", "pix2pix", "unit"]


def test_every_two_domain_translation_spec_has_a_photo_spec():
    assert [path.stem for path in PHOTO_SPECS] == TRANSLATION


@pytest.mark.parametrize("path", PHOTO_SPECS, ids=lambda p: p.stem)
def test_photo_spec_checks_and_measures_error_and_kid_against_doing_nothing(path, capsys):
    assert main(["check", str(path)]) == 0
    assert "ok:" in capsys.readouterr().out
    spec = lossgraph.load(path)
    assert spec.name == f"{path.stem}-photos"
    assert spec.dataset["builtin"] == "photos" and spec.dataset["task"] == "grade"
    metrics = spec.evaluate
    kids = [name for name, formula in metrics.items() if formula.startswith("kid(") and "identity" not in name]
    assert kids, metrics
    for name in kids:  # each KID has its baseline: the input itself against the same real images
        baseline = name.replace("kid", "kid_identity")
        assert metrics[baseline].startswith("kid(") and metrics[baseline].split(", ")[1] == metrics[name].split(", ")[1]
    assert any(name.startswith("identity") for name in metrics)  # the error's do-nothing baseline
    assert list(spec.judges) == ["J"]


def test_a_photo_spec_loads_by_folder_and_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the checkout, as an installed wheel is used
    assert lossgraph.load("photos/pix2pix").name == "pix2pix-photos"
    # the README's path, where no such file exists: the shipped photo spec, never its parent pix2pix
    assert lossgraph.load(Path("specs/photos/pix2pix.yaml")).name == "pix2pix-photos"
    assert lossgraph.load("specs/pix2pix.yaml").name == "pix2pix"
