"""The accelerated steps (accelerate.py) compute what the eager fp32 steps compute.

On the CPU: bf16 autocast for every spec (fast), and torch.compile for every spec (slow: about 90 s
for all eleven). The compiled steps are what CUDA runs by default, less CUDA graphs, so this catches
on a machine without a GPU what the phase plan asks of compiled graphs (generator-first steps
differentiate D's compiled graph on the fakes twice; batched calls; repeated steps). The CUDA path,
compiled and graphed, is checked the same way in tests/gpu.
"""

import pytest
import torch

import lossgraph
from lossgraph.train.accelerate import Acceleration, Accelerated, double_backward_networks
from lossgraph.language.errors import LossgraphError
from lossgraph.train.options import RunOptions, plan_run
from tests.conftest import TRAINABLE_SPECS, train_steps


def test_defaults_per_device():
    assert Acceleration.for_device(torch.device("cpu")) == Acceleration(False, "fp32", False)
    assert Acceleration.for_device(torch.device("cuda")) == Acceleration(True, "bf16", True)
    assert Acceleration.for_device(torch.device("cuda"), compile=False) == Acceleration(False, "bf16", False)
    assert not Acceleration.for_device(torch.device("cpu")).active


@pytest.mark.parametrize("settings, message", [
    ({"precision": "fp16"}, "precision must be one of fp32, bf16"),
    ({"cuda_graphs": True}, "CUDA graphs need a CUDA device"),
])
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        Acceleration.for_device(torch.device("cpu"), **settings)
    # through a run: a located, one-line error before anything is built
    program = lossgraph.compile("discogan")
    with pytest.raises(LossgraphError, match=message):
        plan_run(program, RunOptions(device="cpu", **settings))


def test_outputs_are_fp32_under_bf16():
    net = torch.nn.Conv2d(3, 4, 3)
    wrapped = Accelerated(net, "cpu", torch.bfloat16, compile=False, mode=None)
    out = wrapped(torch.randn(2, 3, 8, 8))
    assert out.dtype == torch.float32
    assert dict(wrapped.named_parameters()).keys() == {"net.weight", "net.bias"}
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_gradient_penalty_networks_stay_eager():
    program = lossgraph.compile("stargan-wgan-gp")
    assert double_backward_networks(program.graph) == {"D"}
    trainer = program.trainer(program.build_networks(seed=0), device="cpu", compile=True, precision="fp32")
    assert trainer.step_nets["D"].call is trainer.nets["D"]        # not compiled
    assert trainer.step_nets["G"].call is not trainer.nets["G"]    # compiled (lazily, on first call)


@pytest.mark.parametrize("spec", TRAINABLE_SPECS, ids=lambda p: p.stem)
def test_bf16_steps_match_fp32(spec):
    _, eager = train_steps(spec)
    _, bf16 = train_steps(spec, precision="bf16")
    for reference, value in zip(eager, bf16):
        assert reference.keys() == value.keys()
        for key in reference:
            assert value[key] == pytest.approx(reference[key], rel=0.05, abs=0.05), key


@pytest.mark.slow
@pytest.mark.parametrize("path", TRAINABLE_SPECS, ids=lambda p: p.stem)
def test_compiled_steps_match_eager(path):
    _, eager = train_steps(path, count=3)
    trainer, compiled = train_steps(path, count=3, compile=True)
    assert trainer.acceleration.compile
    for reference, value in zip(eager, compiled):
        for key in reference:
            # compiled kernels round differently; Adam turns that into small drifts over the steps
            assert value[key] == pytest.approx(reference[key], rel=5e-3, abs=1e-3), key
