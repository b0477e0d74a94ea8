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
from lossgraph.train.accelerate import (Acceleration, Accelerated, compiled, double_backward_networks,
                                       twice_differentiated_networks, uncompiled_networks)
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


@pytest.mark.parametrize("name, twice", [("pix2pix", {"D"}), ("discogan", {"D_X", "D_Y"}), ("cyclegan", set()),
                                         ("stargan-wgan-gp", set())])
def test_networks_a_compiled_cpu_step_leaves_eager(name, twice):
    # Note [Graphs differentiated twice on the CPU]: D's calls on the fakes, which G's and D's
    # backward both differentiate in a generator-first schedule, run eager on the CPU only
    program = lossgraph.compile(name)
    assert twice_differentiated_networks(program.phases) == twice
    penalty = double_backward_networks(program.graph)
    assert uncompiled_networks(program, torch.device("cpu")) == twice | penalty
    assert uncompiled_networks(program, torch.device("cuda")) == penalty


def test_pix2pix_compiled_on_the_cpu_compiles_the_generator_alone():
    program = lossgraph.compile("pix2pix")
    trainer = program.trainer(program.build_networks(seed=0), device="cpu", compile=True)
    assert trainer.step_nets["D"].call is trainer.nets["D"]
    assert trainer.step_nets["G"].call is not trainer.nets["G"]


def test_networks_of_one_shape_share_a_compiled_graph():
    # one backend for every compile (cpu_masks.MASKS_FROM_OUTPUTS): a second network of the same
    # shape reuses the graph instead of compiling again, and counting towards dynamo's recompile limit
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    x = torch.randn(2, 3, 8, 8)
    for _ in range(3):
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(4, 1, 3))
        compiled(net, "cpu")(x).sum().backward()
    assert counters["stats"]["unique_graphs"] == 1


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


@pytest.mark.parametrize("native, precision, said", [(False, "bf16", True), (True, "bf16", False),
                                                     (False, "fp32", False)])
def test_a_run_says_when_bf16_is_emulated_on_this_cpu(tmp_path, capsys, monkeypatch, native, precision, said):
    from pathlib import Path

    from lossgraph.data import open_dataset
    from lossgraph.train import accelerate
    from lossgraph.train.run import train

    monkeypatch.setattr(accelerate, "native_cpu_bf16", lambda: native)
    tiny = Path(__file__).with_name("tiny.yaml")
    program = lossgraph.compile(tiny)
    spec = program.spec
    dataset = open_dataset(spec.dataset, spec.kinds, spec.train.image_size, seed=0, base_dir=tiny.parent)
    train(program, dataset, RunOptions(out_dir=tmp_path, device="cpu", steps=1, precision=precision,
                                       progress=False, tensorboard=False))
    assert ("no native bf16" in capsys.readouterr().err) == said


def test_native_cpu_bf16_follows_onednn():
    from lossgraph.train.accelerate import native_cpu_bf16

    assert native_cpu_bf16() == (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
