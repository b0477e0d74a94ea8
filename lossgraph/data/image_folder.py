"""What every image-folder layout shares: finding and reading image files, and one constructor.

Images are files with a suffix in `IMAGE_SUFFIXES` (any case), found recursively and sorted by
their path relative to the folder searched; names starting with a dot are skipped (macOS writes
`._name.png` companions that are not images). Each is decoded with Pillow when a batch needs it,
turned upright by its EXIF orientation, converted to RGB (or grey for an `image(1)` variable;
16-bit grey scaled to 8 bits),
resized so its shorter side is the dataset's load size (`load_size`, else `image_size`),
centre-cropped to a square and scaled to [-1, 1]; augment.py then cuts training crops from it.

`ImageFolderDataset` is the constructor of the three layouts (folders.py unaligned, aligned.py,
classes.py): it checks the spec's image variables and label sources, then the root folder, and
lists the layout's files.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy
import torch
from PIL import Image, ImageOps

from lossgraph.data.dataset import Dataset
from lossgraph.language.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SUFFIX_NAMES = ", ".join(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)
# Decoded images are kept until this budget is spent, so small datasets are decoded only once.
CACHE_BYTES = 256 * 2**20
# where the aligned and classes layouts look for held-out images, in order of preference
HELD_OUT_FOLDERS = ("val", "test")


def list_images(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively, in a stable order (sorted relative paths)."""
    found = []
    for directory, subdirectories, names in os.walk(folder):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for name in names:
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                found.append(Path(directory, name))
    return sorted(found, key=lambda path: path.relative_to(folder).as_posix())


def count_other_files(folder: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(folder)) - len(list_images(folder))


def open_image(path: Path) -> Image.Image:
    """The image at `path`, upright by its EXIF orientation; a DataError names an unreadable file."""
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
            return image
    # Pillow reports unreadable files as OSError (UnidentifiedImageError is one), a truncated or
    # malformed stream also as ValueError or SyntaxError, and some bombs as DecompressionBombError.
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot read image {path}: {error}") from None


# Pillow's modes of 16-bit grey (a 16-bit PNG opens as one): its `convert` clips them to 0..255
# instead of scaling, which turns all but the darkest pixels white.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def converted(image: Image.Image, channels: int = 3) -> Image.Image:
    """`image` in RGB (3 channels) or grey (1), 16-bit grey scaled to 8 bits (65535 -> 255)."""
    if image.mode in SIXTEEN_BIT_MODES:
        pixels = numpy.asarray(image, dtype=numpy.float64) / 257
        image = Image.fromarray(numpy.clip(numpy.rint(pixels), 0, 255).astype(numpy.uint8))  # 2-D uint8: mode L
    return image.convert("RGB" if channels == 3 else "L")


def to_tensor(image: Image.Image, image_size: int, channels: int = 3) -> torch.Tensor:
    """A decoded image as (channels, image_size, image_size) float32 in [-1, 1].

    Resized so its shorter side is `image_size`, then centre-cropped to a square.
    """
    image = converted(image, channels)
    width, height = image.size
    scale = image_size / min(width, height)
    resized = (max(image_size, round(width * scale)), max(image_size, round(height * scale)))
    image = image.resize(resized, Image.Resampling.BICUBIC)
    left = (resized[0] - image_size) // 2
    top = (resized[1] - image_size) // 2
    return as_tensor(image.crop((left, top, left + image_size, top + image_size)), channels)


def as_tensor(image: Image.Image, channels: int = 3) -> torch.Tensor:
    """A decoded image at its own size as (channels, height, width) float32 in [-1, 1]."""
    image = converted(image, channels)
    pixels = torch.from_numpy(numpy.asarray(image, dtype=numpy.float32))
    if pixels.dim() == 2:
        pixels = pixels.unsqueeze(-1)
    return (pixels.permute(2, 0, 1) / 127.5 - 1).contiguous()


def load_image(path: Path, image_size: int, channels: int = 3) -> torch.Tensor:
    """One image as (channels, image_size, image_size) float32 in [-1, 1]."""
    return to_tensor(open_image(path), image_size, channels)


