"""The `Dataset` base class: which training items make up each batch, and in what order.

A dataset serves every data variable of a spec: images, float (N, C, H, W) in [-1, 1], and
labels, int64 (N,). Variables read *streams*: a stream is a sequence of training items, and all
variables of one stream read the same item at each batch position (an image and its label; the
two images of paired data). Subclasses say which stream each variable reads, how many items each
stream holds and how to load a batch's variables from item indices; this class owns the sampling,
so that builtin and folder data shuffle in exactly the same way.

Invariant: `batch(step, batch_size)` is a pure function of (seed, step, batch_size). Training
positions `step * batch_size ...` walk through epochs, each a fresh permutation seeded by
(seed, stream, epoch) (seeds.py), so a resumed run sees the same batches without any saved
loader state.
"Paired" data gives all its images one shared stream over pair indices (x[i] and y[i] are the
same item); "unpaired" data gives each image variable a stream of its own.

Label variables get their values from a *source* named in the config (`shape(x_s)`, `class(x)`,
see `SourceFunction`); `held_out()` may add evaluation-only variables from sources too.
"""

from __future__ import annotations

import abc
import functools
import re
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from lossgraph.data.seeds import seeded_generator
from lossgraph.language.errors import DataError, did_you_mean
from lossgraph.language.kinds import DATA_KINDS, SOURCE_CALL, Kind, parse_data_kind

DOMAINS = ("A", "B")
PAIRINGS = ("paired", "unpaired")
IMAGE = Kind("image", 3)
CHANNELS = (1, 3)
# Luminance weights (ITU-R BT.601); they sum to 1, so [-1, 1] stays [-1, 1].
GREY_WEIGHTS = (0.299, 0.587, 0.114)


@functools.lru_cache(maxsize=16)
def epoch_permutation(seed: int, stream: str, epoch: int, count: int) -> torch.Tensor:
    """The order in which one stream visits its `count` items during `epoch` (cached: read only)."""
    return torch.randperm(count, generator=seeded_generator("epoch", seed, stream, epoch))


def stream_indices(seed: int, stream: str, count: int, start: int, length: int) -> torch.Tensor:
    """Item indices for training positions start .. start + length - 1 of one stream."""
    positions = torch.arange(start, start + length)
    epochs = positions // count
    offsets = positions % count
    indices = torch.empty(length, dtype=torch.long)
    # A batch can straddle an epoch boundary (or span several epochs when it is larger than the data).
    for epoch in torch.unique(epochs).tolist():
        in_epoch = epochs == epoch
        indices[in_epoch] = epoch_permutation(seed, stream, epoch, count)[offsets[in_epoch]]
    return indices


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """RGB images (N, 3, H, W) as `channels` channels: unchanged for 3, luminance for 1."""
    if channels == 3:
        return images
    weights = torch.tensor(GREY_WEIGHTS, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True).clamp(-1, 1)


# ----- messages


def quoted(names: Any) -> str:
    return ", ".join(f"'{name}'" for name in names)


def suggest(name: str, choices: Any) -> str:
    """`did you mean 'x'? (expected one of ...)`, or just the valid choices when none is close."""
    choices = list(choices)
    if not choices:
        return "there is nothing to choose from"
    hint = did_you_mean(name, choices)
    valid = f"expected one of {quoted(choices)}"
    return valid if hint is None or hint.startswith("expected") else f"{hint} ({valid})"


def kind_text(kind: Kind) -> str:
    if kind.kind == "image":
        return "image" if kind.size == 3 else f"image({kind.size})"
    return f"{kind.kind}({kind.size})"


