"""The builtin `photos` dataset (photos.py, photo_tasks.py): offline, deterministic, split, tasks.

These tests need the extra lossgraph[photos] (scikit-image), which the README's test command and
CI install; without it they fail with the message naming the extra, rather than skip silently.
"""

import socket
import sys
from pathlib import Path

import numpy
import pytest
import torch

import lossgraph
from lossgraph.data import PhotoDataset, open_dataset
from lossgraph.data import photos as photos_module
from lossgraph.data.photos import GAP, PHOTOGRAPHS, photographs, split_column
from lossgraph.language.errors import DataError
from lossgraph.language.kinds import Kind
from lossgraph.train.run import RunOptions, train

IMAGE = Kind("image", 3)
PAIR = {"x": IMAGE, "y": IMAGE}
SPEC = Path(__file__).with_name("photos-pix2pix.yaml")


def photos(pairing="paired", image_size=32, seed=0, variables=PAIR, **options):
    return open_dataset({"builtin": "photos", "pairing": pairing, **options}, variables, image_size, seed=seed)


def graded(rgb: numpy.ndarray) -> numpy.ndarray:
    """The documented colour grade, written out again in numpy: (..., 3) RGB in [0, 1]."""
    toned = numpy.stack([rgb[..., 0] ** 0.8, rgb[..., 1], rgb[..., 2] ** 1.25], axis=-1)
    s_curve = 0.4 * toned + 0.6 * (3 * toned**2 - 2 * toned**3)
    luma = s_curve @ numpy.array([0.299, 0.587, 0.114])
    return numpy.clip(luma[..., None] + 1.4 * (s_curve - luma[..., None]), 0, 1)


def test_the_photographs_load_without_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    photographs.cache_clear()
    loaded = photographs(72)
    assert len(loaded) == len(PHOTOGRAPHS) == 6
    for image in loaded:
        assert image.shape[0] == 3 and min(image.shape[1:]) == 72
        assert image.min() >= 0 and image.max() <= 1


def test_missing_scikit_image_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # import skimage now raises ImportError
    photographs.cache_clear()
    with pytest.raises(DataError, match=r"needs scikit-image.*pip install lossgraph\[photos\]"):
        photos(photo_size=80)
    photographs.cache_clear()


def test_batches_are_deterministic_and_in_range():
    first, again = photos().batch(3, 8), photos().batch(3, 8)
    assert all(torch.equal(first[name], again[name]) for name in ("x", "y"))
    assert not torch.equal(photos(seed=1).batch(3, 8)["x"], first["x"])
    assert not torch.equal(photos().batch(4, 8)["x"], first["x"])
    held_out = photos().held_out(60)
    for values in (*first.values(), *held_out.values()):
        assert values.dtype == torch.float32 and values.min() >= -1 and values.max() <= 1
    assert first["x"].shape == (8, 3, 32, 32) and held_out["x"].shape == (60, 3, 32, 32)
    assert torch.equal(photos().held_out(60)["y"], held_out["y"])


def test_the_grade_task_is_the_documented_grade():
    dataset = photos()
    batch, held_out = dataset.batch(0, 6), dataset.held_out(12)
    for sample in (batch, held_out):
        x = ((sample["x"] + 1) / 2).permute(0, 2, 3, 1).double().numpy()
        y = ((sample["y"] + 1) / 2).permute(0, 2, 3, 1).double().numpy()
        assert numpy.abs(graded(x) - y).max() < 1e-5
        assert numpy.abs(x - y).mean() > 0.03  # a grade that is visible: doing nothing is wrong
    # x is the photograph itself: the patch the table names
    photo, top, left = dataset.test_table[0].tolist()
    assert torch.allclose((held_out["x"][0] + 1) / 2, dataset.photos[photo][:, top:top + 32, left:left + 32], atol=1e-6)


