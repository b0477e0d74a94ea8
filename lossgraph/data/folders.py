"""Image folders in the CycleGAN-repository layout, read lazily per batch.

    ROOT/trainA/  ROOT/trainB/    training images of domain A and domain B (required, non-empty)
    ROOT/testA/   ROOT/testB/     held-out images (optional)

This is `layout: unaligned`, the default; `aligned.py` (pix2pix side-by-side pairs) and
`classes.py` (class sub-folders) hold the other layouts and share this module's image reading.

Images are files with a suffix in `IMAGE_SUFFIXES` (any case), found recursively and sorted by
their path relative to the domain folder; names starting with a dot are skipped (macOS writes
`._name.png` companions that are not images). Each is decoded with Pillow when a batch needs it,
turned upright by its EXIF orientation, converted to RGB (or grey for an `image(1)` variable),
resized so its shorter side is `image_size`, centre-cropped to a square and scaled to [-1, 1].

Pairs are matched by name: two files are a pair when their relative paths without suffix agree
(`trainA/0001.jpg` and `trainB/0001.png`). Paired training requires trainA and trainB to pair up
one to one. Held-out samples come from testA/testB, or from trainA/trainB where a test folder is
missing or empty; they count as paired ground truth only when testA and testB pair up one to one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy
import torch
from PIL import Image, ImageOps

from lossgraph.data.dataset import DOMAINS, Dataset
from lossgraph.language.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SUFFIX_NAMES = ", ".join(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)
LAYOUT = f"ROOT/trainA/, ROOT/trainB/ (and optionally ROOT/testA/, ROOT/testB/) holding {SUFFIX_NAMES} images"
# Decoded images are kept until this budget is spent, so small datasets are decoded only once.
CACHE_BYTES = 256 * 2**20

DomainFiles = tuple[list[Path], list[Path]]  # image files of domain A and of domain B


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


def pair_key(path: Path, folder: Path) -> str:
    return path.relative_to(folder).with_suffix("").as_posix()


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


def to_tensor(image: Image.Image, image_size: int, channels: int = 3) -> torch.Tensor:
    """A decoded image as (channels, image_size, image_size) float32 in [-1, 1].

    Resized so its shorter side is `image_size`, then centre-cropped to a square.
    """
    image = image.convert("RGB" if channels == 3 else "L")
    width, height = image.size
    scale = image_size / min(width, height)
    resized = (max(image_size, round(width * scale)), max(image_size, round(height * scale)))
    image = image.resize(resized, Image.Resampling.BICUBIC)
    left = (resized[0] - image_size) // 2
    top = (resized[1] - image_size) // 2
    image = image.crop((left, top, left + image_size, top + image_size))
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


class FolderDataset(Dataset):
    """A CycleGAN-layout folder of images (see module docstring): `layout: unaligned`."""

    NO_LABELS_HINT = "; labelled images need layout: classes (ROOT/train/<class_name>/*.png)"

    def __init__(
        self,
        root: str | os.PathLike,
        variables: Any,
        image_size: int,
        seed: int = 0,
        pairing: str = "unpaired",
        labels: Mapping[str, str] | None = None,
        held_out: Mapping[str, str] | None = None,
    ):
        super().__init__(variables, image_size, seed, pairing)
        two_images(self, "unaligned", "trainA/ and trainB/")
        self.bind(labels, held_out)
        self.root = Path(root)
        check_root(self.root, LAYOUT)
        self.train_files = tuple(self._required_domain(f"train{domain}") for domain in "AB")
        if pairing == "paired":
            self.train_files = self._paired(self.train_files, "train")

        test_files = tuple(self._optional_domain(f"test{domain}") for domain in "AB")
        self.has_test = tuple(bool(files) for files in test_files)
        paired_test_files = self._pair_up(test_files, "test") if all(self.has_test) else None
        self.paired_held_out = paired_test_files is not None
        if paired_test_files is not None:
            test_files = paired_test_files
        self.held_out_files = tuple(
            test if test else train for test, train in zip(test_files, self.train_files)
        )
        self._cache = ImageCache()

    # ----- listing

    def _required_domain(self, name: str) -> list[Path]:
        folder = self.root / name
        if not folder.is_dir():
            raise DataError(f"dataset folder {self.root} has no {name}/ folder; expected the layout {LAYOUT}")
        files = list_images(folder)
        if not files:
            others = count_other_files(folder)
            ignored = f" ({others} other files ignored)" if others else ""
            raise DataError(
                f"dataset folder {folder} holds 0 images{ignored}; expected the layout {LAYOUT}"
            )
        return files

    def _optional_domain(self, name: str) -> list[Path]:
        folder = self.root / name
        return list_images(folder) if folder.is_dir() else []

    def _keys(self, files: DomainFiles, split: str) -> tuple[list[str], list[str]]:
        """The pair key of every file, per domain."""
        return tuple(
            [pair_key(path, self.root / f"{split}{domain}") for path in domain_files]
            for domain, domain_files in zip("AB", files)
        )

    def _pair_up(self, files: DomainFiles, split: str) -> DomainFiles | None:
        """The two lists in matching order when their names pair up one to one, else None."""
        keys = self._keys(files, split)
        by_key = [dict(zip(domain_keys, domain_files)) for domain_keys, domain_files in zip(keys, files)]
        one_to_one = all(len(found) == len(domain_files) for found, domain_files in zip(by_key, files))
        if not one_to_one or by_key[0].keys() != by_key[1].keys():
            return None
        names = sorted(by_key[0])
        return [by_key[0][name] for name in names], [by_key[1][name] for name in names]

    def _paired(self, files: DomainFiles, split: str) -> DomainFiles:
        paired = self._pair_up(files, split)
        if paired is not None:
            return paired
        keys_a, keys_b = self._keys(files, split)
        only_a = sorted(set(keys_a) - set(keys_b))
        only_b = sorted(set(keys_b) - set(keys_a))
        # Two files in one folder can share a key when only their suffixes differ.
        duplicates = sorted(
            {key for domain_keys in (keys_a, keys_b) for key in domain_keys if domain_keys.count(key) > 1}
        )

        def sample(names: list[str]) -> str:
            shown = ", ".join(names[:5])
            return shown + (", ..." if len(names) > 5 else "")

        details = []
        if only_a:
            details.append(f"{len(only_a)} only in {split}A ({sample(only_a)})")
        if only_b:
            details.append(f"{len(only_b)} only in {split}B ({sample(only_b)})")
        if duplicates:
            details.append(f"{len(duplicates)} names used twice in one folder ({sample(duplicates)})")
        raise DataError(
            f"dataset folder {self.root}: pairing 'paired' needs {split}A and {split}B to hold the "
            f"same file names (suffix aside), but {split}A has {len(files[0])} images and "
            f"{split}B {len(files[1])}: " + "; ".join(details)
        )

    # ----- Dataset interface

    @property
    def domain_sizes(self) -> tuple[int, int]:
        return (len(self.train_files[0]), len(self.train_files[1]))

    @property
    def stream_sizes(self) -> dict[str, int]:
        if self.pairing == "paired":
            return {"pairs": self.domain_sizes[0]}
        return dict(zip(DOMAINS, self.domain_sizes))

    def stream_of(self, variable: str) -> str:
        return "pairs" if self.pairing == "paired" else DOMAINS[self.images.index(variable)]

    @property
    def held_out_size(self) -> int:
        return min(len(files) for files in self.held_out_files)

    def _load_all(self, paths: list[Path], channels: int) -> torch.Tensor:
        size = self.image_size
        return torch.stack([self._cache.get((path, channels), lambda path=path: load_image(path, size, channels))
                            for path in paths])

    def load_train(self, indices: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            image: self._load_all([files[index] for index in indices[image].tolist()], self.kinds[image].size)
            for image, files in zip(self.images, self.train_files)
        }

    def load_held_out(self, count: int) -> dict[str, torch.Tensor]:
        return {
            image: self._load_all(files[:count], self.kinds[image].size)
            for image, files in zip(self.images, self.held_out_files)
        }

    def describe(self) -> str:
        counts = [f"train{domain} {len(files)}" for domain, files in zip("AB", self.train_files)]
        notes = []
        for domain, files, has_test in zip("AB", self.held_out_files, self.has_test):
            if has_test:
                counts.append(f"test{domain} {len(files)}")
            else:
                notes.append(f"held-out {domain} from train{domain}")
        notes.append("held-out paired" if self.paired_held_out else "held-out not paired")
        size = self.image_size
        return (
            f"folder {self.root}: {', '.join(counts)} images, {self.pairing}, "
            f"{', '.join(notes)}, {size}x{size}"
        )
