"""`check` opens built-in data as `run` will, and both locate the dataset's mistakes in the spec
file (lossgraph/data/located.py): a spec that `check` accepts does not fail at `run` on its data."""

from __future__ import annotations

import pytest

from lossgraph.cli import main

SPEC = """extends: stargan
name: stargan-refs
data: {x: image, c_s: label(4), x_ref: image}
dataset:
  builtin: shapes
PAIRING  styles: {x: 4, x_ref: STYLE}
  labels: {c_s: style(x)}
  held_out:
    c_t: target_style(x)
    y_t: restyle(x, c_t)
"""


def write(tmp_path, pairing="  pairing: unpaired\n", style="4"):
    path = tmp_path / "refs.yaml"
    path.write_text(SPEC.replace("PAIRING", pairing).replace("STYLE", style))
    return path


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_missing_pairing_is_found_and_located(tmp_path, capsys, command):
    path = write(tmp_path, pairing="")
    extra = ["--out", str(tmp_path / "run"), "--no-progress", "--steps", "1"] if command == "run" else []
    assert main([command, str(path), *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "refs.yaml:5:3: dataset: missing key 'pairing'" in err
    assert not (tmp_path / "run").exists()


def test_a_keyed_data_mistake_points_at_its_key(tmp_path, capsys):
    path = write(tmp_path, style="x_ref")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    col = "  styles: {x: 4, x_ref: x_ref}".index("x_ref}") + 1
    assert f"refs.yaml:7:{col}: dataset.styles.x_ref: an image cannot take its own style" in err


def test_good_builtin_data_passes_check(tmp_path, capsys):
    assert main(["check", str(write(tmp_path))]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("ok: ")


def test_a_data_folder_mistake_names_the_flag_not_the_specs_dataset_line(tmp_path, capsys):
    # `--data DIR` replaces the spec's source: a mistake in that folder is the flag's, and the
    # spec's `dataset: {builtin: shapes, ...}` line, which names no folder, is not pointed at
    (tmp_path / "data" / "trainA").mkdir(parents=True)
    (tmp_path / "data" / "trainB").mkdir()
    (tmp_path / "data" / "trainA" / "notes.txt").write_text("not an image")
    out = tmp_path / "run"
    assert main(["run", "discogan", "--data", str(tmp_path / "data"), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"error: --data {tmp_path / 'data'}: dataset folder ")
    assert "trainA holds 0 images (1 other files ignored)" in err
    assert "discogan.yaml" not in err and "builtin: shapes" not in err
    assert not out.exists()


@pytest.mark.parametrize("size", ["0", "-2"])
def test_a_batch_size_below_one_is_refused_not_replaced_by_the_specs(tmp_path, capsys, size):
    out = tmp_path / "run"
    assert main(["run", "discogan", "--batch-size", size, "--steps", "1", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"batch size must be at least 1, got {size}" in err
    assert not out.exists()


def test_a_derived_spec_with_a_folder_is_told_to_drop_its_parents_builtin(tmp_path, capsys):
    # dataset: mappings merge, so the parent's `builtin: photos` stays beside the child's folder
    (tmp_path / "mine.yaml").write_text("extends: pix2pix\ndataset: {folder: facades, layout: aligned}\n")
    assert main(["run", str(tmp_path / "mine.yaml"), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "mine.yaml:2:10: dataset: give either 'builtin' or 'folder', not both" in err
    assert "{builtin: null, folder: PATH}" in err
