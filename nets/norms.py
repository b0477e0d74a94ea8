"""Normalisation layers chosen by name (`norm: instance | batch | none` in a spec), and the
convolution-then-norm pair every architecture here is built from.

By default a convolution gets a bias only when no norm follows it: batch norm has its own shift,
and instance norm without affine parameters subtracts the per-channel mean, which cancels a bias
exactly (it would only ever get a zero gradient). The `bias` option of the image archs says
otherwise, so that a network can have the very parameters of a published one (Note [Biases as
the released code has them]).

Note [Biases as the released code has them]
    The pix2pix/CycleGAN reference code biases a convolution when its norm is instance norm and
    not when it is batch norm, whatever follows it: with instance norm every convolution has a
    bias (redundant before the norm, but counted in its published parameter totals); with batch
    norm only the layers the code builds with torch's default do (the U-Net's output layer, the
    PatchGAN's first and last). `bias: true` gives every convolution a bias, `bias: false` only
    the network's output layer; the default (null) biases exactly the convolutions no norm follows.
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


def check_bias(bias: object) -> bool | None:
    """The `bias` option: None (bias where no norm follows), True (everywhere) or False (only the
    output layer); see Note [Biases as the released code has them]."""
    if bias is not None and not isinstance(bias, bool):
        raise ValueError(f"bias must be true, false or null (a bias wherever no norm follows); got {bias!r}")
    return bias


def convolution_with_norm(
    convolution: Callable[..., nn.Module],
    source: int,
    target: int,
    norm: nn.Module | None,
    bias: bool | None = None,
    **convolution_options: object,
) -> list[nn.Module]:
    """`convolution(source, target, ...)` followed by `norm` if any; biased as `bias` says
    (`check_bias`), by default only without a norm."""
    biased = norm is None if bias is None else bias
    layers = [convolution(source, target, bias=biased, **convolution_options)]
    return layers if norm is None else layers + [norm]
