"""Normalisation layers chosen by name (`norm: instance | batch | none` in a spec), and the
convolution-then-norm pair every architecture here is built from.

A convolution gets a bias only when no norm follows it: batch norm has its own shift, and
instance norm without affine parameters subtracts the per-channel mean, which cancels a bias
exactly (it would only ever get a zero gradient).
"""

from __future__ import annotations

from typing import Callable

from torch import nn

NORMS = ("instance", "batch", "none")


def check_norm(norm: object) -> str:
    """The norm's name; YAML's `null` is read as "none"."""
    if norm is None:
        return "none"
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
    return norm


def norm_layer(norm: str, channels: int, side: int) -> nn.Module | None:
    """The layer for `norm` over `channels`, or None when there is nothing to normalise.

    `side` is the side of the map the layer sees at the built image size. Instance norm over a
    1x1 map subtracts each value from itself and outputs zeros, so it is left out there.
    """
    if norm == "instance" and side > 1:
        # affine=False and no running statistics, as in pix2pix and CycleGAN.
        return nn.InstanceNorm2d(channels)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return None


def convolution_with_norm(
    convolution: Callable[..., nn.Module],
    source: int,
    target: int,
    norm: nn.Module | None,
    **convolution_options: object,
) -> list[nn.Module]:
    """`convolution(source, target, ...)` followed by `norm` if any, biased only without one."""
    layers = [convolution(source, target, bias=norm is None, **convolution_options)]
    return layers if norm is None else layers + [norm]