def as_kinds(variables: Any) -> dict[str, Kind]:
    """The data variables as {name: Kind}: a list of names means images; a mapping gives kinds.

    A kind is a `lossgraph.kinds.Kind` (anything with `.kind` and `.size`) or its spec text
    (`"image"`, `"label(3)"`). Only what every dataset can serve passes: images of 1 or 3
    channels and labels; vectors are refused here, since no source provides them yet.
    """
    if isinstance(variables, Mapping):
        items = list(variables.items())
    elif isinstance(variables, (list, tuple)):
        items = [(name, IMAGE) for name in variables]
        names = [name for name, _ in items]
        if len(set(map(repr, names))) != len(names):
            raise DataError(f"dataset: the data variables must have distinct names; got {names}")
    else:
        raise DataError(
            f"dataset: expected the data variables as a list of image names or a mapping "
            f"{{name: kind}}, got {type(variables).__name__}"
        )
    kinds: dict[str, Kind] = {}
    for name, kind in items:
        if not isinstance(name, str) or not name:
            raise DataError(f"dataset: a data variable needs a non-empty name, got {name!r}")
        if isinstance(kind, str):
            try:
                kind = parse_data_kind(kind)
            except ValueError as error:
                raise DataError(f"dataset: data variable '{name}': {error}") from None
        if not hasattr(kind, "kind") or not hasattr(kind, "size"):
            raise DataError(
                f"dataset: data variable '{name}' has kind {kind!r}; expected a Kind or one of "
                f"{quoted(DATA_KINDS)} (e.g. image, label(3))"
            )
        if kind.kind not in DATA_KINDS:
            raise DataError(f"dataset: data variable '{name}' has kind {kind.kind!r}; {suggest(str(kind.kind), DATA_KINDS)}")
        if kind.kind == "vector":
            raise DataError(
                f"dataset: data variable '{name}' is {kind_text(kind)}, but no dataset provides vectors "
                f"(builtin shapes and folders give images and labels); make it a random variable"
            )
        if kind.kind == "image" and kind.size not in CHANNELS:
            raise DataError(
                f"dataset: image variable '{name}' has {kind.size} channels; datasets give 3 (RGB, "
                f"`image`) or 1 (grey, `image(1)`)"
            )
        if kind.kind == "label" and kind.size < 1:
            raise DataError(f"dataset: label variable '{name}' needs at least 1 class, got {kind.size}")
        kinds[name] = Kind(kind.kind, int(kind.size))
    if not kinds:
        raise DataError("dataset: the spec has no data variables to serve")
    return kinds


# ----- sources of labels and of held-out extras

_NAME = re.compile(r"^[A-Za-z_]\w*$")


@dataclass(frozen=True)
class SourceFunction:
    """A function the config may use for labels (`labels:`) or held-out extras (`held_out:`).

    Every function reads an image variable (its scene, file or style); one with `takes_label`
    also reads a label variable bound in `labels:` or `held_out:`, as in `restyle(x, c_t)`.
    """

    name: str
    help: str                   # one line for messages and `describe`
    takes_label: bool = False
    held_out_only: bool = False

    @property
    def usage(self) -> str:
        return f"{self.name}(IMAGE, LABEL)" if self.takes_label else f"{self.name}(IMAGE)"


@dataclass(frozen=True)
class Source:
    """One parsed source, e.g. `shape(x_s)`: function `shape` of image variable `x_s`."""

    function: str
    image: str
    label: str | None = None

    def __str__(self) -> str:
        return f"{self.function}({self.image}, {self.label})" if self.label else f"{self.function}({self.image})"


