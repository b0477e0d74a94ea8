"""Shared test options: `--accept` rewrites golden files instead of comparing against them."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(path for path in (ROOT / "specs").glob("*.yaml") if path.stem != "stdlib")  # stdlib: macros only
# The authors' recipes (specs/*-authors.yaml) train 256x256 images through the published networks
# (54 million parameters in pix2pix's U-Net): one of their steps takes seconds and gigabytes. Tests
# that train every shipped spec, or evaluate it numerically, at the spec's own size take these
# instead; the recipes' objectives are cyclegan.yaml's and pix2pix.yaml's with other weights and an
# identity term, and tests/benchmarks/test_authors_recipes.py trains them against the released step.
FULL_SIZE = {"cyclegan-authors", "pix2pix-authors"}
TRAINABLE_SPECS = [path for path in SPECS if path.stem not in FULL_SIZE]


def train_steps(spec, device="cpu", count=2, **acceleration):
    """A fresh trainer of `spec` (seeded networks and batch, batch size 4) and its first `count`
    iterations' stats; `acceleration` as `program.trainer` takes it."""
    import torch

    import lossgraph

    program = lossgraph.compile(str(spec))
    torch.manual_seed(0)
    trainer = program.trainer(program.build_networks(seed=0), device=device, **acceleration)
    inputs = program.example_inputs(batch_size=4, seed=0)
    return trainer, [trainer.step(inputs) for _ in range(count)]


def count_forwards(nets):
    """{name: 0} for `nets`, each entry counting that network's calls from now on (a forward hook)."""
    counts = {name: 0 for name in nets}
    for name, net in nets.items():
        net.register_forward_hook(lambda module, args, out, name=name: counts.__setitem__(name, counts[name] + 1))
    return counts


def pytest_addoption(parser):
    parser.addoption("--accept", action="store_true", help="regenerate golden files of generated code")


@pytest.fixture
def accept(request):
    return request.config.getoption("--accept")
