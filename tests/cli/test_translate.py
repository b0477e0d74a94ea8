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
from lossgraph.train.translate import Translation, choose_network, signatures, size_multiple, sizing
from lossgraph.language.errors import LossgraphError
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
    sizes = {"grey.png": (24, 24), "more/square.png": (20, 20), "wide.png": (40, 30)}  # each input's own size
    for name in written:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size == sizes[name] and image.mode == "RGB"


def test_output_at_size_is_the_networks_output_on_the_prepared_image(run, images, tmp_path):
    out = tmp_path / "translated"
    assert main(["translate", str(run), "--input", str(images / "wide.jpg"), "--output", str(out), "--device", "cpu",
                 "--size", str(IMAGE_SIZE)]) == 0
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


# ----- full resolution

TINY_PIX2PIX = """\
name: tiny-pix2pix
data: {x: image, y: image}
dataset: {builtin: shapes, pairing: paired, size: 16, test_size: 4}
networks:
  G: {arch: unet, width: 4, depth: 3}
  D: {arch: patchgan, output: probability, width: 4}
let:
  fake: G(x)
players:
  D:
    networks: [D]
    maximize:
      adv: E[log(D(x, y))] + E[log(1 - D(x, fake))]
  G:
    networks: [G]
    minimize:
      l1: E[l1(y - fake)]
train: {steps: 1, batch_size: 2, image_size: 32}
"""


@pytest.fixture(scope="module")
def unet_run(tmp_path_factory):
    """A run folder of a U-Net trained at 32x32 (depth 3: sides must be multiples of 8), weights as built."""
    folder = tmp_path_factory.mktemp("unet")
    (folder / "spec.yaml").write_text(TINY_PIX2PIX)
    program = lossgraph.compile(folder / "spec.yaml")
    nets = program.build_networks(seed=3)
    save_checkpoint(folder / "checkpoints", 1, nets, {}, {"spec": program.name})
    return folder, nets["G"].eval()


def _noise(path, width, height, seed=0):
    pixels = numpy.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=numpy.uint8)
    Image.fromarray(pixels).save(path)
    return torch.from_numpy(pixels.astype(numpy.float32)).permute(2, 0, 1)[None] / 127.5 - 1


def _translated(unet_run, tmp_path, name, *arguments):
    out = tmp_path / "out"
    assert main(["translate", str(unet_run[0]), "--input", str(tmp_path / name), "--output", str(out),
                 "--device", "cpu", *arguments]) == 0
    return _pixels(out / name.replace(".jpg", ".png"))


def test_the_multiple_a_generator_needs_is_found_by_trying(unet_run, run):
    assert size_multiple(unet_run[1], 3, 32) == 8  # three stride-2 levels
    program = lossgraph.compile(run / "spec.yaml")
    assert size_multiple(program.build_networks(seed=0)["G_XY"], 3, IMAGE_SIZE) == 4  # two down-samplings


def test_a_96x96_input_to_a_32_trained_unet_comes_back_96x96(unet_run, tmp_path):
    image = _noise(tmp_path / "big.png", 96, 96)
    got = _translated(unet_run, tmp_path, "big.png")
    assert got.shape == (96, 96, 3)
    with torch.no_grad():
        expected = to_uint8(unet_run[1](image))[0].numpy()  # 96 is a multiple of 8: no padding
    assert numpy.abs(got - expected).max() <= 1


def test_an_odd_size_is_padded_by_reflection_and_cropped_back(unet_run, tmp_path):
    image = _noise(tmp_path / "odd.png", 70, 50, seed=1)
    got = _translated(unet_run, tmp_path, "odd.png")
    assert got.shape == (50, 70, 3)
    # 70 x 50 -> 72 x 56: one column each side, three rows each side, mirrored; then the middle back
    padded = torch.nn.functional.pad(image, (1, 1, 3, 3), mode="reflect")
    with torch.no_grad():
        expected = to_uint8(unet_run[1](padded)[:, :, 3:53, 1:71])[0].numpy()
    assert numpy.abs(got - expected).max() <= 1


def test_an_image_too_small_to_reflect_is_replicated(unet_run, tmp_path):
    image = _noise(tmp_path / "tiny.png", 5, 3, seed=2)
    got = _translated(unet_run, tmp_path, "tiny.png")
    assert got.shape == (3, 5, 3)
    padded = torch.nn.functional.pad(image, (1, 2, 2, 3), mode="replicate")  # 5 x 3 -> 8 x 8
    with torch.no_grad():
        expected = to_uint8(unet_run[1](padded)[:, :, 2:5, 1:6])[0].numpy()
    assert numpy.abs(got - expected).max() <= 1


def test_size_resizes_as_training_reads_images(unet_run, tmp_path, capsys):
    _noise(tmp_path / "wide.png", 70, 50, seed=4)
    assert _translated(unet_run, tmp_path, "wide.png", "--size", "40").shape == (40, 40, 3)
    assert "at 40x40" in capsys.readouterr().out
    assert main(["translate", str(unet_run[0]), "--input", str(tmp_path / "wide.png"), "--output",
                 str(tmp_path / "bad"), "--size", "0"]) == 2
    assert "--size must be a positive number of pixels" in capsys.readouterr().err


class FixedSize(torch.nn.Module):
    """A generator with a dense layer: it takes 8x8 images only."""

    def __init__(self):
        super().__init__()
        self.dense = torch.nn.Linear(3 * 8 * 8, 3 * 8 * 8)

    def forward(self, x):
        return self.dense(x.flatten(1)).view(-1, 3, 8, 8).tanh()


def test_a_generator_of_one_size_gets_images_resized_with_a_note():
    assert size_multiple(FixedSize(), 3, 8) is None
    result = sizing(Translation("G", None), FixedSize(), 3, 8, None)
    assert result.size == 8 and result.multiple is None and "takes 8x8 images only" in result.note
    assert sizing(Translation("G", None), FixedSize(), 3, 8, 8).note == ""
    with pytest.raises(LossgraphError, match="cannot translate at --size 16; leave out --size, or pass --size 8"):
        sizing(Translation("G", None), FixedSize(), 3, 8, 16)
