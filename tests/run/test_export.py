"""`lossgraph export`: a run's generator as an ONNX model and a torch.export program, run against
the PyTorch network it came from (onnxruntime, `torch.export.load`), at the trained side and at
others where the network is fully convolutional, with what each file records about its input."""

from __future__ import annotations

import onnx
import onnxruntime
import pytest
import torch
from torch import nn

import lossgraph
import lossgraph.nets as nets
from lossgraph.cli import main
from lossgraph.data import open_dataset
from lossgraph.train.export import (NORMALISATION, SizeRule, export, export_network, read_metadata, size_rule,
                                    trained_network)
from lossgraph.train.run import RunOptions, train
from lossgraph.train.translate import resolve_spec
from tests.run.test_lr_schedule import TINY


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """tiny.yaml (8x8 images, a U-Net of depth 1) trained 2 steps, with a moving average of G."""
    program = lossgraph.compile(lossgraph.load(TINY, overrides=["+ema.G=0.5"]))
    spec = program.spec
    dataset = open_dataset(spec.dataset, spec.kinds, spec.train.image_size, seed=0, base_dir=TINY.parent)
    folder = tmp_path_factory.mktemp("export") / "run"
    train(program, dataset, RunOptions(out_dir=folder, device="cpu", steps=2, progress=False, tensorboard=False))
    return folder


def network_of(run, ema=False):
    program = resolve_spec(run, None)
    return trained_network(program, "G", sorted((run / "checkpoints").iterdir())[-1], ema)


def images(batch, side, seed=0):
    return torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_onnx_runs_like_the_network_at_any_even_side(run, tmp_path):
    result = export(run, tmp_path / "G.onnx")
    assert result.checked_with == "onnxruntime" and result.difference < 1e-5
    session = onnxruntime.InferenceSession(str(tmp_path / "G.onnx"), providers=["CPUExecutionProvider"])
    (given,), (returned,) = session.get_inputs(), session.get_outputs()
    assert (given.name, returned.name) == ("images", "translated")
    assert given.shape[1] == 3 and all(isinstance(size, str) for size in (given.shape[0], given.shape[2], given.shape[3]))
    network = network_of(run)
    for batch, side in ((1, 8), (3, 12), (2, 32)):  # trained at 8; the U-Net of depth 1 keeps every even side
        batch_images = images(batch, side)
        got = torch.from_numpy(session.run(None, {"images": batch_images.numpy()})[0])
        with torch.no_grad():
            assert (got - network(batch_images)).abs().max() < 1e-5, (batch, side)

    metadata = {entry.key: entry.value for entry in onnx.load(str(tmp_path / "G.onnx")).metadata_props}
    assert metadata["lossgraph.spec"] == "tiny" and metadata["lossgraph.network"] == "G"
    assert metadata["lossgraph.checkpoint"] == "step_000002"
    assert metadata["lossgraph.channels"] == "3" and metadata["lossgraph.image_size"] == "8"
    assert metadata["lossgraph.normalisation"] == NORMALISATION
    assert (metadata["lossgraph.dynamic_size"], metadata["lossgraph.size_multiple"], metadata["lossgraph.min_size"]) == ("true", "2", "2")
    assert read_metadata(tmp_path / "G.onnx")["size_multiple"] == 2


def test_a_pt2_program_loads_runs_and_refuses_sides_it_cannot_take(run, tmp_path):
    result = export(run, tmp_path / "G.pt2")
    assert result.checked_with == "torch.export.load" and result.difference == 0.0
    extra = {"lossgraph.json": ""}
    loaded = torch.export.load(tmp_path / "G.pt2", extra_files=extra).module()
    assert '"dynamic_size": true' in extra["lossgraph.json"]
    assert read_metadata(tmp_path / "G.pt2") == result.metadata
    network = network_of(run)
    with torch.no_grad():
        for side in (8, 16):
            batch_images = images(2, side, seed=side)
            assert torch.equal(loaded(batch_images), network(batch_images))
        with pytest.raises(AssertionError, match=r"images.size\(\)\[2\] % 2 == 0"):  # an odd side: the guard says no
            loaded(images(2, 9))