class Dataset(abc.ABC):
    """The spec's data variables, read through streams (see module docstring).

    Subclasses implement `stream_sizes`, `stream_of`, `held_out_size`, `load_train`,
    `load_held_out` and `describe`, and call `bind` at the end of `__init__` when they offer
    `FUNCTIONS`; the rest is shared.
    """

    # Label sources this dataset offers, by name; empty: it gives images only.
    FUNCTIONS: dict[str, SourceFunction] = {}
    # Where the messages send someone who needs labels from a dataset that has none.
    NO_LABELS_HINT = ""

    def __init__(self, variables: Any, image_size: int, seed: int, pairing: str):
        self.kinds: dict[str, Kind] = as_kinds(variables)
        self.variables = tuple(self.kinds)
        self.images = tuple(name for name, kind in self.kinds.items() if kind.kind == "image")
        self.label_variables = tuple(name for name, kind in self.kinds.items() if kind.kind == "label")
        self.image_size = image_size
        self.seed = seed
        self.pairing = pairing
        # Set by subclasses: whether held_out()'s images at one index show the same underlying item.
        self.paired_held_out = False
        # Filled by `bind`: where each label variable and each held-out extra comes from.
        self.sources: dict[str, Source] = {}
        self.extras: dict[str, Source] = {}
        self.held_out_kinds: dict[str, Kind] = {}

    # ----- what a subclass provides

    @property
    @abc.abstractmethod
    def stream_sizes(self) -> dict[str, int]:
        """Training items per stream, in a fixed order."""

    @abc.abstractmethod
    def stream_of(self, variable: str) -> str:
        """The stream that data variable `variable` reads."""

    @property
    @abc.abstractmethod
    def held_out_size(self) -> int:
        """The most samples `held_out` can return per variable."""

    @abc.abstractmethod
    def load_train(self, indices: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every data variable at its training item `indices[variable]`."""

    @abc.abstractmethod
    def load_held_out(self, count: int) -> dict[str, torch.Tensor]:
        """The first `count` held-out samples of every data variable and every extra (fresh tensors)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """One line for logs."""

    def source_kind(self, source: Source, key: str) -> Kind:
        """The kind of value `source` gives; raises a DataError naming `key` when it cannot."""
        raise DataError(f"{key}: {source.function} is not available here")

    # ----- shared behaviour

    def __len__(self) -> int:
        # An epoch is one pass over the largest stream, as in the CycleGAN repository; smaller
        # streams (the other domain of unpaired data) simply start their next shuffled pass sooner.
        return max(self.stream_sizes.values())

    def batch_indices(self, step: int, batch_size: int) -> dict[str, torch.Tensor]:
        """The training item index of every sample in the batch of `step`, per variable."""
        if step < 0 or batch_size < 1:
            raise ValueError(f"need step >= 0 and batch_size >= 1, got step={step}, batch_size={batch_size}")
        start = step * batch_size
        by_stream = {
            stream: stream_indices(self.seed, stream, count, start, batch_size)
            for stream, count in self.stream_sizes.items()
        }
        return {variable: by_stream[self.stream_of(variable)] for variable in self.variables}

    def batch(self, step: int, batch_size: int) -> dict[str, torch.Tensor]:
        """The training batch of global step `step`: every data variable, `batch_size` samples.

        Images are float32 (batch_size, C, S, S) in [-1, 1]; labels int64 (batch_size,).
        """
        loaded = self.load_train(self.batch_indices(step, batch_size))
        return {variable: loaded[variable] for variable in self.variables}

    def held_out(self, count: int) -> dict[str, torch.Tensor]:
        """A fixed batch of min(count, held_out_size) test samples, identical on every call.

        It holds every data variable and then every extra of `held_out_kinds`. When
        `paired_held_out` is true, the images at one index show the same item, so one image
        variable's sample is the ground truth for translating another's.
        """
        if count < 1:
            raise ValueError(f"need count >= 1, got {count}")
        loaded = self.load_held_out(min(count, self.held_out_size))
        return {name: loaded[name] for name in (*self.variables, *self.held_out_kinds)}

    # ----- binding sources (called by subclasses once they know their class counts)

    def bind(self, labels: Any = None, held_out: Any = None) -> None:
        """Check the `labels:` and `held_out:` mappings and record their sources."""
        labels = self._mapping(labels, "labels")
        held_out = self._mapping(held_out, "held_out")
        self._check_label_names(labels)
        parsed: dict[str, Source] = {}
        for name, text in labels.items():
            parsed[name] = self._parse(text, f"dataset.labels.{name}", held_out_allowed=False)
        for name, text in held_out.items():
            key = f"dataset.held_out.{name}"
            if not isinstance(name, str) or not _NAME.match(name):
                raise DataError(f"dataset.held_out: {name!r} is not a valid variable name (letters, digits, _)")
            if name in self.kinds:
                raise DataError(
                    f"{key}: '{name}' is already a data variable; held_out: adds evaluation-only "
                    f"names (labels of data variables go under labels:)"
                )
            parsed[name] = self._parse(text, key, held_out_allowed=True)
        # Sources without a label argument first, so that `restyle(x, c_t)` can see c_t's kind.
        kinds: dict[str, Kind] = {}
        ordered = sorted(parsed, key=lambda name: parsed[name].label is not None)
        for name in ordered:
            source = parsed[name]
            section = "labels" if name in labels else "held_out"
            key = f"dataset.{section}.{name}"
            if source.label is not None:
                if source.label not in parsed:
                    known = [other for other in parsed if other != name]
                    raise DataError(
                        f"{key}: {source} reads label '{source.label}', which neither labels: nor "
                        f"held_out: defines; {suggest(source.label, known)}"
                    )
                if parsed[source.label].label is not None:
                    raise DataError(f"{key}: {source} reads '{source.label}', which is not a label")
            kind = self.source_kind(source, key)
            if section == "labels":
                wanted = self.kinds[name]
                if kind.kind != "label" or kind.size != wanted.size:
                    gives = f"{kind.size} classes" if kind.kind == "label" else kind_text(kind)
                    raise DataError(f"{key}: {source} gives {gives}, but the spec declares {name} as {kind_text(wanted)}")
            kinds[name] = kind
        self.sources = {name: parsed[name] for name in labels}
        self.extras = {name: parsed[name] for name in held_out}
        self.held_out_kinds = {name: kinds[name] for name in held_out}
        # Where a restyle reads a label, that label must index the same image's styles.
        for name in ordered:
            source = parsed[name]
            if source.label is not None:
                self.check_label_argument(source, parsed[source.label], f"dataset.held_out.{name}")

    def check_label_argument(self, source: Source, label: Source, key: str) -> None:
        """Subclasses check what a `takes_label` function may read; none by default."""

    def _mapping(self, value: Any, section: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            example = "{c_s: shape(x_s)}" if section == "labels" else "{c_t: shape(x_t)}"
            raise DataError(f"dataset.{section}: expected a mapping such as {example}, got {type(value).__name__}")
        return dict(value)

    def _example(self, variable: str) -> str:
        function = next((f for f in self.FUNCTIONS.values() if not f.held_out_only), None)
        if function is None or not self.images:
            return ""
        return f"{{{variable}: {function.name}({self.images[0]})}}"

    def _check_label_names(self, labels: dict[str, Any]) -> None:
        for name in labels:
            if name not in self.label_variables:
                if name in self.kinds:
                    raise DataError(
                        f"dataset.labels.{name}: '{name}' is {kind_text(self.kinds[name])}, not a label; "
                        f"labels: names the spec's label variables ({quoted(self.label_variables) or 'none'})"
                    )
                choices = self.label_variables or ()
                valid = suggest(str(name), choices) if choices else "the spec declares no label variables"
                raise DataError(f"dataset.labels: {name!r} is not a label variable of the spec; {valid}")
        for name in self.label_variables:
            if name not in labels:
                kind = kind_text(self.kinds[name])
                available = [f.usage for f in self.FUNCTIONS.values() if not f.held_out_only]
                if not available:
                    raise DataError(
                        f"dataset: label variable '{name}' ({kind}) has no source: this dataset gives "
                        f"images only{self.NO_LABELS_HINT}"
                    )
                raise DataError(
                    f"dataset: label variable '{name}' ({kind}) has no source; add "
                    f"labels: {self._example(name)} (sources here: {', '.join(available)})"
                )

    def _parse(self, text: Any, key: str, held_out_allowed: bool) -> Source:
        functions = {
            name: function
            for name, function in self.FUNCTIONS.items()
            if held_out_allowed or not function.held_out_only
        }
        usages = ", ".join(function.usage for function in functions.values()) or "none"
        if not functions:
            raise DataError(f"{key}: this dataset gives images only, with no labels{self.NO_LABELS_HINT}")
        match = SOURCE_CALL.match(text) if isinstance(text, str) else None
        if match is None:
            raise DataError(f"{key}: cannot read {text!r}; expected FUNCTION(IMAGE), one of {usages}")
        name, image, label = match.group(1), match.group(2), match.group(3)
        if name not in functions:
            if name in self.FUNCTIONS:
                raise DataError(f"{key}: {name}(...) is allowed only under held_out:; labels: takes {usages}")
            hint = did_you_mean(name, list(functions)) or ""
            close = f"{hint} (sources here: {usages})" if hint.startswith("did you mean") else f"sources here: {usages}"
            raise DataError(f"{key}: unknown function {name!r}; {close}")
        function = functions[name]
        if function.takes_label != (label is not None):
            raise DataError(f"{key}: {name} takes {function.usage}, got {text.strip()!r}")
        if image not in self.images:
            what = f"'{image}' is {kind_text(self.kinds[image])}, not an image" if image in self.kinds else (
                f"{image!r} is not an image variable of the spec"
            )
            raise DataError(f"{key}: {what}; {suggest(image, self.images)}")
        if label is not None and not _NAME.match(label):
            raise DataError(f"{key}: {label!r} is not a variable name; {name} takes {function.usage}")
        return Source(name, image, label)

    def describe_sources(self) -> str:
        parts = [f"{name} = {source}" for name, source in self.sources.items()]
        parts += [f"held-out {name} = {source}" for name, source in self.extras.items()]
        return ", ".join(parts)
