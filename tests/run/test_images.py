"""Sample grids: value mapping, channel handling, layout size and atomic PNG writes."""

from __future__ import annotations

import torch
from PIL import Image

from lossgraph.train.images import PADDING, make_grid, save_grid, to_uint8


def test_minus_one_zero_one_map_to_black_grey_white():
    images = torch.tensor([-1.0, 0.0, 1.0, 3.0]).reshape(1, 1, 1, 4)
    pixels = to_uint8(images)
    assert pixels.shape == (1, 1, 4, 3) and pixels.dtype == torch.uint8
    assert pixels[0, 0, :, 0].tolist() == [0, 128, 255, 255]  # out of range is clamped


def test_grey_and_rgba_become_rgb():
    assert to_uint8(torch.zeros(2, 1, 5, 6)).shape == (2, 5, 6, 3)
    rgba = to_uint8(torch.ones(1, 4, 2, 2))
    assert rgba.shape == (1, 2, 2, 3)


def test_grid_size_without_labels():
    rows = [("a", torch.zeros(5, 3, 16, 16)), ("b", torch.zeros(5, 1, 8, 8))]
    picture = make_grid(rows, labels=False)
    assert picture.size == (PADDING + 5 * (16 + PADDING), PADDING + 2 * (16 + PADDING))


def test_labels_add_a_left_margin_and_text():
    rows = [("G_YX(G_XY(x))", torch.zeros(2, 3, 16, 16))]
    plain, labelled = make_grid(rows, labels=False), make_grid(rows, labels=True)
    assert labelled.size[1] == plain.size[1] and labelled.size[0] > plain.size[0] + 30
    margin = labelled.crop((0, 0, labelled.size[0] - plain.size[0], labelled.size[1]))
    assert max(channel[1] for channel in margin.getextrema()) > 150  # light text drawn


def test_save_grid_writes_a_png_and_no_temporary_file(tmp_path):
    path = save_grid([("x", torch.rand(3, 3, 8, 8) * 2 - 1)], tmp_path / "samples" / "step_000001.png")
    with Image.open(path) as picture:
        assert picture.format == "PNG"
    assert [entry.name for entry in path.parent.iterdir()] == ["step_000001.png"]
