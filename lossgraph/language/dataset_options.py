"""The dataset's augmentation options, checked where the spec writes them: load_size, crop_size, flip.

    dataset: {builtin: shapes, pairing: paired, load_size: 36, crop_size: 32, flip: true}

`crop_size` is the training image size. So that a spec says it once, `crop_size` implies
`train.image_size` when the spec (or a spec it extends) does not write one; when both are written
they must agree, and a spec where they differ is refused at `train.image_size` rather than one of
them silently winning. Without `crop_size` the image size is `train.image_size` and `load_size`,
when given, must be at least that.

The rest of the `dataset:` mapping (its source, pairing, labels) is checked by `lossgraph.data`
when the dataset opens; these three are checked here because their mistakes need no data to find,
and a located error (file, line, column) says best which number to change.
"""

from __future__ import annotations

from typing import Any

from lossgraph.language.errors import Problems

# schema.py imports this module (for `imply_image_size`), so the spec and its source are typed `Any`.

SIZE_KEYS = ("load_size", "crop_size")
MIN_SIZE = 8  # as train.image_size


def is_size(value: Any) -> bool:
    # YAML's `true` is a bool, and bool is an int subclass: refuse it explicitly.
    return isinstance(value, int) and not isinstance(value, bool) and value >= MIN_SIZE


def imply_image_size(data: Any) -> Any:
    """`data` (a spec's plain data) with `train.image_size` set to `dataset.crop_size` when only
    the crop size is written. Anything malformed is left alone for the checks to report."""
    if not isinstance(data, dict):
        return data
    dataset, train = data.get("dataset"), data.get("train", {})
    if not isinstance(dataset, dict) or not is_size(dataset.get("crop_size")) or not isinstance(train, dict):
        return data
    if "image_size" in train:
        return data
    return {**data, "train": {**train, "image_size": dataset["crop_size"]}}


def check_dataset_options(spec: Any, source: Any, problems: Problems) -> None:
    """Add to `problems` every malformed or contradictory load_size, crop_size and flip."""
    dataset = spec.dataset
    sizes = {}
    for key in SIZE_KEYS:
        if key not in dataset:
            continue
        value = dataset[key]
        if is_size(value):
            sizes[key] = value
        else:
            problems.add(f"expected a whole number of pixels, at least {MIN_SIZE}, got {value!r}",
                         source.origin(("dataset", key)), f"e.g. {key}: {example(key, spec)}")
    if "flip" in dataset and not isinstance(dataset["flip"], bool):
        problems.add(f"expected true or false, got {dataset['flip']!r}", source.origin(("dataset", "flip")),
                     "flip: true mirrors half of the training samples left to right")
    crop = sizes.get("crop_size")
    size = spec.train.image_size
    if crop is not None and crop != size:
        problems.add(f"train.image_size {size} differs from dataset.crop_size {crop}, which is the training image size",
                     source.origin(("train", "image_size")),
                     f"remove train.image_size (crop_size implies it) or set it to {crop}")
    load = sizes.get("load_size")
    if load is not None and load < (crop or size):
        what = f"crop_size {crop}" if crop is not None else f"the image size {size} (train.image_size)"
        problems.add(f"load_size {load} is smaller than {what}: a crop cannot be larger than the image it is cut from",
                     source.origin(("dataset", "load_size")),
                     f"make load_size at least {crop or size}, e.g. {example('load_size', spec)}")


def example(key: str, spec: Any) -> str:
    """A sensible value for `key`: the reference code loads 286 for 256 crops, about 1.12 times."""
    crop = spec.dataset.get("crop_size")
    size = crop if is_size(crop) else spec.train.image_size
    return str(size + size // 8) if key == "load_size" else str(size)
