"""Augmentation as the pix2pix and CycleGAN released code preprocesses: resize, random crop, flip.

A dataset loads every image at the *load size* L (`dataset.load_size`, default the image size);
training samples are then cut to the *image size* S (`dataset.crop_size`, which is the spec's
`train.image_size`) at a random position and, with `dataset.flip: true`, mirrored left to right
with probability 1/2. Held-out samples are cut at the centre and never mirrored, so evaluation
sees the same pixels on every call.

Invariant: the crop and flip of a training sample depend only on (seed, stream, position), where
position is the sample's global training position `step * batch_size + i` (dataset.py); so a
resumed run, or a process of a distributed run loading its slice of the batch, cuts exactly what
one process would. Every image variable of one stream shares its sample's crop and flip: the two
images of a pair stay pixel-aligned, while unpaired domains draw their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lossgraph.data.seeds import seeded_generator


@dataclass(frozen=True)
class Augment:
    """Load at `load_size`, cut `size` x `size` (random in training, centre held out), maybe flip."""

    size: int
    load_size: int
    flip: bool = False

    @property
    def active(self) -> bool:
        return self.load_size > self.size or self.flip

    @property
    def margin(self) -> int:
        return self.load_size - self.size

    def draws(self, seed: int, stream: str, positions: torch.Tensor) -> tuple[list[int], list[int], list[bool]]:
        """The crop's top and left corner and whether to mirror, for each training position."""
        tops, lefts, flips = [], [], []
        for position in positions.tolist():
            generator = seeded_generator("augment", seed, stream, position)
            top, left = torch.randint(self.margin + 1, (2,), generator=generator).tolist()
            mirrored = bool(torch.randint(2, (), generator=generator)) if self.flip else False
            tops.append(top)
            lefts.append(left)
            flips.append(mirrored)
        return tops, lefts, flips

    def train(self, images: torch.Tensor, draws: tuple[list[int], list[int], list[bool]]) -> torch.Tensor:
        """Training images (N, C, L, L) cut and mirrored as `draws` (from `draws()`) say: (N, C, S, S)."""
        size = self.size
        out = []
        for image, top, left, mirrored in zip(images, *draws):
            cut = image[:, top:top + size, left:left + size]
            out.append(cut.flip(-1) if mirrored else cut)
        return torch.stack(out) if out else images[:, :, :size, :size].clone()

    def held_out(self, images: torch.Tensor) -> torch.Tensor:
        """Held-out images (N, C, L, L) cut at the centre: (N, C, S, S), never mirrored."""
        start = self.margin // 2
        return images[:, :, start:start + self.size, start:start + self.size].contiguous()

    def describe(self) -> str:
        """The augmentation for logs, or '' when there is none."""
        parts = []
        if self.load_size > self.size:
            parts.append(f"random {self.size}x{self.size} crops of {self.load_size}x{self.load_size}")
        if self.flip:
            parts.append("random flips")
        return ", ".join(parts)
