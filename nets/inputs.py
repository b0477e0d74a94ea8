"""Turn a network's call arguments into the one image tensor its first layer takes.

A spec calls a network as `D(x, y)`, `G(x, z)` or `G(x, c)`; the module, not the caller, combines
the arguments, in call order, along the channel axis:

- an image (N, C, H, W) contributes its C channels;
- a float vector (N, k), such as a latent code, is broadcast over H and W: k channels;
- an integer label (N,) is one-hot encoded to `num_classes` channels, then broadcast.

At least one argument must be an image, since it fixes H and W. The `in_channels` a network is
built with is the channel count after combining, and `Combine` checks it on every call so that a
mismatch is reported in terms of the arguments rather than as a convolution shape error.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional

from .checks import positive_int


def _is_label(tensor: torch.Tensor) -> bool:
    return not tensor.is_floating_point() and not tensor.is_complex() and tensor.dtype != torch.bool


def _describe(tensor: torch.Tensor, num_classes: int | None) -> str:
    """How one argument counts towards the channels, for error messages."""
    if tensor.dim() == 4:
        return f"image {tuple(tensor.shape)}: {tensor.shape[1]}"
    if tensor.dim() == 2:
        return f"vector {tuple(tensor.shape)}: {tensor.shape[1]}"
    return f"label {tuple(tensor.shape)}: {num_classes}"


def combine(inputs: Sequence[torch.Tensor], num_classes: int | None = None) -> torch.Tensor:
    """Concatenate `inputs` along channels as the module docstring describes."""
    if not inputs:
        raise ValueError("a network needs at least one input")
    images = [tensor for tensor in inputs if tensor.dim() == 4]
    if not images:
        shapes = ", ".join(str(tuple(tensor.shape)) for tensor in inputs)
        raise ValueError(
            f"a network needs at least one image (N, C, H, W) to fix height and width; got shapes {shapes}"
        )
    reference = images[0]
    if len(inputs) == 1:
        return reference
    batch, _, height, width = reference.shape
    parts = []
    for position, tensor in enumerate(inputs):
        if tensor.shape[0] != batch:
            raise ValueError(
                f"input {position} has batch size {tensor.shape[0]}, the first image has {batch}"
            )
        if tensor.dim() == 4:
            if tensor.shape[2:] != reference.shape[2:]:
                raise ValueError(
                    f"input {position} is {tuple(tensor.shape[2:])} pixels,"
                    f" the first image is {(height, width)}"
                )
            parts.append(tensor)
            continue
        if tensor.dim() == 1 and _is_label(tensor):
            if num_classes is None:
                raise ValueError(
                    f"input {position} is an integer label;"
                    " build the network with num_classes to one-hot encode it"
                )
            tensor = functional.one_hot(tensor.long(), num_classes)
        elif tensor.dim() != 2 or _is_label(tensor):
            raise ValueError(
                f"input {position} has shape {tuple(tensor.shape)} and dtype {tensor.dtype};"
                " expected an image (N, C, H, W), a float vector (N, k) or an integer label (N,)"
            )
        parts.append(tensor.to(reference.dtype)[:, :, None, None].expand(-1, -1, height, width))
    return torch.cat(parts, dim=1)


class Combine(nn.Module):
    """`combine` as a module that also checks the result has the `in_channels` it was built for."""

    def __init__(self, in_channels: int, num_classes: int | None = None):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.num_classes = None if num_classes is None else positive_int("num_classes", num_classes)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        combined = combine(inputs, self.num_classes)
        if combined.shape[1] != self.in_channels:
            parts = " + ".join(f"({_describe(tensor, self.num_classes)})" for tensor in inputs)
            raise ValueError(
                f"the inputs give {combined.shape[1]} channels after combining, {parts},"
                f" but the network was built with in_channels={self.in_channels}"
            )
        return combined

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}"


def combine_vectors(inputs: Sequence[torch.Tensor], num_classes: int | None = None) -> torch.Tensor:
    """Concatenate float vectors (N, k) and one-hot integer labels (N,) into one (N, total) tensor.

    For networks that take no image at all (a generator from a latent code): there is no height
    or width to broadcast over, so images are refused rather than combined.
    """
    if not inputs:
        raise ValueError("a network needs at least one input")
    batch = inputs[0].shape[0] if inputs[0].dim() > 0 else None
    floats = [tensor.dtype for tensor in inputs if tensor.is_floating_point()]
    floating = floats[0] if floats else torch.get_default_dtype()
    parts = []
    for position, tensor in enumerate(inputs):
        if tensor.dim() == 1 and _is_label(tensor):
            if num_classes is None:
                raise ValueError(
                    f"input {position} is an integer label;"
                    " build the network with num_classes to one-hot encode it"
                )
            tensor = functional.one_hot(tensor.long(), num_classes)
        elif tensor.dim() != 2 or _is_label(tensor):
            raise ValueError(
                f"input {position} has shape {tuple(tensor.shape)} and dtype {tensor.dtype};"
                " this network takes only float vectors (N, k) and integer labels (N,), no images"
            )
        if tensor.shape[0] != batch:
            raise ValueError(
                f"input {position} has batch size {tensor.shape[0]}, the first input has {batch}"
            )
        parts.append(tensor.to(floating))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class CombineVectors(nn.Module):
    """`combine_vectors` as a module that checks the result has the `in_channels` it was built for."""

    def __init__(self, in_channels: int, num_classes: int | None = None):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.num_classes = None if num_classes is None else positive_int("num_classes", num_classes)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        combined = combine_vectors(inputs, self.num_classes)
        if combined.shape[1] != self.in_channels:
            parts = " + ".join(f"({_describe(tensor, self.num_classes)})" for tensor in inputs)
            raise ValueError(
                f"the inputs give {combined.shape[1]} features after combining, {parts},"
                f" but the network was built with in_channels={self.in_channels}"
            )
        return combined

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}"