class ImageCache:
    """Decoded images by key, kept until `CACHE_BYTES` is spent, so small datasets decode once."""

    def __init__(self) -> None:
        self._images: dict[Any, torch.Tensor] = {}
        self._bytes = 0

    def get(self, key: Any, load: Callable[[], torch.Tensor]) -> torch.Tensor:
        image = self._images.get(key)
        if image is None:
            image = load()
            size = image.numel() * image.element_size()
            if self._bytes + size <= CACHE_BYTES:
                self._images[key] = image
                self._bytes += size
        return image


def check_root(root: Path, layout: str) -> None:
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        raise DataError(f"dataset folder {root} {problem}; expected the layout {layout}")


def two_images(dataset: Dataset, layout: str, reads: str) -> None:
    """Refuse anything but exactly two image variables for a two-domain folder layout."""
    if len(dataset.images) != 2:
        raise DataError(
            f"dataset: layout '{layout}' provides 2 image domains ({reads}), so the spec needs exactly "
            f"2 distinct image variables (the first reads A, the second B); got {list(dataset.images)}"
        )


class ImageFolderDataset(Dataset):
    """A dataset of image files under `root`, in the layout a subclass reads.

    A layout sets `LAYOUT` (its description, quoted by every message about the folder) and
    `PAIRING` (its default), and implements `check_images` (the image variables it serves,
    checked before the disk is read) and `find_files` (its training and held-out files, or a
    DataError saying how the folder differs from `LAYOUT`). Label sources are bound before the
    files are listed, or after them for a layout whose sources count them (`LABELS_FROM_FILES`).
    """

    LAYOUT = ""
    PAIRING = "unpaired"
    # Whether the label sources depend on the files found (classes.py: `class(x)` gives as many
    # classes as there are class folders); if not, `labels:` is checked before the disk is read.
    LABELS_FROM_FILES = False
    NO_LABELS_HINT = "; labelled images need layout: classes (ROOT/train/<class_name>/*.png)"

    def __init__(
        self,
        root: str | os.PathLike,
        variables: Any,
        image_size: int,
        seed: int = 0,
        pairing: str | None = None,
        labels: Mapping[str, str] | None = None,
        held_out: Mapping[str, str] | None = None,
        load_size: int | None = None,
        flip: bool = False,
    ):
        super().__init__(variables, image_size, seed, pairing or self.PAIRING, load_size, flip)
        self.check_images()
        if not self.LABELS_FROM_FILES:
            self.bind(labels, held_out)  # the spec's side is checked before the disk is read
        self.root = Path(root)
        check_root(self.root, self.LAYOUT)
        self.find_files()
        if self.LABELS_FROM_FILES:
            self.bind(labels, held_out)
        self._cache = ImageCache()

    def check_images(self) -> None:
        """Refuse image variables this layout cannot serve (a DataError)."""

    @abc.abstractmethod
    def find_files(self) -> None:
        """List the layout's training and held-out files under `self.root`."""

    def required_folder(self, name: str) -> Path:
        """`root/name`, which the layout requires."""
        folder = self.root / name
        if not folder.is_dir():
            raise DataError(f"dataset folder {self.root} has no {name}/ folder; expected the layout {self.LAYOUT}")
        return folder

    def required_images(self, name: str) -> list[Path]:
        """The images under `root/name`, which the layout requires to hold some."""
        folder = self.required_folder(name)
        files = list_images(folder)
        if not files:
            others = count_other_files(folder)
            ignored = f" ({others} other files ignored)" if others else ""
            raise DataError(f"dataset folder {folder} holds 0 images{ignored}; expected the layout {self.LAYOUT}")
        return files

    def read_images(self, paths: list[Path], channels: int) -> torch.Tensor:
        """The images at `paths` as (N, channels, S, S) in [-1, 1], each decoded once while the cache has room."""
        size = self.load_size
        return torch.stack([self._cache.get((path, channels), lambda path=path: load_image(path, size, channels))
                            for path in paths])
