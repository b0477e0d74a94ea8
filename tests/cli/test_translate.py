"""`lossgraph translate`: a run's trained generator applied to images on disk (lossgraph/translate.py)."""

import shutil

import numpy
import pytest
import torch
from PIL import Image

import lossgraph
from lossgraph.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from lossgraph.cli import main
from lossgraph.data import open_dataset
from lossgraph.data.folders import load_image
from lossgraph.train.images import to_uint8
from lossgraph.train.run import RunOptions, train
from lossgraph.train.translate import choose_network, signatures
from tests.conftest import ROOT

IMAGE_SIZE = 16

TINY_CYCLEGAN = """\
name: tiny-cyclegan
data: {x: image, y: image}
dataset: {builtin: shapes, pairing: unpaired, size: 16, test_size: 4}
networks:
  G_XY: {arch: resnet_generator, width: 4, blocks: 1}
  G_YX: {arch: resnet_generator, width: 4, blocks: 1}
  D_X: {arch: patchgan, output: raw, width: 4}
  D_Y: {arch: patchgan, output: raw, width: 4}
let:
  fake_y: G_XY(x)
  fake_x: G_YX(y)
players:
  D:
    networks: [D_X, D_Y]
    minimize:
      adv: E[(D_Y(y) - 1)^2] + E[D_Y(fake_y)^2] + E[(D_X(x) - 1)^2] + E[D_X(fake_x)^2]
  G:
    networks: [G_XY, G_YX]
    minimize:
      adv: E[(D_Y(fake_y) - 1)^2] + E[(D_X(fake_x) - 1)^2]
      cycle: {weight: 10, expr: "E[l1(G_YX(fake_y) - x)] + E[l1(G_XY(fake_x) - y)]"}
schedule: [D, G]
train: {steps: 2, batch_size: 2, image_size: 16}
samples: [x, fake_y]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A two-step run folder of a tiny CycleGAN, with its spec.yaml."""
    folder = tmp_path_factory.mktemp("translate")
    spec_path = folder / "tiny-cyclegan.yaml"
    spec_path.write_text(TINY_CYCLEGAN)
    program = lossgraph.compile(spec_path)
    dataset = open_dataset(dict(program.spec.dataset), program.spec.kinds, IMAGE_SIZE, seed=0)
    out = folder / "run"
    with torch.random.fork_rng():
        train(program, dataset, RunOptions(steps=2, batch_size=2, device="cpu", out_dir=out, progress=False,
                                           sample_count=2, eval_count=2))
    if not (out / "spec.yaml").is_file():  # runs that predate saving the resolved spec
        shutil.copy(spec_path, out / "spec.yaml")
    return out


@pytest.fixture
def images(tmp_path):
    """Three images of different sizes and modes, one in a sub-folder, and a file that is not one."""
    folder = tmp_path / "inputs"
    (folder / "more").mkdir(parents=True)
    gradient = numpy.linspace(0, 255, 40 * 30 * 3).reshape(30, 40, 3).astype(numpy.uint8)
    Image.fromarray(gradient).save(folder / "wide.jpg")
    Image.new("RGB", (20, 20), (0, 90, 200)).save(folder / "more" / "square.png")
    Image.new("L", (24, 24), 180).save(folder / "grey.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _pixels(path):
    with Image.open(path) as image:
        return numpy.asarray(image.convert("RGB"), dtype=numpy.int16)


def test_translate_writes_one_png_per_input_with_the_same_names(run, images, tmp_path, capsys):
    out = tmp_path / "translated"
    assert main(["translate", str(run), "--input", str(images), "--output", str(out), "--batch-size", "2",
                 "--device", "cpu"]) == 0
    assert "translated 3 images with G_XY" in capsys.readouterr().out
    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    assert written == ["grey.png", "more/square.png", "wide.png"]
    for name in written:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size == (IMAGE_SIZE, IMAGE_SIZE) and image.mode == "RGB"


def test_output_is_the_networks_output_on_the_prepared_image(run, images, tmp_path):
    out = tmp_path / "translated"
    assert main(["translate", str(run), "--input", str(images / "wide.jpg"), "--output", str(out), "--device", "cpu"]) == 0
    program = lossgraph.compile(run / "spec.yaml")
    nets = program.build_networks(seed=0)
    load_checkpoint(latest_checkpoint(run / "checkpoints"), nets)
    with torch.no_grad():
        expected = to_uint8(nets["G_XY"].eval()(load_image(images / "wide.jpg", IMAGE_SIZE)[None]))[0].numpy()
    assert numpy.abs(_pixels(out / "wide.png") - expected).max() <= 1


def test_the_output_changes_when_the_weights_change(run, images, tmp_path):
    trained = tmp_path / "trained"
    assert main(["translate", str(run), "--input", str(images), "--output", str(trained), "--device", "cpu"]) == 0
    program = lossgraph.compile(run / "spec.yaml")
    nets = program.build_networks(seed=0)
    load_checkpoint(latest_checkpoint(run / "checkpoints"), nets)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in nets["G_XY"].parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.5)
    perturbed = save_checkpoint(tmp_path / "elsewhere", 7, nets, {}, {"spec": program.name})
    changed = tmp_path / "changed"
    assert main(["translate", str(run), "--input", str(images), "--output", str(changed), "--device", "cpu",
                 "--checkpoint", str(perturbed)]) == 0
    difference = numpy.abs(_pixels(trained / "wide.png") - _pixels(changed / "wide.png")).mean()
    assert difference > 5
    # and the other generator gives other images
    other = tmp_path / "other"
    assert main(["translate", str(run), "--input", str(images), "--output", str(other), "--device", "cpu",
                 "--network", "G_YX"]) == 0
    assert numpy.abs(_pixels(trained / "wide.png") - _pixels(other / "wide.png")).mean() > 1


