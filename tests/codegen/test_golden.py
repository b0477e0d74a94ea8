"""Golden files of the generated code for every shipped spec.

A change meant to change nothing must leave these byte-identical. After an intended change,
regenerate with `pytest tests/codegen --accept` and review the diff like any code change.
"""

from pathlib import Path

import pytest

import lossgraph
from tests.conftest import SPECS

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_generated_code_matches_golden(spec, accept):
    code = lossgraph.compile(str(spec)).code
    golden = GOLDEN / f"{spec.stem}.py"
    if accept or not golden.exists():
        golden.write_text(code)
        if not accept:
            pytest.fail(f"wrote missing golden file {golden}; review it and run again")
    assert code == golden.read_text(), f"generated code for {spec.name} changed; review, then pytest --accept"


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_generated_code_is_deterministic(spec):
    assert lossgraph.compile(str(spec)).code == lossgraph.compile(str(spec)).code


def test_generated_lines_point_at_the_spec():
    code = lossgraph.compile("cyclegan").code
    assert "# cyclegan.yaml:24 players.D.minimize.adv_Y" in code


def test_generated_source_is_in_linecache_for_tracebacks():
    import linecache

    program = lossgraph.compile("discogan")
    lines = linecache.getlines("<lossgraph:discogan>")
    assert "".join(lines) == program.code
