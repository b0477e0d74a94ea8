"""Training data for a spec: `open_dataset` turns the spec's `dataset:` mapping into a `Dataset`.

    from lossgraph.data import open_dataset
    dataset = open_dataset(spec.dataset, spec.kinds, image_size=32, seed=0, base_dir=spec_folder)
    batch = dataset.batch(step, batch_size)  # every data variable: images (B, C, S, S) float32
                                             # in [-1, 1], labels (B,) int64
    truth = dataset.held_out(16)             # fixed; the data variables, then the held-out extras
    dataset.held_out_kinds                   # {extra name: Kind} of those extras
    len(dataset)                             # samples per epoch: the largest stream's count

`variables` is `{name: kind}`, kind a `lossgraph.kinds.Kind` (or its spec text, "label(3)");
a plain list of names means that many images (`["x", "y"]`, the older call).

## The mapping

Exactly one source key, then options:

    builtin: shapes      procedural scenes (shapes.py); optional `size` (training scenes, default
                         4096) and `test_size` (held-out samples, default 64)
    builtin: photos      patches of public-domain photographs (photos.py; the extra
                         lossgraph[photos]); `task: grade | colorize` (photo_tasks.py, default
                         grade), `photo_size`, `size` (default 4096), `test_size` (default 60)
    folder: PATH         images on disk; a relative PATH is resolved against `base_dir` (pass
                         the spec file's folder) or, without one, against the current directory
    layout: unaligned | aligned | classes          (folders only; default unaligned)
                         unaligned: ROOT/trainA, trainB, testA, testB, the CycleGAN layout (folders.py)
                         aligned:   ROOT/train/*.jpg, each A | B side by side, pix2pix (aligned.py)
                         classes:   ROOT/train/<class_name>/*.png, labelled (classes.py)
    pairing: paired | unpaired
                         paired: the image variables show the same item at each index (x[i] and
                         y[i] one scene, one file name, one side-by-side file); unpaired: each
                         image variable follows its own shuffled order. Required with two or
                         more image variables, except layout aligned (default paired).
    styles: {IMAGE: STYLE | [STYLE, ...] | K, ...}        (builtin shapes only)
                         the style(s) each image variable is drawn in (shapes.STYLES: flat,
                         outlined, slate, meadow, rose; K: the first K). Without it there must be
                         exactly two image variables, drawn flat (the first) and outlined (the
                         second). An image with several styles draws each sample in one of them.
                         An entry naming another image variable ({x_ref: 4, x_ref2: x_ref}, unpaired)
                         draws each sample on a scene of its own in the style that image's sample
                         has: a second image of a domain (StarGAN v2's second reference)
    labels: {LABEL: SOURCE, ...}
                         where each label variable of the spec comes from; every label variable
                         needs one. A label reads the same item as the image it names.
    held_out: {NAME: SOURCE, ...}
                         evaluation-only variables that `held_out()` adds after the data
                         variables (never in `batch()`); a NAME may be a random variable of the
                         spec, so that evaluation uses fixed values for it.

Augmentation, any source (augment.py; as the pix2pix and CycleGAN code preprocess):
    load_size: L         load every image at L x L (folders: shorter side resized to L, centre
                         square; builtin: drawn at L); default the image size
    crop_size: S         cut S x S: at a random position in training, at the centre held out.
                         S is the training image size: the spec's train.image_size follows it
                         (language/dataset_options.py), so pass image_size = S here
    flip: true | false   mirror each training sample left to right with probability 1/2
    The images of one stream (both images of a pair) share each sample's crop and flip.

SOURCEs:
    shape(IMAGE)         builtin shapes: the kind of the main shape of IMAGE's scene, label(3):
                         0 circle, 1 square, 2 triangle
    style(IMAGE)         builtin shapes: the index of IMAGE's style within its `styles:` list, label(K)
    class(IMAGE)         layout classes: the index of IMAGE's class folder in sorted name order,
                         label(number of class folders)
    target_style(IMAGE)  builtin shapes, held_out only: a style index other than IMAGE's own, label(K);
                         over the held-out scenes it goes round all the other styles
    restyle(IMAGE, LABEL)
                         builtin shapes, held_out only: IMAGE's scene drawn in the style LABEL gives
                         (LABEL a style(IMAGE) or target_style(IMAGE) from labels:/held_out:), an
                         image like IMAGE: the ground truth of translating IMAGE into that style
A label variable declared label(K) must get a source with exactly K classes.

## One example per method (built-in data, no download)

Pix2Pix, BicycleGAN (data: {x: image, y: image}):
    dataset: {builtin: shapes, pairing: paired}
    batch: x a scene drawn flat, y the same scene outlined.  held_out: x, y likewise.
    On disk: {folder: facades, layout: aligned}.  Photographs: {builtin: photos, pairing: paired}.

CoGAN, UNIT (data: {x1: image, x2: image}); CycleGAN, DiscoGAN, DualGAN ({x: image, y: image}):
    dataset: {builtin: shapes, pairing: unpaired}
    batch: first image flat, second outlined, independent scenes.  held_out: paired (x[i] and
    y[i] one test scene), so y is the ground truth of translating x.
    On disk: {folder: horse2zebra, pairing: unpaired}.  Photographs: {builtin: photos, pairing: unpaired}.

PixelDA (data: {x_s: image, c_s: label(3), x_t: image}):
    dataset: {builtin: shapes, pairing: unpaired, labels: {c_s: shape(x_s)}, held_out: {c_t: shape(x_t)}}
    batch: x_s flat (source), c_s its main shape's kind, x_t outlined (target, scenes
    independent of x_s's).  held_out: x_s, c_s, x_t, c_t: c_t the true labels of the target
    images x_t, to measure the task network's target accuracy (the held-out scenes are
    paired, so c_t equals c_s).

StarGAN (data: {x: image, c_s: label(4)}; random c_t: label(4)):
    dataset:
      builtin: shapes
      styles: {x: [flat, outlined, slate, meadow]}       # or {x: 4}; K = 4 domains
      labels: {c_s: style(x)}
      held_out: {c_t: target_style(x), y_t: restyle(x, c_t)}
    batch: x a scene in one of the 4 styles (each scene in each style once per epoch), c_s
    that style's index.  held_out: x, c_s, c_t, y_t: sample j shows test scene j // 4 in style
    j % 4 (so samples 4m .. 4m+3 are one scene in every style), c_s = j % 4, c_t a different
    style (fixed), y_t the same scene drawn in style c_t: `E[l1(G(x, c_t) - y_t)]` is the
    translation error against ground truth.
    On disk: {folder: rafd, layout: classes, labels: {c_s: class(x)}}.

Every mistake in the mapping is a `DataError` that names the key and the valid choices.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from lossgraph.data.aligned import AlignedFolderDataset
from lossgraph.data.classes import ClassFolderDataset
from lossgraph.data.dataset import DOMAINS, PAIRINGS, Dataset
from lossgraph.data.variables import as_kinds, quoted, suggest
from lossgraph.data.folders import FolderDataset
from lossgraph.data.photos import PhotoDataset
from lossgraph.data.shapes import ShapesDataset
from lossgraph.language.errors import DataError, did_you_mean

__all__ = [
    "AlignedFolderDataset",
    "ClassFolderDataset",
    "Dataset",
    "FolderDataset",
    "PhotoDataset",
    "ShapesDataset",
    "open_dataset",
    "BUILTINS",
    "FOLDER_KEYS",
    "LAYOUTS",
]

BUILTINS = {"shapes": ShapesDataset, "photos": PhotoDataset}
LAYOUTS = {"unaligned": FolderDataset, "aligned": AlignedFolderDataset, "classes": ClassFolderDataset}
# Keys each kind of source accepts, and the defaults of the optional ones.
COMMON_KEYS = {"pairing": None, "labels": None, "held_out": None, "load_size": None, "crop_size": None, "flip": False}
BUILTIN_KEYS = {"builtin": None, **COMMON_KEYS, "size": 4096, "test_size": 64}
# The keys only one builtin takes, with their defaults (photos: 60 held-out patches, 10 per photograph).
BUILTIN_OWN_KEYS = {"shapes": {"styles": None}, "photos": {"task": "grade", "photo_size": None, "test_size": 60}}
FOLDER_KEYS = {"folder": None, "layout": "unaligned", **COMMON_KEYS}
EXAMPLE = "{builtin: shapes, pairing: unpaired}"


def open_dataset(
    config: Mapping[str, Any],
    variables: Any,
    image_size: int,
    seed: int = 0,
    base_dir: str | os.PathLike | None = None,
) -> Dataset:
    """The dataset that `config` (a spec's `dataset:` mapping) describes; see the module docstring.

    `variables` is {name: Kind} for every data variable of the spec, or a list of image names.
    """
    if not isinstance(config, Mapping):
        raise DataError(f"dataset: expected a mapping such as {EXAMPLE}, got {type(config).__name__}")
    if "builtin" in config and "folder" in config:
        # a derived spec that writes `folder:` merges it into its parent's `builtin:` (mappings merge)
        raise DataError("dataset: give either 'builtin' or 'folder', not both; a spec that extends one "
                        "with the other source removes it with null ({builtin: null, folder: PATH})")
    if "builtin" not in config and "folder" not in config:
        raise DataError(
            f"dataset: needs a source: 'builtin' (one of {quoted(BUILTINS)}) or 'folder' (a path); "
            f"for example {EXAMPLE}"
        )
    source = "builtin" if "builtin" in config else "folder"
    name = config.get("builtin")
    if source == "builtin" and name not in BUILTINS:
        hint = suggest(str(name), BUILTINS)
        raise DataError(f"dataset.builtin: unknown builtin dataset {name!r}; {hint}")
    accepted = {**BUILTIN_KEYS, **BUILTIN_OWN_KEYS[name]} if source == "builtin" else FOLDER_KEYS
    check_keys(config, accepted, source)
    options = {**accepted, **config}

    layout = options.get("layout")
    if source == "folder" and layout not in LAYOUTS:
        raise DataError(f"dataset.layout: {layout!r} is not valid; {suggest(str(layout), LAYOUTS)}")
    two_domains = (source == "builtin" and options.get("styles") is None) or layout in ("unaligned", "aligned")
    if isinstance(variables, (list, tuple)) and two_domains:
        check_variables(variables)
    kinds = as_kinds(variables)
    image_count = sum(kind.kind == "image" for kind in kinds.values())

    pairing = options["pairing"]
    if pairing is None:
        if layout == "aligned":
            pairing = "paired"
        elif image_count >= 2 and layout != "classes":
            raise DataError(
                f"dataset: missing key 'pairing'; expected one of {quoted(PAIRINGS)} (how the "
                f"{image_count} image variables relate)"
            )
        else:
            pairing = "unpaired"  # one image variable: nothing to pair
    if pairing not in PAIRINGS:
        raise DataError(f"dataset.pairing: {pairing!r} is not valid; {suggest(str(pairing), PAIRINGS)}")
    if not is_integer(image_size) or image_size < 8:
        raise DataError(f"dataset: image size must be an integer of at least 8, got {image_size!r}")
    common = {"labels": options["labels"], "held_out": options["held_out"], **augmentation(options, image_size)}

    if source == "builtin":
        for key in ("size", "test_size"):
            if not is_integer(options[key]) or options[key] < 1:
                raise DataError(f"dataset.{key}: expected a positive integer, got {options[key]!r}")
        own = {key: options[key] for key in BUILTIN_OWN_KEYS[name] if key != "test_size"}
        return BUILTINS[name](
            kinds, image_size, seed=seed, pairing=pairing, size=options["size"], test_size=options["test_size"],
            **own, **common,
        )

    folder = options["folder"]
    if not isinstance(folder, (str, os.PathLike)) or not str(folder).strip():
        raise DataError(f"dataset.folder: expected a path to a folder, got {folder!r}")
    root = Path(folder).expanduser()
    if not root.is_absolute():
        root = Path(base_dir if base_dir is not None else os.getcwd()) / root
    return LAYOUTS[layout](root, kinds, image_size, seed=seed, pairing=pairing, **common)


def augmentation(options: Mapping[str, Any], image_size: int) -> dict[str, Any]:
    """The dataset's `load_size` and `flip` (augment.py), checked against `crop_size` and `image_size`.

    A spec's values were checked where they are written (language/dataset_options.py); these
    checks catch a direct call that disagrees with itself.
    """
    crop, load, flip = options["crop_size"], options["load_size"], options["flip"]
    for key, value in (("crop_size", crop), ("load_size", load)):
        if value is not None and (not is_integer(value) or value < 1):
            raise DataError(f"dataset.{key}: expected a positive integer, got {value!r}")
    if crop is not None and crop != image_size:
        raise DataError(f"dataset.crop_size: {crop} differs from the image size {image_size}; open the dataset at image_size={crop}")
    if load is not None and load < image_size:
        raise DataError(f"dataset.load_size: {load} is smaller than the crop size {image_size}; make it at least {image_size}")
    if not isinstance(flip, bool):
        raise DataError(f"dataset.flip: expected true or false, got {flip!r}")
    return {"load_size": load, "flip": flip}


def check_keys(config: Mapping[str, Any], accepted: Mapping[str, Any], source: str) -> None:
    other_builtins = {key: name for name, keys in BUILTIN_OWN_KEYS.items() for key in keys if key not in accepted}
    other_source_keys = (set(BUILTIN_KEYS) | set(FOLDER_KEYS) | set(other_builtins)) - set(accepted)
    what = f"builtin '{config['builtin']}'" if source == "builtin" else "a folder dataset"
    takes = f"{what} takes {quoted(accepted)}"
    for key in config:
        if key in other_builtins and source == "builtin":
            raise DataError(f"dataset.{key}: applies only to builtin '{other_builtins[key]}'; {takes}")
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
    """The older call: a list of exactly two distinct image names for a two-domain dataset."""
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
