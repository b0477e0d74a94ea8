"""The CUDA path computes what the CPU computes. Needs a GPU: `pytest -m gpu`."""

import pytest
import torch

import lossgraph
from tests.conftest import SPECS

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_cuda_losses_equal_cpu_losses(spec):
    program = lossgraph.compile(str(spec))
    nets = program.build_networks(seed=0)
    inputs = program.example_inputs(batch_size=4, seed=0)
    with torch.no_grad():
        cpu = program.losses(nets, inputs)
        cuda_nets = {k: v.cuda() for k, v in nets.items()}
        cuda = program.losses(cuda_nets, {k: v.cuda() for k, v in inputs.items()})
    for key, value in cpu.items():
        torch.testing.assert_close(cuda[key].cpu(), value, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_cuda_training_step_runs(spec):
    program = lossgraph.compile(str(spec))
    trainer = program.trainer(program.build_networks(seed=0), device="cuda")
    stats = trainer.step(program.example_inputs(batch_size=4))
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
