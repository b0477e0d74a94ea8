"""The builtin data serves every method's data variables (lossgraph/data/__init__.py examples)."""

from pathlib import Path

import numpy
import pytest
import torch
from PIL import Image

from lossgraph.data import open_dataset
from lossgraph.data.scenes import KIND_NAMES, STYLES, render
from lossgraph.language.kinds import Kind

IMAGE = Kind("image", 3)


def label(classes: int) -> Kind:
    return Kind("label", classes)


PIX2PIX = ({"builtin": "shapes", "pairing": "paired"}, {"x": IMAGE, "y": IMAGE})
COGAN = ({"builtin": "shapes", "pairing": "unpaired"}, {"x1": IMAGE, "x2": IMAGE})
PIXELDA = (
    {
        "builtin": "shapes",
        "pairing": "unpaired",
        "labels": {"c_s": "shape(x_s)"},
        "held_out": {"c_t": "shape(x_t)"},
    },
    {"x_s": IMAGE, "c_s": label(3), "x_t": IMAGE},
)
STARGAN_STYLES = ["flat", "outlined", "slate", "meadow"]
STARGAN = (
    {
        "builtin": "shapes",
        "styles": {"x": STARGAN_STYLES},
        "labels": {"c_s": "style(x)"},
        "held_out": {"c_t": "target_style(x)", "y_t": "restyle(x, c_t)"},
    },
    {"x": IMAGE, "c_s": label(4)},
)
METHODS = {"pix2pix": PIX2PIX, "cogan": COGAN, "pixelda": PIXELDA, "stargan": STARGAN}


def open_method(method, seed=0, image_size=32, **options):
    config, kinds = METHODS[method]
    return open_dataset({**config, **options}, kinds, image_size, seed=seed)


def check_types(values, kinds, count, image_size=32):
    for name, kind in kinds.items():
        value = values[name]
        if kind.kind == "image":
            assert value.shape == (count, kind.size, image_size, image_size), name
            assert value.dtype == torch.float32, name
            assert value.min() >= -1 and value.max() <= 1, name
        else:
            assert value.shape == (count,), name
            assert value.dtype == torch.int64, name
            assert value.min() >= 0 and value.max() < kind.size, name


@pytest.mark.parametrize("method", sorted(METHODS))
def test_batches_deliver_every_data_variable(method):
    dataset = open_method(method)
    kinds = METHODS[method][1]
    batch = dataset.batch(3, 6)
    assert list(batch) == list(kinds)  # exactly the data variables, in the spec's order
    check_types(batch, kinds, 6)
    held_out = dataset.held_out(8)
    assert list(held_out) == [*kinds, *dataset.held_out_kinds]
    check_types(held_out, {**kinds, **dataset.held_out_kinds}, 8)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_batches_are_deterministic(method):
    first = open_method(method).batch(5, 7)
    again = open_method(method).batch(5, 7)
    other = open_method(method, seed=1).batch(5, 7)
    for name in first:
        assert torch.equal(first[name], again[name]), name
    image = next(name for name, value in first.items() if value.dim() == 4)
    assert not torch.equal(first[image], other[image])
    held = open_method(method).held_out(12)
    assert all(torch.equal(value, open_method(method).held_out(12)[name]) for name, value in held.items())


def test_pix2pix_pairs_one_scene_flat_and_outlined():
    dataset = open_method("pix2pix")
    indices = dataset.batch_indices(2, 8)
    scenes = dataset.scenes("train", indices["x"])
    batch = dataset.batch(2, 8)
    assert torch.equal(batch["x"], render(scenes, "flat", 32))
    assert torch.equal(batch["y"], render(scenes, "outlined", 32))


def test_unpaired_methods_get_paired_held_out():
    dataset = open_method("cogan")
    indices = dataset.batch_indices(0, 16)
    assert (indices["x1"] != indices["x2"]).sum() >= 14
    held_out = dataset.held_out(4)
    scenes = dataset.scenes("test", range(4))
    assert torch.equal(held_out["x1"], render(scenes, "flat", 32))
    assert torch.equal(held_out["x2"], render(scenes, "outlined", 32))


