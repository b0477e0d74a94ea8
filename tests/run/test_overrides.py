"""Dotted overrides (`lossgraph.load(path, overrides=[...])`), the resolved spec a run writes
(RUN/spec.yaml) and what `resume` does when the spec changed."""

from __future__ import annotations

from pathlib import Path

import pytest

import lossgraph
from lossgraph.data import open_dataset
from lossgraph.language.errors import LossgraphError, SpecError
from lossgraph.train.resolved import dump, resolved_data
from lossgraph.train.run import RunOptions, train

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(path for path in (ROOT / "specs").glob("*.yaml") if path.stem != "stdlib")
TINY = Path(__file__).with_name("tiny.yaml")


def problems(spec: str, *overrides: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        lossgraph.compile(lossgraph.load(spec, overrides=list(overrides)))
    return caught.value


# ----------------------------------------------------------------------------- applying overrides


def test_overrides_set_values_anywhere_in_the_spec():
    spec = lossgraph.load("cyclegan", overrides=[
        "players.G.minimize.cycle.weight=5",
        "train.steps=2000",
        "optim.D.adam.betas=[0.5,0.99]",
        "players.G.minimize.adv=E[(D_Y(fake_y) - 1)^2]",
        "schedule.0=G",
    ])
    assert spec.players["G"].terms["cycle"].weight == 5.0
    assert spec.players["G"].terms["cycle"].expr.startswith("E[l1(G_YX(fake_y) - x)]")
    assert spec.train.steps == 2000
    assert spec.optim["D"].adam.betas == (0.5, 0.99)
    assert spec.players["G"].terms["adv"].expr == "E[(D_Y(fake_y) - 1)^2]"
    assert spec.schedule == ["G", "G"]
    assert lossgraph.load("cyclegan").train.steps != 2000  # the built-in spec is untouched


def test_weight_of_a_bare_formula_term_makes_it_a_weighted_term():
    base = lossgraph.load("discogan")
    assert base.players["G"].minimize["adv"] == base.players["G"].terms["adv"].expr  # a bare string
    spec = lossgraph.load("discogan", overrides=["players.G.minimize.adv.weight=2"])
    term = spec.players["G"].terms["adv"]
    assert term.weight == 2.0 and term.expr == base.players["G"].terms["adv"].expr
    losses = lossgraph.compile(spec).losses
    assert callable(losses)


def test_sections_left_to_defaults_null_removal_adding_and_order():
    spec = lossgraph.load("discogan", overrides=["optim.D.rmsprop.lr=1.0e-4", "optim.D.adam=null",
                                                 "train.steps=10", "train.steps=20",
                                                 "+players.G.minimize.idt=E[l1(G_XY(y) - y)]",
                                                 "players.G.minimize.recon=null"])
    assert spec.optim["D"].kind == "rmsprop" and spec.optim["D"].rmsprop.lr == 1e-4
    assert spec.train.steps == 20  # the later override wins
    assert list(spec.players["G"].terms) == ["adv", "idt"]
    # the schema's own keys need no `+` even when the spec left them out
    assert lossgraph.load("stargan", overrides=["networks.G.width=8"]).networks["G"].options["width"] == 8


def test_overrides_on_a_derived_spec_and_on_a_loaded_spec():
    derived = lossgraph.load("stargan-wgan-gp", overrides=["train.batch_size=4"])
    assert derived.train.batch_size == 4 and derived.name == "stargan-wgan-gp"
    loaded = lossgraph.load("cyclegan")
    again = lossgraph.load(loaded, overrides=["players.G.minimize.cycle.weight=3"])
    assert again.players["G"].terms["cycle"].weight == 3.0 and again.path == loaded.path
    program = lossgraph.compile("cyclegan", overrides=["players.G.minimize.cycle.weight=3"])
    assert "cycle = 3 * (" in program.code


# ----------------------------------------------------------------------------- located errors


def test_a_bad_value_is_located_in_the_override():
    error = problems("cyclegan", "train.steps=100", "players.G.minimize.cycle.weight=abc")
    assert len(error.problems) == 1  # not also "a term is a formula string or ..." at the file's term
    text = str(error)
    assert text.startswith("<override 2>:1:33: players.G.minimize.cycle.weight: input should be a valid number")
    assert "    1 | players.G.minimize.cycle.weight=abc\n      |                                 ^~~" in text


def test_a_bad_path_is_located_with_a_hint():
    error = problems("cyclegan", "train.stesp=5", "players.G.minimize.cyle.weight=2", "players.Q.networks=[G_XY]",
                     "schedule.7=G", "players.G.minimize.cycle.weight.x=1")
    rendered = [problem.render() for problem in error.problems]
    assert rendered[0].startswith("<override 1>:1:7: train.stesp: unknown key 'stesp' (did you mean 'steps'?)")
    assert "\n    1 | train.stesp=5\n      |       ^~~~~" in rendered[0]
    assert rendered[1].startswith("<override 2>:1:20: players.G.minimize.cyle: no 'cyle' in players.G.minimize "
                                  "(did you mean 'cycle'?)")
    assert rendered[2].startswith("<override 3>:1:9: players.Q: no 'Q' in players")
    assert "start the override with + to add 'Q'" in rendered[2]
    assert rendered[3].startswith("<override 4>:1:10: schedule.7: schedule is a list of 2")
    assert rendered[4].startswith("<override 5>:1:33: players.G.minimize.cycle.weight.x: "
                                  "players.G.minimize.cycle.weight is a number, not a mapping")


@pytest.mark.parametrize("override, expected", [
    ("trainsteps", "<override 1>:1:1: an override is KEY.PATH=VALUE"),
    ("=5", "<override 1>:1:1: an override is KEY.PATH=VALUE"),
    ("train.steps=", "<override 1>:1:12: no value after '=' (write KEY=null to remove a key)"),
    ("train..steps=5", "<override 1>:1:7: empty key in the override's path"),
    ("optim.D.adam.betas=[0.5,", "<override 1>:1:"),
    ("train.steps=0", "<override 1>:1:13: train.steps: input should be greater than 0"),
    ("name=!!python/name:os.system", "<override 1>:1:6: invalid YAML value"),
])
def test_malformed_overrides(override, expected):
    assert str(problems("cyclegan", override)).startswith(expected)


def test_a_formula_error_in_an_override_points_into_it():
    text = str(problems("cyclegan", "players.G.minimize.cycle=E[l1(G_YX(fake_z) - x)]"))
    assert text.startswith("<override 1>:1:36: players.G.minimize.cycle: unknown name 'fake_z' (did you mean 'fake_x'?)")
    assert "    1 | players.G.minimize.cycle=E[l1(G_YX(fake_z) - x)]\n      |" + " " * 36 + "^~~~~~" in text
    text = str(problems("cyclegan", "players.G.minimize.cycle.weight=2", "let.fake_y=G_XY(q)"))
    assert "<override 2>:1:17: let.fake_y: unknown name 'q'" in text
    # a problem where the override wrote nothing points into the file
    text = str(problems("cyclegan", "networks.G_XY=null"))
    assert text.startswith("cyclegan.yaml:28:16: players.G.networks[0]: unknown network 'G_XY'")


# ----------------------------------------------------------------------------- the resolved spec


@pytest.mark.parametrize("path", SPECS, ids=lambda path: path.stem)
def test_resolved_spec_reads_back_to_an_equal_spec(path, tmp_path):
    length = "train.epochs=7" if lossgraph.load(path).train.epochs else "train.steps=7"  # a spec counts one
    spec = lossgraph.load(path, overrides=[length])
    written = tmp_path / "spec.yaml"
    written.write_text(dump(resolved_data(spec), "resolved"))
    again = lossgraph.load(written)
    assert resolved_data(again) == resolved_data(spec)
    assert again.model_dump() == spec.model_dump()
    assert "extends" not in written.read_text()


def tiny(*overrides: str):
    program = lossgraph.compile(lossgraph.load(TINY, overrides=list(overrides)))
    spec = program.spec
    return program, open_dataset(spec.dataset, spec.kinds, spec.train.image_size, seed=0, base_dir=TINY.parent)


def run(out: Path, *overrides: str, **options):
    program, dataset = tiny(*overrides)
    options.setdefault("progress", False)
    return train(program, dataset, RunOptions(out_dir=out, device="cpu", checkpoint_every=0, **options))


def test_a_run_writes_its_resolved_spec(tmp_path):
    run(tmp_path, "players.G.minimize.l1.weight=4", steps=3, batch_size=1)
    spec = lossgraph.load(tmp_path / "spec.yaml")
    assert spec.players["G"].terms["l1"].weight == 4.0
    assert (spec.train.steps, spec.train.batch_size) == (3, 1)  # what the run did, not the spec's default
    expected = resolved_data(lossgraph.load(TINY, overrides=["players.G.minimize.l1.weight=4", "train.steps=3",
                                                             "train.batch_size=1"]))
    assert resolved_data(spec) == expected


def test_resume_refuses_a_changed_spec_unless_allowed(tmp_path, capsys):
    run(tmp_path, steps=3)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    with pytest.raises(LossgraphError) as caught:
        run(tmp_path, "players.G.minimize.l1.weight=5", "optim.D.adam.lr=0.01", steps=3, resume=True)
    message = str(caught.value)
    assert "players.G.minimize.l1.weight: 10.0 -> 5.0" in message
    assert "optim.D.adam.lr: 0.001 -> 0.01" in message
    assert "--allow-spec-change" in message and "train.steps" in message  # says that steps may grow
    after = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert before == after  # nothing touched
    with pytest.raises(LossgraphError, match=r"train.steps: 3 -> 2"):
        run(tmp_path, steps=2, resume=True)  # shrinking is a change too

    capsys.readouterr()
    summary = run(tmp_path, "train.log_every=2", steps=5, resume=True)  # extending the run: no flag needed
    assert summary.step == 5 and summary.steps_run == 2
    err = capsys.readouterr().err
    assert "resuming with a changed spec (a larger train.steps extends the run; intervals do not change training)" in err
    assert "train.steps: 3 -> 5" in err
    assert lossgraph.load(tmp_path / "spec.yaml").train.steps == 5

    summary = run(tmp_path, "players.G.minimize.l1.weight=5", steps=6, resume=True, allow_spec_change=True)
    assert summary.step == 6
    assert "(--allow-spec-change)" in capsys.readouterr().err
    assert lossgraph.load(tmp_path / "spec.yaml").players["G"].terms["l1"].weight == 5.0


def test_resume_of_a_run_without_spec_yaml_writes_one(tmp_path, capsys):
    run(tmp_path, steps=2)
    (tmp_path / "spec.yaml").unlink()
    run(tmp_path, steps=3, resume=True)
    assert "resuming without comparing specs" in capsys.readouterr().err
    assert lossgraph.load(tmp_path / "spec.yaml").train.steps == 3
