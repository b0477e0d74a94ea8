"""Shared test options: `--accept` rewrites golden files instead of comparing against them."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(path for path in (ROOT / "specs").glob("*.yaml") if path.stem != "stdlib")  # stdlib: macros only


def pytest_addoption(parser):
    parser.addoption("--accept", action="store_true", help="regenerate golden files of generated code")


@pytest.fixture
def accept(request):
    return request.config.getoption("--accept")
