"""The CUDA path computes what the CPU computes. Needs a GPU: `pytest -m gpu`."""

import pytest
import torch

import lossgraph
from tests.conftest import TRAINABLE_SPECS, train_steps

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.mark.parametrize("spec", TRAINABLE_SPECS, ids=lambda p: p.stem)
def test_cuda_losses_equal_cpu_losses(spec):
    program = lossgraph.compile(str(spec))
    nets = program.build_networks(seed=0)
    inputs = program.example_inputs(batch_size=4, seed=0)
    with torch.no_grad():
        torch.manual_seed(0)  # the gradient penalty's mixing weights: the same draws on both
        cpu = program.losses(nets, inputs)
        cuda_nets = {k: v.cuda() for k, v in nets.items()}
        torch.manual_seed(0)
        cuda = program.losses(cuda_nets, {k: v.cuda() for k, v in inputs.items()})
    for key, value in cpu.items():
        torch.testing.assert_close(cuda[key].cpu(), value, rtol=1e-4, atol=1e-4)


def steps(spec, device, **acceleration):
    return train_steps(spec, device, count=3, **acceleration)


@pytest.fixture
def no_tf32():
    """fp32 convolutions and matmuls in full fp32 (cuDNN would take TF32 ones by default)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def assert_steps_close(reference, actual, tolerance):
    """Every stat of every step within `tolerance` (relative and absolute), all mismatches listed."""
    wrong = [f"step {index + 1} {key}: {b[key]:.6g}, expected {a[key]:.6g}"
             for index, (a, b) in enumerate(zip(reference, actual)) for key in a
             if b[key] != pytest.approx(a[key], rel=tolerance, abs=tolerance)]
    assert not wrong, "; ".join(wrong)


@pytest.mark.parametrize("spec", TRAINABLE_SPECS, ids=lambda p: p.stem)
def test_fp32_cuda_steps_equal_cpu_steps(spec, no_tf32):
    """Eager, then compiled and CUDA-graphed, in fp32: the CPU's numbers up to rounding."""
    _, cpu = steps(spec, "cpu")
    _, eager = steps(spec, "cuda", compile=False, precision="fp32")
    assert_steps_close(cpu, eager, 5e-3)
    trainer, graphed = steps(spec, "cuda", compile=True, precision="fp32", cuda_graphs=True)
    assert trainer.acceleration.cuda_graphs
    assert_steps_close(cpu, graphed, 5e-3)


@pytest.mark.parametrize("spec", TRAINABLE_SPECS, ids=lambda p: p.stem)
def test_default_cuda_path_matches_cpu_eager(spec):
    """Compiled, bf16, CUDA graphs (the CUDA defaults) against the CPU's eager fp32 steps."""
    _, cpu = steps(spec, "cpu")
    trainer, cuda = steps(spec, "cuda")
    assert trainer.acceleration.compile and trainer.acceleration.precision == "bf16"
    assert_steps_close(cpu, cuda, 0.05)