def test_the_colorize_task_is_grey_in_colour_out():
    held_out = photos(task="colorize").held_out(12)
    x, y = held_out["x"], held_out["y"]
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    luma = 0.299 * y[:, 0] + 0.587 * y[:, 1] + 0.114 * y[:, 2]
    assert torch.allclose(x[:, 0], luma, atol=1e-5)
    one_channel = photos(task="colorize", variables={"x": Kind("image", 1), "y": IMAGE}).held_out(12)
    assert one_channel["x"].shape == (12, 1, 32, 32) and torch.allclose(one_channel["x"][:, 0], x[:, 0], atol=1e-5)


@pytest.mark.parametrize("options, image_size", [({}, 32), ({"load_size": 40, "crop_size": 32, "flip": True}, 32),
                                                 ({"photo_size": 140}, 64)])
def test_no_training_patch_touches_a_held_out_column(options, image_size):
    dataset = photos(image_size=image_size, size=2000, test_size=300, **options)
    patch = dataset.load_size
    for table, train_side in ((dataset.train_table, True), (dataset.test_table, False)):
        for photo, top, left in table.tolist():
            height, width = dataset.photos[photo].shape[1:]
            split = split_column(width, patch)
            assert 0 <= top <= height - patch and 0 <= left <= width - patch
            if train_side:
                assert left + patch <= split - GAP  # the whole patch, so any crop of it too
            else:
                assert left >= split
    # every photograph gives training and held-out patches
    assert set(dataset.train_table[:, 0].tolist()) == set(range(6)) == set(dataset.test_table[:, 0].tolist())


def test_unpaired_photos_draw_each_domain_in_its_own_order_and_held_out_is_paired():
    dataset = photos(pairing="unpaired")
    indices = dataset.batch_indices(0, 16)
    assert not torch.equal(indices["x"], indices["y"])
    assert dataset.paired_held_out
    held_out = dataset.held_out(6)
    x = ((held_out["x"] + 1) / 2).permute(0, 2, 3, 1).double().numpy()
    assert numpy.abs(graded(x) - ((held_out["y"] + 1) / 2).permute(0, 2, 3, 1).double().numpy()).max() < 1e-5


@pytest.mark.parametrize("options, variables, expected", [
    ({"task": "colourise"}, PAIR, ["dataset.task", "'colourise'", "'colorize'"]),
    ({"photo_size": 50}, PAIR, ["dataset.photo_size", "at least 68", "got 50"]),
    ({"styles": {"x": "flat"}}, PAIR, ["dataset.styles", "applies only to builtin 'shapes'"]),
    ({"labels": {"c": "shape(x)"}}, {**PAIR, "c": Kind("label", 3)}, ["2 image variables and no labels"]),
    ({}, {"x": IMAGE, "y": IMAGE, "z": IMAGE}, ["exactly 2 image variables", "['x', 'y', 'z']"]),
])
def test_photo_mistakes_name_the_key(options, variables, expected):
    with pytest.raises(DataError) as caught:
        photos(variables=variables, **options)
    for part in expected:
        assert part in str(caught.value), (part, str(caught.value))


def test_task_is_refused_for_shapes():
    with pytest.raises(DataError, match="dataset.task: applies only to builtin 'photos'"):
        open_dataset({"builtin": "shapes", "pairing": "paired", "task": "grade"}, PAIR, 32)


def test_a_pix2pix_spec_on_photos_checks_and_trains(tmp_path):
    spec = lossgraph.load(SPEC)
    program = lossgraph.compile(spec)
    dataset = open_dataset(spec.dataset, spec.kinds, spec.train.image_size, seed=0)
    assert isinstance(dataset, PhotoDataset) and dataset.task == "grade"
    options = RunOptions(out_dir=tmp_path, device="cpu", steps=3, progress=False, eval_every=3, eval_count=12)
    summary = train(program, dataset, options)
    assert summary.step == 3
    assert (tmp_path / "eval.csv").read_text().count("\n") >= 2