def test_kind_dict_and_name_list_give_the_same_batches():
    config = {"builtin": "shapes", "pairing": "unpaired"}
    from_list = open_dataset(config, ["x", "y"], 32).batch(4, 4)
    from_kinds = open_dataset(config, {"x": IMAGE, "y": IMAGE}, 32).batch(4, 4)
    from_text = open_dataset(config, {"x": "image", "y": "image"}, 32).batch(4, 4)
    for name in ("x", "y"):
        assert torch.equal(from_list[name], from_kinds[name])
        assert torch.equal(from_list[name], from_text[name])


# ----- PixelDA


def test_pixelda_labels_are_the_main_shape_kind():
    dataset = open_method("pixelda")
    indices = dataset.batch_indices(1, 32)
    assert torch.equal(indices["c_s"], indices["x_s"])  # a label reads its image's items
    batch = dataset.batch(1, 32)
    scenes = dataset.scenes("train", indices["x_s"])
    assert torch.equal(batch["c_s"], scenes.labels)
    assert set(batch["c_s"].tolist()) == set(range(len(KIND_NAMES)))
    assert torch.equal(batch["x_s"], render(scenes, "flat", 32))
    # The target domain looks different and shows other scenes.
    assert torch.equal(batch["x_t"], render(dataset.scenes("train", indices["x_t"]), "outlined", 32))
    assert (indices["x_t"] != indices["x_s"]).sum() >= 28


def test_pixelda_held_out_gives_the_target_labels():
    dataset = open_method("pixelda")
    assert dataset.held_out_kinds == {"c_t": Kind("label", 3)}
    held_out = dataset.held_out(64)
    scenes = dataset.scenes("test", range(64))
    assert torch.equal(held_out["c_t"], scenes.labels)
    assert torch.equal(held_out["x_t"], render(scenes, "outlined", 32))
    assert torch.equal(held_out["c_s"], held_out["c_t"])  # held-out scenes are paired
    assert "c_t" not in dataset.batch(0, 4)


def test_labels_follow_their_own_image():
    # A label of the target domain reads the target's scenes, not the source's.
    config = {"builtin": "shapes", "pairing": "unpaired", "labels": {"c": "shape(y)"}}
    dataset = open_dataset(config, {"x": IMAGE, "y": IMAGE, "c": label(3)}, 32)
    indices = dataset.batch_indices(0, 16)
    assert torch.equal(indices["c"], indices["y"])
    assert torch.equal(dataset.batch(0, 16)["c"], dataset.scenes("train", indices["y"]).labels)


# ----- StarGAN


