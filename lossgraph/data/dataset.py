"""The `Dataset` base class: which training items make up each batch, and in what order.

A dataset serves every data variable of a spec: images, float (N, C, H, W) in [-1, 1], and
labels, int64 (N,). Variables read *streams*: a stream is a sequence of training items, and all
variables of one stream read the same item at each batch position (an image and its label; the
two images of paired data). Subclasses say which stream each variable reads, how many items each
stream holds and how to load a batch's variables from item indices; this class owns the sampling,
so that builtin and folder data shuffle in exactly the same way.

Invariant: `batch(step, batch_size)` is a pure function of (seed, step, batch_size). Training
positions `step * batch_size ...` walk through epochs, each a fresh permutation seeded by
(seed, stream, epoch), so a resumed run sees the same batches without any saved loader state.
"Paired" data gives all its images one shared stream over pair indices (x[i] and y[i] are the
same item); "unpaired" data gives each image variable a stream of its own.

Augmentation (augment.py): subclasses load images at `load_size`; `load_train` cuts training
images to `image_size` at a random position and maybe mirrors them, from (seed, stream, position),
and `held_out` cuts at the centre. The position of every sample travels with its item indices
under the key `POSITION`, so that a caller loading a slice of a batch (distributed.py) cuts the
slice exactly as the whole batch would be cut.

Label variables get their values from a *source* named in the config (`shape(x_s)`, `class(x)`;
sources.py); `held_out()` may add evaluation-only variables from sources too. The variables
themselves are checked in variables.py, and every seed comes from seeds.py.
"""

from __future__ import annotations

import abc
import functools
from typing import Any, Mapping

import torch


from lossgraph.data.augment import Augment
from lossgraph.data.seeds import seeded_generator
from lossgraph.data.sources import Source, SourceFunction, bind as bind_sources
from lossgraph.data.variables import as_kinds
from lossgraph.language.errors import DataError
from lossgraph.language.kinds import Kind

DOMAINS = ("A", "B")
PAIRINGS = ("paired", "unpaired")
# The key of `batch_indices()` that holds each sample's global training position (no variable
# can take it: variable names are identifiers).
POSITION = "@position"


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


class Dataset(abc.ABC):
    """The spec's data variables, read through streams (see module docstring).

    Subclasses implement `stream_sizes`, `stream_of`, `held_out_size`, `load_items`,
    `load_held_out` and `describe`, load images at `load_size` (not `image_size`), and call
    `bind` at the end of `__init__` when they offer `FUNCTIONS`; the rest is shared.
    """

    # Label sources this dataset offers, by name; empty: it gives images only.
    FUNCTIONS: dict[str, SourceFunction] = {}
    # Where the messages send someone who needs labels from a dataset that has none.
    NO_LABELS_HINT = ""

    def __init__(self, variables: Any, image_size: int, seed: int, pairing: str,
                 load_size: int | None = None, flip: bool = False):
        self.kinds: dict[str, Kind] = as_kinds(variables)
        self.variables = tuple(self.kinds)
        self.images = tuple(name for name, kind in self.kinds.items() if kind.kind == "image")
        self.label_variables = tuple(name for name, kind in self.kinds.items() if kind.kind == "label")
        self.image_size = image_size  # what batches and held-out samples hold
        self.load_size = load_size or image_size  # what subclasses load, before any crop
        if self.load_size < image_size:
            raise DataError(f"dataset: load_size {self.load_size} is smaller than the image size {image_size}")
        self.augment = Augment(image_size, self.load_size, bool(flip))
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
    def load_items(self, indices: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every data variable at its training item `indices[variable]`, images at `load_size`."""

    @abc.abstractmethod
    def load_held_out(self, count: int) -> dict[str, torch.Tensor]:
        """The first `count` held-out samples of every data variable and every extra (fresh
        tensors), images at `load_size`."""

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
        """The training item index of every sample in the batch of `step`, per variable, and
        under `POSITION` each sample's global training position (what its crop and flip follow)."""
        if step < 0 or batch_size < 1:
            raise ValueError(f"need step >= 0 and batch_size >= 1, got step={step}, batch_size={batch_size}")
        start = step * batch_size
        by_stream = {
            stream: stream_indices(self.seed, stream, count, start, batch_size)
            for stream, count in self.stream_sizes.items()
        }
        indices = {variable: by_stream[self.stream_of(variable)] for variable in self.variables}
        indices[POSITION] = torch.arange(start, start + batch_size)
        return indices

    def load_train(self, indices: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every data variable at its training item `indices[variable]`, images cut and mirrored
        at the positions `indices[POSITION]` (augment.py); any slice of `batch_indices()`."""
        loaded = self.load_items(indices)
        if not self.augment.active:
            return loaded
        if POSITION not in indices:
            raise ValueError(f"load_train needs the training positions under {POSITION!r} (from batch_indices)")
        draws_of: dict[str, Any] = {}  # the variables of one stream share their crops and flips
        for variable in self.images:
            stream = self.stream_of(variable)
            if stream not in draws_of:
                draws_of[stream] = self.augment.draws(self.seed, stream, indices[POSITION])
            loaded[variable] = self.augment.train(loaded[variable], draws_of[stream])
        return loaded

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
        names = (*self.variables, *self.held_out_kinds)
        if self.augment.margin:
            return {name: self.augment.held_out(loaded[name]) if self.is_image(name) else loaded[name] for name in names}
        return {name: loaded[name] for name in names}

    def is_image(self, name: str) -> bool:
        """Whether data variable or held-out extra `name` holds images."""
        kind = self.kinds.get(name) or self.held_out_kinds.get(name)
        return kind is not None and kind.kind == "image"

    # ----- binding sources (called by subclasses once they know their class counts)

    def bind(self, labels: Any = None, held_out: Any = None) -> None:
        """Check the `labels:` and `held_out:` mappings and record their sources (sources.py)."""
        bound = bind_sources(self, labels, held_out)
        self.sources, self.extras, self.held_out_kinds = bound.sources, bound.extras, bound.held_out_kinds

    def check_label_argument(self, source: Source, label: Source, key: str) -> None:
        """Subclasses check what a `takes_label` function may read; none by default."""

    def augment_note(self) -> str:
        """', random 64x64 crops of 72x72, random flips' for `describe()`, or ''."""
        note = self.augment.describe()
        return f", {note}" if note else ""

    def describe_sources(self) -> str:
        parts = [f"{name} = {source}" for name, source in self.sources.items()]
        parts += [f"held-out {name} = {source}" for name, source in self.extras.items()]
        return ", ".join(parts)
