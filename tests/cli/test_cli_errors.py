"""`lossgraph check` on bad input: a located message on stderr, exit status 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lossgraph.cli import main

ROOT = Path(__file__).resolve().parents[2]

BAD = """\
name: bad
data: {x: image, y: image}
networks:
  G_XY: {arch: unet}
  D_Y: {arch: patchgan}
players:
  D:
    networks: [D_Y]
    minimize:
      adv: E[D_Y(y)] - E[D_Y(G_XZ(x))]
  G:
    networks: [G_XY]
    minimize:
      adv: -E[D_Y(G_XY(x))]
shedule: [D, G]
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """`python -m lossgraph check` on a bad spec and on a missing file, started side by side
    (each process spends most of its time importing torch)."""
    folder = tmp_path_factory.mktemp("cli")
    (folder / "bad.yaml").write_text(BAD)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "lossgraph", "check", name],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name in ("bad.yaml", "no-such-spec.yaml")
    }
    results = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return results


def test_bad_spec_exits_2_with_located_message(runs):
    result = runs["bad.yaml"]
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.stderr.startswith("error: ")
    assert "bad.yaml:15:1: shedule: unknown key 'shedule' (did you mean 'schedule'?)" in result.stderr
    assert "   15 | shedule: [D, G]\n      | ^~~~~~~\n" in result.stderr


def test_formula_error_through_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text(BAD.replace("shedule", "schedule"))
    assert main(["check", "bad.yaml"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    col = "      adv: E[D_Y(y)] - E[D_Y(G_XZ(x))]".index("G_XZ") + 1
    assert f"bad.yaml:10:{col}: players.D.minimize.adv: unknown network 'G_XZ' (did you mean 'G_XY'?)" in err
    assert "   10 |       adv: E[D_Y(y)] - E[D_Y(G_XZ(x))]\n      | " + " " * (col - 1) + "^~~~\n" in err


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "bad.yaml:1:1: the spec file is empty"),
        ("name: [oops\n", "bad.yaml:1:7: invalid YAML"),
        ("name: t\x00\n", "bad.yaml:1:8: invalid YAML: character U+0000 is not allowed"),
        ('name: !!python/object/apply:os.system ["echo hi"]\n', "bad.yaml:1:7: YAML tag"),
        ("name: " + "[" * 1000 + "]" * 1000 + "\n", "bad.yaml:1:"),
        (BAD.replace("shedule", "schedule").replace("players:", "let: {a: b, b: a}\nplayers:"), "bad.yaml:6:16: let.b: let binding 'a' refers to itself: a -> b -> a"),
    ],
    ids=["empty", "syntax", "nul", "python tag", "deep", "let cycle"],
)
def test_hostile_files_exit_2_without_traceback(tmp_path, monkeypatch, capsys, text, expected):
    # in-process (`main` is what `python -m lossgraph` runs), to keep the suite fast
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text(text)
    assert main(["check", "bad.yaml"]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert err.startswith("error: ") and expected in err
    assert "hi" not in out  # the tag did not run `echo hi`


def test_missing_file_exits_2_without_traceback(runs):
    result = runs["no-such-spec.yaml"]
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error: no spec file 'no-such-spec.yaml' and no built-in spec of that name" in result.stderr
    assert "'cyclegan', 'cyclegan-authors', 'discogan'" in result.stderr  # the built-in specs, in order


def test_misspelled_builtin_name_gets_a_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["check", "discogn"]) == 2
    _, err = capsys.readouterr()
    assert "error: no spec file 'discogn' and no built-in spec of that name (did you mean 'discogan'?)" in err


@pytest.mark.parametrize("overrides, expected", [
    (["networks.T.classes=5"],
     "pixelda.yaml:36:36: players.G.minimize.task.expr: ce: T(fake) gives 5 class logits, but c_s is a label of 3 classes"),
    (["players.G.minimize.adv=-E[log(D(fake))]", "networks.D.output=raw"],
     "<override 1>:1:27: players.G.minimize.adv: log needs a positive argument, but D(fake) can be any real number"),
])
def test_check_refuses_class_counts_and_domains(capsys, overrides, expected):
    assert main(["check", "pixelda", *overrides]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_kl_takes_a_mean_and_log_variance_of_one_shape(capsys):
    """A scalar log-variance would broadcast silently against the (N, 8) mean."""
    assert main(["check", "bicyclegan", "players.G.minimize.kl.expr=E[kl(E.mu(y), E[E.logvar(y)])]"]) == 2
    err = capsys.readouterr().err
    assert "kl(mu, logvar) takes a mean and a log-variance of one shape; E.mu(y) has shape (2, 8) and E[E.logvar(y)] ()" in err


@pytest.mark.parametrize("op, right", [("-", "z"), ("+", "z"), ("*", "z"), ("/", "(1 + z^2)")])
def test_arithmetic_on_values_that_do_not_broadcast_names_both_shapes(capsys, op, right):
    """An image less a latent code: torch's own words ('a dimension of length 8 at -1') named
    neither side."""
    assert main(["check", "bicyclegan", f"players.G.minimize.latent.expr=E[l1(G(x, z) {op} {right})]"]) == 2
    err = capsys.readouterr().err
    assert (f"<override 1>:1:37: players.G.minimize.latent.expr: the two sides of '{op}' do not fit: "
            "shapes (2, 3, 32, 32) and (2, 8) do not broadcast") in err, err
    assert "Traceback" not in err and "at -1" not in err


def test_a_network_that_cannot_be_built_is_reported_once(capsys):
    """MUNIT's discriminators are called on several images; each call used to report the same
    failed build again."""
    assert main(["check", "munit", "train.image_size=8"]) == 2
    err = capsys.readouterr().err
    assert "2 problems:" in err
    for name, line in (("D1", 37), ("D2", 38)):
        message = f"munit.yaml:{line}:7: networks.{name}: cannot build network '{name}': scales=2 and layers=3 need image_size divisible by 2**4 = 16"
        assert err.count(message) == 1, err


def test_a_formula_cut_at_a_comma_by_a_yaml_flow_mapping_says_to_quote_it(tmp_path, monkeypatch, capsys):
    # YAML ends `{err: mean(l1(fake_y, y))}` at the comma (the rest, `y))`, becomes a key whose null
    # a derived spec drops): the formula arrives as `mean(l1(fake_y`, unclosed
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("extends: discogan\nevaluate: {err: mean(l1(fake_y, y))}\n")
    assert main(["check", "mine.yaml"]) == 2
    err = capsys.readouterr().err
    assert "mine.yaml:2:24: evaluate.err: syntax error: '(' was never closed" in err
    assert 'inside a YAML { } or [ ], a comma ends an unquoted value: quote the formula, "f(a, b)"' in err
    # other syntax errors get no such hint
    (tmp_path / "mine.yaml").write_text("extends: discogan\nevaluate: {err: l1(fake_y - y) +}\n")
    assert main(["check", "mine.yaml"]) == 2
    err = capsys.readouterr().err
    assert "evaluate.err: syntax error" in err and "quote the formula" not in err