def test_stargan_labels_are_the_style_index():
    dataset = open_method("stargan")
    assert len(dataset) == 4096 * 4  # each scene once in each style per epoch
    indices = dataset.batch_indices(0, 64)["x"]
    batch = dataset.batch(0, 64)
    assert torch.equal(batch["c_s"], indices % 4)
    scenes = dataset.scenes("train", indices // 4)
    for style_index, style in enumerate(STARGAN_STYLES):
        chosen = batch["c_s"] == style_index
        assert chosen.any(), style
        assert torch.equal(batch["x"][chosen], render(scenes.take(chosen), style, 32))


def test_an_epoch_shows_each_scene_in_each_style_once():
    dataset = open_method("stargan", size=6)
    items = dataset.batch_indices(0, 24)["x"]
    assert sorted(items.tolist()) == list(range(24))


def test_stargan_styles_differ_visibly():
    count = len(STYLES)
    assert count >= 4
    config = {"builtin": "shapes", "styles": {"x": count}, "labels": {"c_s": "style(x)"}}
    dataset = open_dataset(config, {"x": IMAGE, "c_s": label(count)}, 32)
    assert dataset.image_styles["x"] == tuple(STYLES)
    held_out = dataset.held_out(8 * count)
    images = held_out["x"].view(8, count, 3, 32, 32)  # scene, style
    for first in range(count):
        for second in range(first + 1, count):
            difference = (images[:, first] - images[:, second]).abs().mean().item()
            assert difference > 0.3, (list(STYLES)[first], list(STYLES)[second], difference)
    save_preview(images, Path("/tmp/stargan_styles.png"))


def save_preview(images: torch.Tensor, path: Path) -> None:
    """A grid of the held-out scenes (rows) in every style (columns), 3x enlarged."""
    scenes, styles, _, size, _ = images.shape
    grid = images.permute(0, 3, 1, 4, 2).reshape(scenes * size, styles * size, 3)
    pixels = ((grid + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    picture = Image.fromarray(numpy.ascontiguousarray(pixels))
    picture.resize((picture.width * 3, picture.height * 3), Image.Resampling.NEAREST).save(path)


def test_stargan_held_out_shows_each_scene_in_every_style():
    dataset = open_method("stargan")
    held_out = dataset.held_out(16)
    scenes = dataset.scenes("test", torch.arange(16) // 4)
    assert torch.equal(held_out["c_s"], torch.arange(16) % 4)
    for j in range(16):
        style = STARGAN_STYLES[j % 4]
        assert torch.equal(held_out["x"][j], render(scenes.take([j]), style, 32)[0])
    # c_t is another style, and over the scenes every other style is a target.
    assert (held_out["c_t"] != held_out["c_s"]).all()
    pairs = set(zip(held_out["c_s"].tolist(), held_out["c_t"].tolist()))
    assert len(pairs) == 12  # all ordered pairs of distinct styles among 4
    # y_t is x's scene in style c_t: the sample of the same scene with that style.
    for j in range(16):
        truth = held_out["x"][j - j % 4 + held_out["c_t"][j]]
        assert torch.equal(held_out["y_t"][j], truth)
    assert dataset.held_out_kinds == {"c_t": Kind("label", 4), "y_t": IMAGE}


def test_style_count_shorthand_takes_the_first_styles():
    dataset = open_method("stargan", styles={"x": 4})
    assert dataset.image_styles["x"] == tuple(STARGAN_STYLES)


def test_single_style_images_and_paired_multi_style():
    config = {"builtin": "shapes", "pairing": "paired", "styles": {"x": "slate", "y": ["rose", "meadow"]},
              "labels": {"c": "style(y)"}}
    dataset = open_dataset(config, {"x": IMAGE, "y": IMAGE, "c": label(2)}, 32)
    indices = dataset.batch_indices(0, 16)
    assert torch.equal(indices["x"], indices["y"])
    batch = dataset.batch(0, 16)
    scenes = dataset.scenes("train", indices["x"] // 2)
    assert torch.equal(batch["x"], render(scenes, "slate", 32))
    assert torch.equal(batch["c"], indices["y"] % 2)
    chosen = batch["c"] == 1
    assert torch.equal(batch["y"][chosen], render(scenes.take(chosen), "meadow", 32))


def test_grey_images():
    config = {"builtin": "shapes", "pairing": "paired"}
    grey = open_dataset(config, {"x": Kind("image", 1), "y": IMAGE}, 32)
    colour = open_dataset(config, {"x": IMAGE, "y": IMAGE}, 32)
    batch = grey.batch(0, 4)
    assert batch["x"].shape == (4, 1, 32, 32) and batch["y"].shape == (4, 3, 32, 32)
    expected = (colour.batch(0, 4)["x"] * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert torch.allclose(batch["x"], expected, atol=1e-6)
    assert grey.held_out(2)["x"].shape == (2, 1, 32, 32)


def test_describe_names_styles_and_sources():
    text = open_method("stargan").describe()
    assert "\n" not in text
    for part in ("x flat|outlined|slate|meadow", "c_s = style(x)", "held-out y_t = restyle(x, c_t)"):
        assert part in text, (part, text)