def test_default_network_is_the_first_image_to_image_one(run):
    program = lossgraph.compile(run / "spec.yaml")
    found = signatures(program)
    assert [name for name, signature in found.items() if signature.translates] == ["G_XY", "G_YX"]
    assert not found["D_X"].translates and found["D_X"].inputs == ("image",)
    assert choose_network(program, None).network == "G_XY"


def test_a_run_without_spec_yaml_needs_spec(run, images, tmp_path, capsys):
    old = tmp_path / "old-run"
    shutil.copytree(run / "checkpoints", old / "checkpoints")
    out = tmp_path / "out"
    assert main(["translate", str(old), "--input", str(images), "--output", str(out)]) == 2
    error = capsys.readouterr().err
    assert "has no spec.yaml" in error and "--spec" in error
    assert not out.exists()
    assert main(["translate", str(old), "--input", str(images), "--output", str(out), "--device", "cpu",
                 "--spec", str(run / "spec.yaml")]) == 0
    assert len(list(out.rglob("*.png"))) == 3


@pytest.mark.parametrize("arguments, message", [
    (["--network", "D_X"], "networks it can apply: G_XY, G_YX"),
    (["--network", "G_X"], "did you mean 'G_XY'?"),
    (["--checkpoint", "no-such-checkpoint"], "does not exist"),
])
def test_bad_choices_are_clear_errors(run, images, tmp_path, capsys, arguments, message):
    out = tmp_path / "out"
    assert main(["translate", str(run), "--input", str(images), "--output", str(out), "--device", "cpu", *arguments]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or not list(out.rglob("*.png"))


def test_inputs_without_images_and_outputs_over_inputs_are_refused(run, images, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["translate", str(run), "--input", str(empty), "--output", str(tmp_path / "out")]) == 2
    assert "holds no images" in capsys.readouterr().err
    assert main(["translate", str(run), "--input", str(images), "--output", str(images)]) == 2
    assert "would overwrite an input image" in capsys.readouterr().err


def test_a_generator_that_needs_labels_is_listed_not_guessed(images, tmp_path, capsys):
    run = tmp_path / "stargan-run"
    run.mkdir()
    shutil.copy(ROOT / "specs" / "stargan.yaml", run / "spec.yaml")
    assert main(["translate", str(run), "--input", str(images), "--output", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "no network that maps one image to an image" in error
    assert "G(x, c_t): takes image, label" in error


def test_a_run_without_checkpoints_is_a_clear_error(run, images, tmp_path, capsys):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(run / "spec.yaml", fresh / "spec.yaml")
    assert main(["translate", str(fresh), "--input", str(images), "--output", str(tmp_path / "out")]) == 2
    assert "holds no complete checkpoint" in capsys.readouterr().err
