"""Folder layouts `aligned` (aligned.py) and `classes` (classes.py), built from small PNGs."""

from pathlib import Path

import numpy
import pytest
import torch
from PIL import Image

from lossgraph.data import AlignedFolderDataset, ClassFolderDataset, open_dataset
from lossgraph.language.errors import DataError
from lossgraph.language.kinds import Kind

IMAGE = Kind("image", 3)
PAIR = {"x": IMAGE, "y": IMAGE}


def as_pixels(images: torch.Tensor) -> torch.Tensor:
    return ((images + 1) * 127.5).round()


def write_pair(path: Path, left: tuple[int, int, int], right: tuple[int, int, int], size=(24, 12)) -> None:
    """An aligned image: A (solid `left`) and B (solid `right`) side by side."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    pixels = numpy.zeros((height, width, 3), dtype=numpy.uint8)
    pixels[:, : width // 2] = left
    pixels[:, width // 2 :] = right
    Image.fromarray(pixels).save(path)


def write_solid(path: Path, colour: tuple[int, int, int], size=(10, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = numpy.zeros((size[1], size[0], 3), dtype=numpy.uint8)
    pixels[:] = colour
    Image.fromarray(pixels).save(path)


def make_aligned(root: Path, train: int = 4, held_out: dict[str, int] | None = None) -> None:
    # Red tells A (0) from B (200), green the file index, blue the split.
    for index in range(train):
        write_pair(root / "train" / f"{index:03d}.png", (0, 20 * index, 0), (200, 20 * index, 0))
    for split, count in (held_out or {}).items():
        blue = {"val": 100, "test": 200}[split]
        for index in range(count):
            write_pair(root / split / f"{index:03d}.png", (0, 20 * index, blue), (200, 20 * index, blue))


def aligned(root: Path, variables=None, image_size: int = 8, **options):
    return open_dataset({"folder": str(root), "layout": "aligned", **options}, variables or PAIR, image_size)


# ----- aligned


def test_aligned_round_trip(tmp_path):
    make_aligned(tmp_path, train=5, held_out={"test": 3})
    dataset = aligned(tmp_path)
    assert isinstance(dataset, AlignedFolderDataset)
    assert dataset.pairing == "paired"  # the default for this layout
    assert len(dataset) == 5
    batch = dataset.batch(0, 5)
    assert batch["x"].shape == batch["y"].shape == (5, 3, 8, 8)
    x, y = as_pixels(batch["x"]), as_pixels(batch["y"])
    assert (x[:, 0] == 0).all() and (y[:, 0] == 200).all()  # left half A, right half B
    assert torch.equal(x[:, 1], y[:, 1])  # both halves of one file
    assert sorted(x[:, 1, 0, 0].tolist()) == [0, 20, 40, 60, 80]  # an epoch visits every file once
    held_out = dataset.held_out(10)
    assert held_out["x"].shape[0] == 3 and dataset.paired_held_out
    assert (as_pixels(held_out["x"])[:, 2] == 200).all()  # from test/
    assert torch.equal(dataset.batch(2, 3)["y"], aligned(tmp_path).batch(2, 3)["y"])
    assert "train 5 pairs" in dataset.describe() and "test/" in dataset.describe()


def test_aligned_held_out_prefers_val_then_test_then_train(tmp_path):
    make_aligned(tmp_path, held_out={"val": 2, "test": 3})
    assert (as_pixels(aligned(tmp_path).held_out(8)["y"])[:, 2] == 100).all()
    only_train = tmp_path / "plain"
    make_aligned(only_train)
    held_out = aligned(only_train).held_out(8)
    assert held_out["x"].shape[0] == 4 and (as_pixels(held_out["x"])[:, 2] == 0).all()


def test_aligned_split_at_the_middle_of_any_wide_image(tmp_path):
    # 30x10: an odd split (15 | 15) of non-square halves, each centre-cropped to a square.
    write_pair(tmp_path / "train" / "wide.png", (10, 10, 10), (250, 250, 250), size=(31, 10))
    batch = aligned(tmp_path, image_size=10).batch(0, 1)
    assert (as_pixels(batch["x"]) == 10).all() and (as_pixels(batch["y"]) == 250).all()


def test_aligned_unpaired_draws_halves_independently(tmp_path):
    make_aligned(tmp_path, train=12)
    dataset = aligned(tmp_path, pairing="unpaired")
    batch = dataset.batch(0, 12)
    assert not torch.equal(as_pixels(batch["x"])[:, 1], as_pixels(batch["y"])[:, 1])
    assert dataset.paired_held_out


def test_aligned_grey_images(tmp_path):
    make_aligned(tmp_path)
    dataset = aligned(tmp_path, {"x": Kind("image", 1), "y": IMAGE})
    batch = dataset.batch(0, 2)
    assert batch["x"].shape == (2, 1, 8, 8) and batch["y"].shape == (2, 3, 8, 8)


def test_aligned_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist.*ROOT/train/"):
        aligned(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no train/ folder"):
        aligned(tmp_path / "empty")
    (tmp_path / "empty" / "train").mkdir()
    (tmp_path / "empty" / "train" / "notes.txt").write_text("")
    with pytest.raises(DataError) as raised:
        aligned(tmp_path / "empty")
    assert "holds 0 images (1 other files ignored)" in str(raised.value)
    assert "side by side" in str(raised.value)
    with pytest.raises(DataError, match="exactly 2 distinct image variables"):
        aligned(tmp_path, {"x": IMAGE})


def test_aligned_refuses_a_narrow_image_by_name(tmp_path):
    make_aligned(tmp_path, train=1)
    write_solid(tmp_path / "train" / "tall.png", (1, 2, 3), size=(10, 20))
    dataset = aligned(tmp_path)  # files are read lazily
    with pytest.raises(DataError) as raised:
        dataset.batch(0, 2)
    message = str(raised.value)
    assert "tall.png is 10x20" in message and "at least as wide as it is tall" in message


# ----- classes

CLASSES = {"x": IMAGE, "c": Kind("label", 3)}
CLASS_LABELS = {"c": "class(x)"}


def make_classes(root: Path, counts: dict[str, int], split: str = "train") -> None:
    # Red encodes the class (its sorted position), green the file index, blue the split.
    blue = {"train": 0, "val": 100, "test": 200}[split]
    for position, name in enumerate(sorted(counts)):
        for index in range(counts[name]):
            write_solid(root / split / name / f"{index:02d}.png", (60 * position, 10 * index, blue))


def classes(root: Path, variables=None, labels=None, **options):
    config = {"folder": str(root), "layout": "classes", "labels": labels or CLASS_LABELS, **options}
    return open_dataset(config, variables or CLASSES, 8)


def test_classes_round_trip(tmp_path):
    make_classes(tmp_path, {"dog": 2, "cat": 3, "emu": 1})
    dataset = classes(tmp_path)
    assert isinstance(dataset, ClassFolderDataset)
    assert dataset.class_names == ("cat", "dog", "emu")  # sorted: cat 0, dog 1, emu 2
    assert len(dataset) == 6
    batch = dataset.batch(0, 6)
    assert batch["x"].shape == (6, 3, 8, 8) and batch["c"].dtype == torch.int64
    red = as_pixels(batch["x"])[:, 0, 0, 0]
    assert torch.equal(batch["c"], (red / 60).long())  # every image carries its folder's label
    assert sorted(batch["c"].tolist()) == [0, 0, 0, 1, 1, 2]
    assert torch.equal(dataset.batch(3, 4)["c"], classes(tmp_path).batch(3, 4)["c"])
    held_out = dataset.held_out(6)
    # From train/ (no val/ or test/), going round the classes.
    assert held_out["c"].tolist() == [0, 1, 2, 0, 1, 0]
    assert torch.equal(held_out["c"], (as_pixels(held_out["x"])[:, 0, 0, 0] / 60).long())
    assert "3 classes (cat, dog, emu)" in dataset.describe()


def test_classes_held_out_from_val_keeps_training_indices(tmp_path):
    make_classes(tmp_path, {"a": 1, "b": 1, "c": 1})
    make_classes(tmp_path, {"a": 2, "c": 2}, split="val")  # a subset of the classes
    dataset = classes(tmp_path, held_out={"truth": "class(x)"})
    held_out = dataset.held_out(8)
    assert held_out["c"].tolist() == [0, 2, 0, 2]
    assert torch.equal(held_out["truth"], held_out["c"])
    assert (as_pixels(held_out["x"])[:, 2] == 100).all()
    assert dataset.held_out_kinds == {"truth": Kind("label", 3)}


def test_classes_for_stargan_domains(tmp_path):
    make_classes(tmp_path, {"angry": 2, "happy": 2, "sad": 2, "neutral": 2})
    dataset = classes(tmp_path, {"x": IMAGE, "c_s": Kind("label", 4)}, {"c_s": "class(x)"})
    assert dataset.batch(0, 8)["c_s"].shape == (8,)


def test_classes_without_labels_gives_images_only(tmp_path):
    make_classes(tmp_path, {"a": 2, "b": 2})
    dataset = open_dataset({"folder": str(tmp_path), "layout": "classes"}, ["x"], 8)
    assert list(dataset.batch(0, 2)) == ["x"]


def test_classes_errors(tmp_path):
    make_classes(tmp_path / "one", {"only": 2})
    with pytest.raises(DataError) as raised:
        classes(tmp_path / "one")
    assert "1 class folders (only 'only')" in str(raised.value) and "at least 2" in str(raised.value)

    make_classes(tmp_path / "hole", {"a": 2, "b": 1})
    for stray in (tmp_path / "hole" / "train" / "b").iterdir():
        stray.unlink()
    with pytest.raises(DataError) as raised:
        classes(tmp_path / "hole")
    assert "class folder" in str(raised.value) and "b holds 0 images" in str(raised.value)

    make_classes(tmp_path / "loose", {"a": 1, "b": 1})
    write_solid(tmp_path / "loose" / "train" / "stray.png", (0, 0, 0))
    with pytest.raises(DataError, match="1 images outside class folders \\(stray.png\\)"):
        classes(tmp_path / "loose")

    make_classes(tmp_path / "new", {"a": 1, "b": 1, "c": 1})
    make_classes(tmp_path / "new", {"a": 1, "z": 1}, split="test")
    with pytest.raises(DataError, match="class folders that train/ lacks \\(z\\)"):
        classes(tmp_path / "new")

    with pytest.raises(DataError, match="has no train/ folder"):
        (tmp_path / "bare").mkdir()
        classes(tmp_path / "bare")

    make_classes(tmp_path / "ok", {"a": 1, "b": 1})
    with pytest.raises(DataError) as raised:
        classes(tmp_path / "ok")  # label(3) but 2 classes
    assert "dataset.labels.c: class(x) gives 2 classes, but the spec declares c as label(3)" in str(raised.value)
    with pytest.raises(DataError, match="exactly 1 image variable"):
        classes(tmp_path / "ok", {"x": IMAGE, "y": IMAGE, "c": Kind("label", 2)})
    with pytest.raises(DataError) as raised:
        classes(tmp_path / "ok", {"x": IMAGE, "c": Kind("label", 2)}, {"c": "shape(x)"})
    assert "unknown function 'shape'" in str(raised.value) and "class(IMAGE)" in str(raised.value)
