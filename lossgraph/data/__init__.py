"""Training data for a spec: `open_dataset` turns the spec's `dataset:` mapping into a `Dataset`.

    from lossgraph.data import open_dataset
    dataset = open_dataset({"builtin": "shapes", "pairing": "unpaired"}, ["x", "y"], image_size=32)
    batch = dataset.batch(step, batch_size)    # {"x": (B, 3, 32, 32), "y": ...} in [-1, 1]
    truth = dataset.held_out(16)               # fixed; x[i], y[i] the same scene if paired_held_out
    len(dataset)                               # samples per epoch: the larger domain's count

The mapping has exactly one source key and a pairing:

    builtin: shapes      procedural scenes (lossgraph/data/shapes.py); optional `size` (training
                         scenes, default 4096) and `test_size` (held-out scenes, default 64)
    folder: PATH         the CycleGAN layout ROOT/trainA, trainB, testA, testB (folders.py); a
                         relative PATH is resolved against `base_dir` (pass the spec file's folder)
                         or, without one, against the current directory
    pairing: paired | unpaired
                         paired: x[i] and y[i] are the same scene (folders: the same file name);
                         unpaired: each variable follows its own shuffled order

The image variables map in order onto the domains: the first reads domain A, the second domain B.
Every mistake in the mapping is a `DataError` that names the key and the valid choices.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from lossgraph.data.dataset import DOMAINS, PAIRINGS, Dataset
from lossgraph.data.folders import FolderDataset
from lossgraph.data.shapes import ShapesDataset
from lossgraph.errors import DataError, did_you_mean

__all__ = ["Dataset", "FolderDataset", "ShapesDataset", "open_dataset", "BUILTINS"]

BUILTINS = {"shapes": ShapesDataset}
# Keys each kind of source accepts, and the defaults of the optional ones.
BUILTIN_KEYS = {"builtin": None, "pairing": None, "size": 4096, "test_size": 64}
FOLDER_KEYS = {"folder": None, "pairing": None}
EXAMPLE = "{builtin: shapes, pairing: unpaired}"


def open_dataset(
    config: Mapping[str, Any],
    variables: list[str] | tuple[str, ...],
    image_size: int,
    seed: int = 0,
    base_dir: str | os.PathLike | None = None,
) -> Dataset:
    """The dataset that `config` (a spec's `dataset:` mapping) describes; see the module docstring."""
    if not isinstance(config, Mapping):
        raise DataError(f"dataset: expected a mapping such as {EXAMPLE}, got {type(config).__name__}")
    if "builtin" in config and "folder" in config:
        raise DataError("dataset: give either 'builtin' or 'folder', not both")
    if "builtin" not in config and "folder" not in config:
        raise DataError(
            f"dataset: needs a source: 'builtin' (one of {quoted(BUILTINS)}) or 'folder' (a path); "
            f"for example {EXAMPLE}"
        )
    source = "builtin" if "builtin" in config else "folder"
    accepted = BUILTIN_KEYS if source == "builtin" else FOLDER_KEYS
    check_keys(config, accepted, source)
    options = {**accepted, **config}

    pairing = options["pairing"]
    if pairing is None:
        raise DataError(f"dataset: missing key 'pairing'; expected one of {quoted(PAIRINGS)}")
    if pairing not in PAIRINGS:
        raise DataError(f"dataset.pairing: {pairing!r} is not valid; {suggest(str(pairing), PAIRINGS)}")
    variables = check_variables(variables)
    if not is_integer(image_size) or image_size < 8:
        raise DataError(f"dataset: image size must be an integer of at least 8, got {image_size!r}")

    if source == "builtin":
        name = options["builtin"]
        if name not in BUILTINS:
            hint = suggest(str(name), BUILTINS)
            raise DataError(f"dataset.builtin: unknown builtin dataset {name!r}; {hint}")
        for key in ("size", "test_size"):
            if not is_integer(options[key]) or options[key] < 1:
                raise DataError(f"dataset.{key}: expected a positive integer, got {options[key]!r}")
        return BUILTINS[name](
            variables,
            image_size,
            seed=seed,
            pairing=pairing,
            size=options["size"],
            test_size=options["test_size"],
        )

    folder = options["folder"]
    if not isinstance(folder, (str, os.PathLike)) or not str(folder).strip():
        raise DataError(f"dataset.folder: expected a path to a folder, got {folder!r}")
    root = Path(folder).expanduser()
    if not root.is_absolute():
        root = Path(base_dir if base_dir is not None else os.getcwd()) / root
    return FolderDataset(root, variables, image_size, seed=seed, pairing=pairing)


def check_keys(config: Mapping[str, Any], accepted: Mapping[str, Any], source: str) -> None:
    other_source_keys = (set(BUILTIN_KEYS) | set(FOLDER_KEYS)) - set(accepted)
    takes = f"a {source} dataset takes {quoted(accepted)}"
    for key in config:
        if key in other_source_keys:
            other = "builtin" if source == "folder" else "folder"
            raise DataError(
                f"dataset.{key}: applies only to {other} datasets; {takes}"
            )
        if key not in accepted:
            hint = did_you_mean(str(key), accepted) or ""
            close = f" ({hint})" if hint.startswith("did you mean") else ""
            raise DataError(f"dataset: unknown key {key!r}{close}; {takes}")


def check_variables(variables: list[str] | tuple[str, ...]) -> tuple[str, str]:
    names = tuple(variables)
    valid = all(isinstance(name, str) and name for name in names)
    if len(names) != len(DOMAINS) or not valid or len(set(names)) != len(names):
        raise DataError(
            f"dataset: provides {len(DOMAINS)} image domains (A, B), so the spec needs exactly "
            f"{len(DOMAINS)} distinct image variables (the first reads A, the second B); got {list(names)}"
        )
    return names


def is_integer(value: Any) -> bool:
    # YAML's `true` is a bool, and bool is an int subclass: reject it explicitly.
    return isinstance(value, int) and not isinstance(value, bool)


def quoted(names: Any) -> str:
    return ", ".join(f"'{name}'" for name in names)


def suggest(name: str, choices: Any) -> str:
    hint = did_you_mean(name, choices)
    valid = f"expected one of {quoted(choices)}"
    return valid if hint is None or hint.startswith("expected") else f"{hint} ({valid})"
