"""The language layer's modules: what `lossgraph.language.spec` still offers its importers, and the
reserved names that the compiler, not the language, refuses."""

from __future__ import annotations

import subprocess
import sys

import lossgraph
from lossgraph.cli import main
from lossgraph.language import loading, schema, spec


def test_spec_module_offers_the_models_and_loading():
    for name in ("Spec", "NetworkSpec", "PlayerSpec", "TermSpec", "OptimizerSpec", "AdamSpec", "RMSpropSpec", "SGDSpec",
                 "LRScheduleSpec", "JudgeSpec", "TrainSpec", "model_at"):
        assert getattr(spec, name) is getattr(schema, name)
    for name in ("load", "loads", "resolve", "builtin_specs"):
        assert getattr(spec, name) is getattr(loading, name)
    assert lossgraph.Spec is schema.Spec and lossgraph.load is loading.load and lossgraph.loads is loading.loads
    assert "cyclegan" in spec.builtin_specs()
    assert spec.resolve("cyclegan")[0] == "cyclegan.yaml"


def test_loading_a_spec_imports_neither_the_compiler_nor_torch():
    code = ("import sys, lossgraph; lossgraph.load('cyclegan', ['train.steps=5']); "
            "print(sorted(m for m in sys.modules if m.startswith(('lossgraph.compiler', 'torch'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_check_refuses_a_reserved_name_that_load_accepts(tmp_path, monkeypatch, capsys):
    text = lossgraph.load("cyclegan").source.text.replace("data: {x: image, y: image}", "data: {x: image, y: image, log: image}", 1)
    assert "log: image" in text
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text(text)
    assert "log" in lossgraph.load("mine.yaml").data
    assert main(["check", "mine.yaml"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = text.splitlines().index(next(row for row in text.splitlines() if "log: image" in row)) + 1
    col = next(row for row in text.splitlines() if "log: image" in row).index("log") + 1
    assert err.startswith(f"error: mine.yaml:{line}:{col}: data.log: data name 'log' is reserved (choose another name)")
