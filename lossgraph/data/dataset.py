"""The `Dataset` base class: which samples make up each training batch, and in what order.

Every dataset has two image domains, A and B, and maps the spec's image variables onto them in
order (the first variable reads domain A, the second domain B). Subclasses say how many training
items each domain holds and how to load items by index; this class owns the sampling, so that
builtin and folder data shuffle in exactly the same way.

Invariant: `batch(step, batch_size)` is a pure function of (seed, step, batch_size). Training
positions `step * batch_size ...` walk through epochs, each a fresh permutation seeded by
(seed, stream, epoch), so a resumed run sees the same batches without any saved loader state.
"Paired" data gives both domains one shared stream over pair indices (x[i] and y[i] are the same
item); "unpaired" data gives each domain a stream of its own, over its own item count.
"""

from __future__ import annotations

import abc
import functools
import hashlib

import torch

DOMAINS = ("A", "B")
PAIRINGS = ("paired", "unpaired")


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that depends only on `parts`, stable across runs, processes and platforms.

    Python's `hash` is salted per process for strings, so it cannot be used for reproducibility.
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def seeded_generator(*parts: object) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(derive_seed(*parts))
    return generator


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
    """Two image domains, A and B, read through the spec's image variables (see module docstring).

    Subclasses implement `domain_sizes`, `held_out_size`, `load_train`, `load_held_out` and
    `describe`; the rest is shared.
    """

    def __init__(self, variables: list[str] | tuple[str, ...], image_size: int, seed: int, pairing: str):
        self.variables = tuple(variables)
        self.image_size = image_size
        self.seed = seed
        self.pairing = pairing
        # Set by subclasses: whether held_out()'s x[i] and y[i] show the same underlying item.
        self.paired_held_out = False

    # ----- what a subclass provides

    @property
    @abc.abstractmethod
    def domain_sizes(self) -> tuple[int, int]:
        """Training items in domain A and in domain B (equal when paired)."""

    @property
    @abc.abstractmethod
    def held_out_size(self) -> int:
        """The most samples `held_out` can return per variable."""

    @abc.abstractmethod
    def load_train(self, domain: int, indices: torch.Tensor) -> torch.Tensor:
        """Training images of `domain` (0 for A, 1 for B) at `indices`, shaped (N, 3, S, S)."""

    @abc.abstractmethod
    def load_held_out(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `count` held-out images of domain A and of domain B."""

    @abc.abstractmethod
    def describe(self) -> str:
        """One line for logs."""

    # ----- shared behaviour

    def __len__(self) -> int:
        # An epoch is one pass over the larger domain, as in the CycleGAN repository; the smaller
        # domain of unpaired data simply starts its next shuffled pass sooner.
        return max(self.domain_sizes)

    def batch_indices(self, step: int, batch_size: int) -> dict[str, torch.Tensor]:
        """The training item index of every sample in the batch of `step`, per variable."""
        if step < 0 or batch_size < 1:
            raise ValueError(f"need step >= 0 and batch_size >= 1, got step={step}, batch_size={batch_size}")
        start = step * batch_size
        indices = {}
        for domain, variable in enumerate(self.variables):
            # Paired domains share one stream over pair indices; unpaired ones draw independently.
            stream = "pairs" if self.pairing == "paired" else DOMAINS[domain]
            count = self.domain_sizes[domain]
            indices[variable] = stream_indices(self.seed, stream, count, start, batch_size)
        return indices

    def batch(self, step: int, batch_size: int) -> dict[str, torch.Tensor]:
        """The training batch for global step `step`: {variable: (batch_size, 3, S, S) in [-1, 1]}."""
        indices = self.batch_indices(step, batch_size)
        return {
            variable: self.load_train(domain, indices[variable])
            for domain, variable in enumerate(self.variables)
        }

    def held_out(self, count: int) -> dict[str, torch.Tensor]:
        """A fixed batch of min(count, held_out_size) test samples, identical on every call.

        When `paired_held_out` is true, x[i] and y[i] show the same item, so the B image is the
        ground truth for translating the A image.
        """
        if count < 1:
            raise ValueError(f"need count >= 1, got {count}")
        count = min(count, self.held_out_size)
        images = self.load_held_out(count)
        return {variable: images[domain] for domain, variable in enumerate(self.variables)}