def test_the_moving_average_is_exported_with_ema(run, tmp_path):
    result = export(run, tmp_path / "G_ema.pt2", ema=True)
    assert result.metadata["network"] == "G@ema"
    loaded = torch.export.load(tmp_path / "G_ema.pt2").module()
    batch_images = images(2, 8)
    with torch.no_grad():
        assert torch.equal(loaded(batch_images), network_of(run, ema=True)(batch_images))
        assert not torch.equal(loaded(batch_images), network_of(run)(batch_images))


@pytest.mark.parametrize("arch, options, rule", [
    ("resnet_generator", {"width": 4, "blocks": 1, "bias": True}, SizeRule(4, 8)),  # reflection pads need 2x2 inside
    ("unet", {"width": 4, "depth": 3, "norm": "batch", "dropout": 0.5}, SizeRule(8, 8)),
])
def test_generators_export_with_free_sides(arch, options, rule, tmp_path):
    torch.manual_seed(0)
    network = nets.build(arch, in_channels=3, out_channels=3, image_size=32, **options).eval()
    if any(isinstance(m, nn.BatchNorm2d) for m in network.modules()):  # statistics that are not the defaults
        network.train()
        with torch.no_grad():
            network(images(4, 32))
        network.eval()
    assert size_rule(network, 3, 32) == rule
    result = export_network(network, tmp_path / "net.onnx", 3, 32)
    assert result.dynamic and result.difference < 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    batch_images = images(2, 32 + rule.multiple)
    with torch.no_grad():
        got = torch.from_numpy(session.run(None, {"images": batch_images.numpy()})[0])
        assert (got - network(batch_images)).abs().max() < 1e-4


class Flattening(nn.Module):
    """Not fully convolutional: a linear layer over every pixel."""

    def __init__(self, side: int):
        super().__init__()
        self.side = side
        self.linear = nn.Linear(3 * side * side, 3 * side * side)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(images.flatten(1))).view(-1, 3, self.side, self.side)


def test_a_network_that_is_not_fully_convolutional_gets_a_fixed_side(tmp_path):
    network = Flattening(8).eval()
    assert size_rule(network, 3, 8) is None
    result = export_network(network, tmp_path / "flat.onnx", 3, 8)
    assert not result.dynamic and result.metadata["size"] == 8 and result.metadata["size_multiple"] is None
    assert "not fully convolutional" in result.notes[0]
    shape = onnx.load(str(tmp_path / "flat.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [dim.dim_value for dim in shape[1:]] == [3, 8, 8]


def test_size_fixes_the_side(run, tmp_path):
    result = export(run, tmp_path / "G16.onnx", size=16)
    assert not result.dynamic and result.metadata["size"] == 16 and result.metadata["image_size"] == 8
    shape = onnx.load(str(tmp_path / "G16.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [dim.dim_value for dim in shape[2:]] == [16, 16]


def test_the_command_says_what_it_wrote(run, tmp_path, capsys):
    assert main(["export", str(run), "-o", str(tmp_path / "G.onnx")]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'G.onnx'}: G from {run / 'checkpoints' / 'step_000002'}; images (N, 3, H, W) in [-1, 1], " \
           "H and W multiples of 2 from 2" in out
    assert "checked with onnxruntime: largest difference from the PyTorch network" in out


@pytest.mark.parametrize("arguments, message", [
    (["-o", "{tmp}/G.txt"], "export writes .onnx or .pt2 files, chosen by the suffix of -o; got"),
    (["-o", "{tmp}/D.onnx", "--network", "D"], "export writes a network that maps one image to an image, but D(y): takes image"),
    (["-o", "{tmp}/G.onnx", "--network", "Gx"], "spec 'tiny' has no network 'Gx' (did you mean 'G'?)"),
    (["-o", "{tmp}/D.onnx", "--network", "D", "--ema"], "export writes a network that maps one image to an image"),
    (["-o", "{tmp}/G.onnx", "--size", "0"], "--size must be at least 1, got 0"),
])
def test_mistakes_are_one_line_errors(run, tmp_path, capsys, arguments, message):
    assert main(["export", str(run), *[argument.format(tmp=tmp_path) for argument in arguments]]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_missing_run_folder_is_named(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nowhere"), "-o", str(tmp_path / "G.onnx")]) == 2
    assert f"run folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
