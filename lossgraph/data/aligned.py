"""Aligned pairs in the pix2pix layout: `{folder: ROOT, layout: aligned}`.

    ROOT/train/        training images, each the pair A | B side by side (required, non-empty)
    ROOT/val/          held-out pairs (optional); used when it holds images,
    ROOT/test/         else this one (optional), else the training images

Each file is one pair: its left half is A and its right half B, split at the middle column
(`width // 2`, as pix2pix does). The first image variable reads A and the second B; each half
then goes through the usual reading (image_folder.py): resized so its shorter side is the load size,
centre-cropped, scaled to [-1, 1]; both halves of a pair then get the same training crop and flip. Any width of at least the height is accepted, as pix2pix
accepts any; halves that are not square (a 600x256 file) lose their sides to the centre crop.
A file narrower than it is tall cannot be two side-by-side halves and is refused with a
DataError naming it, when a batch first reads it (files are listed at opening, read lazily).

Pairing defaults to `paired` (x[i] and y[i] are the two halves of one file); `unpaired` draws
the halves independently, for unpaired methods trained on paired data. Held-out samples are
always the two halves of one file, so they are paired ground truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from lossgraph.data.dataset import DOMAINS
from lossgraph.data.image_folder import (
    HELD_OUT_FOLDERS,
    SUFFIX_NAMES,
    ImageFolderDataset,
    list_images,
    open_image,
    to_tensor,
    two_images,
)
from lossgraph.language.errors import DataError

LAYOUT = (
    f"ROOT/train/ (and optionally ROOT/val/ or ROOT/test/) holding {SUFFIX_NAMES} images, "
    f"each A and B side by side"
)


def load_half(path: Path, half: int, image_size: int, channels: int) -> torch.Tensor:
    """The left (`half` 0, A) or right (1, B) half of an aligned pair, as a tensor."""
    image = open_image(path)
    width, height = image.size
    if width < height or width < 2:
        raise DataError(
            f"aligned image {path} is {width}x{height}: layout 'aligned' needs A and B side by side, "
            f"so each image must be at least as wide as it is tall (pix2pix images are twice as wide)"
        )
    middle = width // 2
    box = (0, 0, middle, height) if half == 0 else (middle, 0, width, height)
    return to_tensor(image.crop(box), image_size, channels)


class AlignedFolderDataset(ImageFolderDataset):
    """Side-by-side pairs (see module docstring)."""

    LAYOUT = LAYOUT
    PAIRING = "paired"

    def check_images(self) -> None:
        two_images(self, "aligned", "the left and right halves of each image")

    def find_files(self) -> None:
        self.train_files = self.required_images("train")
        self.held_out_folder = "train"
        self.held_out_files = self.train_files
        for name in HELD_OUT_FOLDERS:
            files = list_images(self.root / name) if (self.root / name).is_dir() else []
            if files:
                self.held_out_folder, self.held_out_files = name, files
                break
        self.paired_held_out = True

    @property
    def stream_sizes(self) -> dict[str, int]:
        count = len(self.train_files)
        return {"pairs": count} if self.pairing == "paired" else {domain: count for domain in DOMAINS}

    def stream_of(self, variable: str) -> str:
        return "pairs" if self.pairing == "paired" else DOMAINS[self.images.index(variable)]

    @property
    def held_out_size(self) -> int:
        return len(self.held_out_files)

    def _load(self, paths: list[Path], image: str) -> torch.Tensor:
        half = self.images.index(image)
        channels = self.kinds[image].size
        size = self.load_size
        return torch.stack([
            self._cache.get((path, half, channels), lambda path=path: load_half(path, half, size, channels))
            for path in paths
        ])

    def load_items(self, indices: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            image: self._load([self.train_files[index] for index in indices[image].tolist()], image)
            for image in self.images
        }

    def load_held_out(self, count: int) -> dict[str, torch.Tensor]:
        return {image: self._load(self.held_out_files[:count], image) for image in self.images}

    def describe(self) -> str:
        size = self.image_size
        held_out = (
            f"held-out {len(self.held_out_files)} from {self.held_out_folder}/"
            if self.held_out_folder != "train" else "held-out from train/"
        )
        return (
            f"folder {self.root} (aligned): train {len(self.train_files)} pairs, {held_out}, "
            f"{self.pairing}, {size}x{size}{self.augment_note()}"
        )
