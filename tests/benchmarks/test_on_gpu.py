"""The prepared GPU run (`python -m benchmarks.on_gpu`): its plan, and how it keeps what each part
measured when time runs out. The parts here are small stand-in commands; on a GPU they are the
GPU tests and the benchmark."""

from __future__ import annotations

import sys
import time

import pytest

from benchmarks import bench, on_gpu
from benchmarks.authors import AUTHORS
from benchmarks.baselines import BASELINES

PARTS = ["tests", "bench-128", "bench-256", "authors", "bench-128-more"]


def methods_of(part: on_gpu.Part | tuple[str, ...]) -> list[str]:
    command = part.command if isinstance(part, on_gpu.Part) else part
    return command[command.index("--methods") + 1].split(",")


def test_plan_measures_the_survey_at_both_sizes_then_the_rest():
    parts = {part.name: part for part in on_gpu.plan(PARTS, None, "cuda", workers=8)}
    assert list(parts) == PARTS  # the GPU tests first: a failure there matters more than any number
    assert parts["tests"].command[1:5] == ("-m", "pytest", "-m", "gpu")
    assert methods_of(parts["bench-128"]) == methods_of(parts["bench-256"]) == list(on_gpu.SURVEY)
    assert len(on_gpu.SURVEY) == 9 and set(on_gpu.SURVEY) | set(methods_of(parts["bench-128-more"])) == set(BASELINES)
    assert methods_of(parts["authors"]) == list(AUTHORS)
    for name, size, batch in (("bench-128", "128", "16"), ("bench-256", "256", "1")):
        command = parts[name].command
        assert command[command.index("--image-size") + 1] == size and command[command.index("--batch-size") + 1] == batch
    assert sum(part.share for part in parts.values()) == pytest.approx(1.0)
    for part in parts.values():
        if part.name == "tests":
            continue
        # each benchmark command is one bench accepts (on the CPU here: the same arguments but the device)
        for command in (part.command, *part.precompile):
            assert command[1:3] == ("-m", "benchmarks.bench")
            args = bench.parse_args([arg if arg != "cuda" else "cpu" for arg in command[3:]])
            assert args.keep_caches and args.methods
        # each method compiled once, alone, before the timed run
        assert [methods_of(command) for command in part.precompile] == [[m] for m in methods_of(part)]


def test_plan_narrowed_to_methods_and_parts():
    parts = on_gpu.plan(["bench-256", "authors", "bench-128-more"], ["cyclegan", "tunit"], "cuda", workers=1)
    # the authors' recipes are not asked for; one worker compiles nothing ahead
    assert [(part.name, methods_of(part), part.precompile) for part in parts] == [
        ("bench-256", ["cyclegan"], ()), ("bench-128-more", ["tunit"], ())]


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def test_tables_are_the_markdown_the_benchmark_printed():
    printed = "lossgraph 0.1.0\n\n### m\n\n| a | b |\n|---|---|\n\nlossgraph compiled / lossgraph eager: 0.9\nspec -> program\n\n"
    # blank lines kept where they end a table (a line of text right under one would join it)
    assert on_gpu.tables(printed) == ["### m", "", "| a | b |", "|---|---|", "", "lossgraph compiled / lossgraph eager: 0.9"]


def test_a_run_keeps_what_each_part_printed_and_says_how_it_ended(tmp_path):
    parts = [
        on_gpu.Part("fast", python("print('### fast'); print('| a | 1 |'); print('noise')"), 0.1,
                    precompile=(python("print('| from the compile |')"), python("import sys; sys.exit(5)"))),
        on_gpu.Part("broken", python("print('| b | 2 |'); raise SystemExit(3)"), 0.1),
        # prints a row, then would run for a minute: stopped when its share of the budget is spent
        on_gpu.Part("slow", python("import time; print('| c | 3 |', flush=True); time.sleep(60)"), 0.7),
        on_gpu.Part("late", python("print('| d | 4 |')"), 0.1),
    ]
    start = time.monotonic()
    outcomes = on_gpu.run(parts, tmp_path, budget=8.0, workers=2, header="machine: test", min_seconds=2.0)
    assert time.monotonic() - start < 20  # the sleeping part was stopped, not waited for

    assert [o.status for o in outcomes] == ["passed", "failed (exit 3)", "out of time", "not started"]
    assert outcomes[0].tables == ["### fast", "| a | 1 |"]
    assert outcomes[2].tables == ["| c | 3 |"]  # printed before it was stopped
    log = (tmp_path / "fast.log").read_text()
    # the compile commands' output is in the log, indented, each with its exit status, and not in the tables
    assert "    | from the compile |" in log and "(exit 5)" in log and "(exit 0)" in log
    summary = (tmp_path / "summary.txt").read_text()
    assert summary.startswith("machine: test\n")
    for row in ("| fast | passed |", "| broken | failed (exit 3) |", "| slow | out of time |", "| late | not started | 0 |"):
        assert row in summary, row
    assert "## slow\n\n| c | 3 |" in summary and "from the compile" not in summary
    assert not list(tmp_path.glob(".*"))  # the compile commands' own files are gone


def test_command_line(tmp_path, capsys):
    assert on_gpu.main(["--out", str(tmp_path), "--parts", "bench-256", "--methods", "cyclegan", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("bench-256 (20% of the budget, compiled first side by side): ")
    assert "--image-size 256 --batch-size 1 --keep-caches --methods cyclegan" in out
    with pytest.raises(SystemExit):
        on_gpu.main(["--out", str(tmp_path), "--parts", "bench-512", "--methods", "cyclegann"])
    assert "unknown part(s) or method(s): bench-512, cyclegann" in capsys.readouterr().err
