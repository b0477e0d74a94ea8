"""Image folders in the CycleGAN-repository layout, read lazily per batch.

    ROOT/trainA/  ROOT/trainB/    training images of domain A and domain B (required, non-empty)
    ROOT/testA/   ROOT/testB/     held-out images (optional)

This is `layout: unaligned`, the default; `aligned.py` (pix2pix side-by-side pairs) and
`classes.py` (class sub-folders) hold the other layouts. All three find and read images as
image_folder.py says, and share its constructor.

Pairs are matched by name: two files are a pair when their relative paths without suffix agree
(`trainA/0001.jpg` and `trainB/0001.png`). Paired training requires trainA and trainB to pair up
one to one. Held-out samples come from testA/testB, or from trainA/trainB where a test folder is
missing or empty; they count as paired ground truth only when testA and testB pair up one to one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from lossgraph.data.dataset import DOMAINS
from lossgraph.data.image_folder import (
    IMAGE_SUFFIXES,
    SUFFIX_NAMES,
    ImageFolderDataset,
    list_images,
    load_image,
    two_images,
)
from lossgraph.language.errors import DataError

LAYOUT = f"ROOT/trainA/, ROOT/trainB/ (and optionally ROOT/testA/, ROOT/testB/) holding {SUFFIX_NAMES} images"

# the reading functions, for callers that import them from here (they lived here before image_folder.py)
__all__ = ["FolderDataset", "IMAGE_SUFFIXES", "LAYOUT", "list_images", "load_image", "pair_key"]

DomainFiles = tuple[list[Path], list[Path]]  # image files of domain A and of domain B


def pair_key(path: Path, folder: Path) -> str:
    return path.relative_to(folder).with_suffix("").as_posix()


class FolderDataset(ImageFolderDataset):
    """A CycleGAN-layout folder of images (see module docstring): `layout: unaligned`."""

    LAYOUT = LAYOUT

    def check_images(self) -> None:
        two_images(self, "unaligned", "trainA/ and trainB/")

    # ----- listing

    def find_files(self) -> None:
        self.train_files = tuple(self.required_images(f"train{domain}") for domain in "AB")
        if self.pairing == "paired":
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

    def load_items(self, indices: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            image: self.read_images([files[index] for index in indices[image].tolist()], self.kinds[image].size)
            for image, files in zip(self.images, self.train_files)
        }

    def load_held_out(self, count: int) -> dict[str, torch.Tensor]:
        return {
            image: self.read_images(files[:count], self.kinds[image].size)
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
            f"{', '.join(notes)}, {size}x{size}{self.augment_note()}"
        )
