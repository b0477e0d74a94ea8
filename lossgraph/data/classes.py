"""Labelled images in class sub-folders: `{folder: ROOT, layout: classes, labels: {c: class(x)}}`.

    ROOT/train/<class_name>/   training images of each class (at least 2 classes, none empty)
    ROOT/val/<class_name>/     held-out images (optional); used when it holds images,
    ROOT/test/<class_name>/    else this one (optional), else the training images

This is the torchvision `ImageFolder` layout, and StarGAN's for RaFD-like data (one folder per
domain). The spec reads it through exactly one image variable, and label variables take
`class(IMAGE)`: the index of the image's class folder among the training class names in sorted
order (so `ROOT/train/cat`, `ROOT/train/dog` give cat 0, dog 1); the label variable must have
exactly as many classes, `label(2)` here. Images are found recursively within each class folder
and read as in image_folder.py. Images lying in ROOT/train/ itself, outside any class folder, are
refused rather than silently dropped.

Held-out class folders must be named like training ones (a subset is fine: they keep the
training indices). Held-out samples go round the classes, the first file of every class, then
the second of every class, ..., so even a small held-out batch shows every class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from lossgraph.data.image_folder import (
    HELD_OUT_FOLDERS,
    IMAGE_SUFFIXES,
    SUFFIX_NAMES,
    ImageFolderDataset,
    count_other_files,
    list_images,
)
from lossgraph.data.sources import Source, SourceFunction
from lossgraph.data.variables import quoted
from lossgraph.language.errors import DataError
from lossgraph.language.kinds import Kind

LAYOUT = (
    f"ROOT/train/<class_name>/ for at least 2 classes (and optionally ROOT/val/<class_name>/ or "
    f"ROOT/test/<class_name>/) holding {SUFFIX_NAMES} images"
)


def sample(names: list[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def class_folders(split: Path) -> dict[str, list[Path]]:
    """Image files of each class folder of `split`, by class name in sorted order."""
    folders = sorted(
        (entry for entry in split.iterdir() if entry.is_dir() and not entry.name.startswith(".")),
        key=lambda entry: entry.name,
    )
    loose = [
        entry.name for entry in split.iterdir()
        if entry.is_file() and not entry.name.startswith(".") and entry.name.lower().endswith(IMAGE_SUFFIXES)
    ]
    if loose:
        raise DataError(
            f"dataset folder {split} holds {len(loose)} images outside class folders ({sample(sorted(loose))}); "
            f"layout 'classes' reads only {split}/<class_name>/ sub-folders"
        )
    found = {}
    for folder in folders:
        files = list_images(folder)
        if not files:
            others = count_other_files(folder)
            ignored = f" ({others} other files ignored)" if others else ""
            raise DataError(
                f"class folder {folder} holds 0 images{ignored}; every class needs {SUFFIX_NAMES} images "
                f"(remove the folder if it is not a class)"
            )
        found[folder.name] = files
    return found


class ClassFolderDataset(ImageFolderDataset):
    """Class sub-folders (see module docstring): one image variable and its class labels."""

    FUNCTIONS = {
        "class": SourceFunction("class", "the index of the image's class folder, in sorted name order"),
    }
    LAYOUT = LAYOUT
    LABELS_FROM_FILES = True

    def check_images(self) -> None:
        if len(self.images) != 1:
            raise DataError(
                f"dataset: layout 'classes' provides one domain of labelled images, so the spec needs "
                f"exactly 1 image variable (its labels come from labels: {{c: class(x)}}); got {list(self.images)}"
            )

    @property
    def image(self) -> str:
        """The one image variable."""
        return self.images[0]

    def find_files(self) -> None:
        train = self.required_folder("train")
        by_class = class_folders(train)
        if len(by_class) < 2:
            have = f"only {quoted(by_class)}" if by_class else "none"
            raise DataError(
                f"dataset folder {train} has {len(by_class)} class folders ({have}); layout 'classes' "
                f"needs at least 2, one per class: {LAYOUT}"
            )
        self.class_names = tuple(by_class)
        self.train_files = [path for files in by_class.values() for path in files]
        self.train_labels = torch.tensor(
            [index for index, files in enumerate(by_class.values()) for _ in files], dtype=torch.long
        )
        self.held_out_folder = "train"
        held_out_classes = by_class
        for name in HELD_OUT_FOLDERS:
            folder = self.root / name
            found = class_folders(folder) if folder.is_dir() else {}
            if found:
                unknown = sorted(set(found) - set(by_class))
                if unknown:
                    raise DataError(
                        f"dataset folder {folder} has class folders that train/ lacks ({sample(unknown)}); "
                        f"held-out classes must be training classes ({sample(list(by_class))})"
                    )
                self.held_out_folder, held_out_classes = name, found
                break
        # Round the classes: the first file of each, then the second of each, and so on.
        queues = [(self.class_names.index(name), files) for name, files in held_out_classes.items()]
        order = [(label, files[rank]) for rank in range(max(len(files) for _, files in queues))
                 for label, files in queues if rank < len(files)]
        self.held_out_files = [path for _, path in order]
        self.held_out_labels = torch.tensor([label for label, _ in order], dtype=torch.long)

    def source_kind(self, source: Source, key: str) -> Kind:
        if source.function == "class":
            return Kind("label", len(self.class_names))
        return super().source_kind(source, key)

    @property
    def stream_sizes(self) -> dict[str, int]:
        return {"A": len(self.train_files)}

    def stream_of(self, variable: str) -> str:
        return "A"

    @property
    def held_out_size(self) -> int:
        return len(self.held_out_files)

    def _load(self, paths: list[Path]) -> torch.Tensor:
        return self.read_images(paths, self.kinds[self.image].size)

    def _with_labels(self, images: torch.Tensor, labels: torch.Tensor, names: Mapping[str, Source]) -> dict[str, torch.Tensor]:
        loaded = {self.image: images}
        for name in names:  # every source here is class(image)
            loaded[name] = labels.clone()
        return loaded

    def load_items(self, indices: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        items = indices[self.image]
        images = self._load([self.train_files[index] for index in items.tolist()])
        return self._with_labels(images, self.train_labels[items], self.sources)

    def load_held_out(self, count: int) -> dict[str, torch.Tensor]:
        images = self._load(self.held_out_files[:count])
        return self._with_labels(images, self.held_out_labels[:count], {**self.sources, **self.extras})

    def describe(self) -> str:
        size = self.image_size
        held_out = f"held-out {len(self.held_out_files)} from {self.held_out_folder}/"
        sources = self.describe_sources()
        return (
            f"folder {self.root} (classes): train {len(self.train_files)} images in "
            f"{len(self.class_names)} classes ({sample(list(self.class_names))}), {held_out}, "
            f"{size}x{size}{self.augment_note()}{', ' + sources if sources else ''}"
        )
