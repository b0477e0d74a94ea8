"""Image folders in the CycleGAN layout (lossgraph/data/folders.py), built from small PNGs."""

from pathlib import Path

import numpy
import pytest
import torch
from PIL import Image

from lossgraph.data import open_dataset
from lossgraph.data import image_folder
from lossgraph.data.folders import FolderDataset
from lossgraph.language.errors import DataError

UNPAIRED = {"pairing": "unpaired"}


def write_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (20, 12)) -> None:
    """A solid image, so its colour survives any resize and crop and identifies it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = numpy.zeros((size[1], size[0], 3), dtype=numpy.uint8)
    pixels[:] = colour
    Image.fromarray(pixels).save(path)


def make_layout(root: Path, counts: dict[str, int], suffix: str = ".png") -> None:
    for folder, count in counts.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            # The red channel encodes the domain, green the file index.
            red = {"trainA": 0, "trainB": 60, "testA": 120, "testB": 180}[folder]
            write_image(root / folder / f"{index:03d}{suffix}", (red, 10 * index, 255))


def open_folder(root: Path, pairing: str = "unpaired", image_size: int = 8):
    return open_dataset({"folder": str(root), "pairing": pairing}, ["x", "y"], image_size)


def as_pixels(images: torch.Tensor) -> torch.Tensor:
    return ((images + 1) * 127.5).round()


def test_round_trip(tmp_path):
    make_layout(tmp_path, {"trainA": 3, "trainB": 5, "testA": 2, "testB": 2})
    dataset = open_folder(tmp_path)
    assert isinstance(dataset, FolderDataset)
    assert len(dataset) == 5  # the larger domain sets the epoch
    batch = dataset.batch(0, 4)
    for images in batch.values():
        assert images.shape == (4, 3, 8, 8)
        assert images.min() >= -1 and images.max() <= 1
    # Colours survive resizing, cropping and scaling to [-1, 1].
    assert (as_pixels(batch["x"])[:, 0] == 0).all()
    assert (as_pixels(batch["y"])[:, 0] == 60).all()
    assert (as_pixels(batch["x"])[:, 2] == 255).all()
    # Over one epoch of domain B every image appears once.
    greens = as_pixels(dataset.batch(0, 5)["y"])[:, 1, 0, 0]
    assert sorted(greens.tolist()) == [0, 10, 20, 30, 40]
    held_out = dataset.held_out(8)
    assert held_out["x"].shape == (2, 3, 8, 8)  # at most what testA and testB hold
    assert (as_pixels(held_out["x"])[:, 0] == 120).all()
    assert (as_pixels(held_out["y"])[:, 0] == 180).all()
    assert dataset.paired_held_out  # testA and testB hold the same names
    assert torch.equal(dataset.batch(3, 4)["x"], open_folder(tmp_path).batch(3, 4)["x"])
    assert "trainA 3" in dataset.describe() and "trainB 5" in dataset.describe()


def test_resize_keeps_the_centre_of_a_non_square_image(tmp_path):
    pixels = numpy.zeros((10, 30, 3), dtype=numpy.uint8)
    pixels[:, 10:20] = 255  # a white centre third between black sides
    for folder in ("trainA", "trainB"):
        (tmp_path / folder).mkdir()
        Image.fromarray(pixels).save(tmp_path / folder / "wide.png")
    images = open_folder(tmp_path, image_size=10).batch(0, 1)["x"]
    assert images.shape == (1, 3, 10, 10)
    assert (images[:, :, :, 2:8] > 0.9).all()


def test_suffixes_are_case_insensitive_and_other_files_ignored(tmp_path):
    write_image(tmp_path / "trainA" / "one.PNG", (1, 2, 3))
    write_image(tmp_path / "trainA" / "two.JPeG", (1, 2, 3))
    write_image(tmp_path / "trainA" / "nested" / "three.bmp", (1, 2, 3))
    (tmp_path / "trainA" / "notes.txt").write_text("not an image")
    (tmp_path / "trainA" / "._one.png").write_bytes(b"AppleDouble junk")
    write_image(tmp_path / "trainB" / "four.webp", (1, 2, 3))
    dataset = open_folder(tmp_path)
    assert dataset.domain_sizes == (3, 1)


def test_missing_test_folders_fall_back_to_training_images(tmp_path):
    make_layout(tmp_path, {"trainA": 3, "trainB": 3})
    dataset = open_folder(tmp_path)
    assert not dataset.paired_held_out
    held_out = dataset.held_out(2)
    assert (as_pixels(held_out["x"])[:, 0] == 0).all()
    assert (as_pixels(held_out["y"])[:, 0] == 60).all()
    assert "held-out A from trainA" in dataset.describe()


def test_test_folders_with_different_names_are_not_paired(tmp_path):
    make_layout(tmp_path, {"trainA": 2, "trainB": 2, "testA": 2})
    write_image(tmp_path / "testB" / "other.png", (1, 2, 3))
    assert not open_folder(tmp_path).paired_held_out


def test_paired_folders_match_files_by_name(tmp_path):
    for index, name in enumerate(["b", "a", "c"]):
        write_image(tmp_path / "trainA" / f"{name}.png", (0, 40 * index, 0))
        write_image(tmp_path / "trainB" / f"{name}.jpg", (0, 40 * index, 0))
    dataset = open_folder(tmp_path, "paired")
    batch = dataset.batch(0, 3)
    # JPEG is lossy, so compare the green channel loosely.
    assert (as_pixels(batch["x"])[:, 1] - as_pixels(batch["y"])[:, 1]).abs().max() <= 3


def test_paired_folders_with_unmatched_names_are_refused(tmp_path):
    make_layout(tmp_path, {"trainA": 3, "trainB": 2})
    with pytest.raises(DataError) as raised:
        open_folder(tmp_path, "paired")
    message = str(raised.value)
    for part in ("pairing 'paired'", "trainA has 3 images", "trainB 2", "only in trainA (002)"):
        assert part in message, (part, message)


def test_relative_folder_resolves_against_base_dir(tmp_path):
    make_layout(tmp_path / "photos", {"trainA": 1, "trainB": 1})
    config = {"folder": "photos", "pairing": "unpaired"}
    dataset = open_dataset(config, ["x", "y"], 8, base_dir=tmp_path)
    assert dataset.root == tmp_path / "photos"


def test_images_are_read_lazily(tmp_path):
    make_layout(tmp_path, {"trainA": 2, "trainB": 2})
    (tmp_path / "trainA" / "zzz.png").write_bytes(b"not a png")
    dataset = open_folder(tmp_path)  # opening lists files only, so the bad one goes unnoticed
    with pytest.raises(DataError):
        dataset.batch(0, 3)


# ----- every DataError a user can meet, with its message


def test_missing_root(tmp_path):
    with pytest.raises(DataError) as raised:
        open_folder(tmp_path / "nowhere")
    message = str(raised.value)
    assert "nowhere does not exist" in message
    assert "trainA" in message and "trainB" in message  # the expected layout


def test_root_that_is_a_file(tmp_path):
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(DataError, match="is not a folder"):
        open_folder(tmp_path / "file.png")


def test_missing_train_a(tmp_path):
    make_layout(tmp_path, {"trainB": 2})
    with pytest.raises(DataError) as raised:
        open_folder(tmp_path)
    message = str(raised.value)
    assert "no trainA/ folder" in message
    assert "ROOT/trainA/, ROOT/trainB/" in message


def test_empty_train_b(tmp_path):
    make_layout(tmp_path, {"trainA": 2})
    (tmp_path / "trainB").mkdir()
    (tmp_path / "trainB" / "readme.txt").write_text("images go here")
    with pytest.raises(DataError) as raised:
        open_folder(tmp_path)
    message = str(raised.value)
    assert "trainB holds 0 images (1 other files ignored)" in message
    assert "png, jpg, jpeg, bmp, webp" in message


@pytest.mark.parametrize("content", [b"definitely not an image", b""])
def test_corrupt_image_is_named(tmp_path, content):
    make_layout(tmp_path, {"trainA": 1, "trainB": 1})
    broken = tmp_path / "trainA" / "000.png"
    broken.write_bytes(content)
    dataset = open_folder(tmp_path)
    with pytest.raises(DataError) as raised:
        dataset.batch(0, 1)
    message = str(raised.value)
    assert f"cannot read image {broken}" in message


def test_truncated_image_is_named(tmp_path):
    make_layout(tmp_path, {"trainA": 1, "trainB": 1})
    broken = tmp_path / "trainA" / "big.png"
    noise = numpy.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=numpy.uint8)
    Image.fromarray(noise).save(broken)
    broken.write_bytes(broken.read_bytes()[:300])
    dataset = open_folder(tmp_path)
    with pytest.raises(DataError, match="cannot read image .*big.png"):
        for step in range(2):
            dataset.batch(step, 1)


@pytest.mark.parametrize("channels", [3, 1])
def test_a_16_bit_grey_png_is_scaled_not_clipped(tmp_path, channels):
    # Pillow's convert clips 16-bit grey (mode I;16) to 0..255, so mid-grey 32768 read as white
    levels = numpy.array([[0, 257 * 64, 32768, 65535]], dtype=numpy.uint16).repeat(4, axis=0)
    path = tmp_path / "deep.png"
    Image.fromarray(levels).save(path)
    with Image.open(path) as opened:
        assert opened.mode in image_folder.SIXTEEN_BIT_MODES
    pixels = image_folder.as_tensor(image_folder.open_image(path), channels)
    expected = torch.tensor([0.0, 64.0, 127.5, 255.0]) / 127.5 - 1  # 32768 / 257 = 127.5 rounds to 128
    expected[2] = 128 / 127.5 - 1
    assert pixels.shape == (channels, 4, 4)
    assert torch.allclose(pixels[:, 0], expected.expand(channels, 4), atol=1e-6)
    # the resizing path (what training reads) agrees: a uniform 16-bit image keeps its level
    Image.fromarray(numpy.full((10, 14), 257 * 200, dtype=numpy.uint16)).save(path)
    assert torch.allclose(image_folder.load_image(path, 8, channels), torch.full((channels, 8, 8), 200 / 127.5 - 1))
