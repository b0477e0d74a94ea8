"""Seeds derived from names: the one way lossgraph turns (seed, what, which) into a random stream.

Every stream that must be reproducible is seeded by `derive_seed(*parts)`: a data epoch's
shuffle ("epoch", seed, stream, epoch), a built-in scene ("shapes", seed, split, index), a
network's initial weights ("network", seed, name; program.py) and a torchrun process's own
draws ("rank stream", seed, rank, step; distributed.py). The first part names the use, so two
uses never share a stream by accident.

Invariant: the result depends only on `parts` (their `repr`), never on the process, the Python
version or the platform. Python's `hash` is salted per process for strings, so it cannot serve.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that depends only on `parts`, stable across runs, processes and platforms."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def seeded_generator(*parts: object) -> torch.Generator:
    """A CPU generator started at `derive_seed(*parts)`."""
    generator = torch.Generator()
    generator.manual_seed(derive_seed(*parts))
    return generator
