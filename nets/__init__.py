"""Network architectures by name, for specs to refer to as `{arch: unet, width: 16}`.

`ARCHS` maps each name to an `Arch`: its role, the builder (a module class), the options with
their defaults and a one-line doc. The options are read off the builder's keyword-only
parameters, so registering an architecture is one `_arch(...)` entry and its defaults live in
one place. Roles: "generator" (image(s) to an image in [-1, 1]), "discriminator" (image(s) to raw
logits, never probabilities), and, as they arrive, "encoder" and "classifier".

Every module's `forward(*inputs)` combines its arguments itself (see `nets.inputs`), and
`build` initialises weights pix2pix-style from the current torch RNG (see `nets.init`).
The exceptions: `dcgan_generator` takes only vectors and labels (a latent code, no image), and
`unit_decoder` takes a latent map smaller than the image.

Networks tied by weight sharing (CoGAN's generators and discriminators, UNIT's encoders and
decoders) name the submodules they can share in their class's `SHAREABLE`; `share` ties them
(see `nets.sharing`).
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from nets.checks import positive_int
from nets.classifier import Classifier
from nets.dcgan import DCGANDiscriminator, DCGANGenerator
from nets.encoder import Encoder
from nets.init import init_weights
from nets.inputs import Combine, CombineVectors, combine, combine_vectors
from nets.patchgan import PatchGAN
from nets.resnet import ResnetGenerator
from nets.sharing import share, shareable_parts
from nets.stargan import StarGANDiscriminator
from nets.unet import UNet
from nets.unit import UNITDecoder, UNITEncoder

__all__ = [
    "ARCHS",
    "ROLES",
    "Arch",
    "Combine",
    "CombineVectors",
    "build",
    "combine",
    "combine_vectors",
    "init_weights",
    "mixes_batch",
    "options_of",
    "share",
    "shareable_parts",
]

ROLES = ("generator", "discriminator", "encoder", "classifier")


@dataclass(frozen=True)
class Arch:
    """One registered architecture; `options` maps each option name to its default (read it through
    `options_of`, which copies, rather than changing it here)."""

    name: str
    role: str
    builder: Callable[..., nn.Module]
    options: dict[str, object] = field(hash=False)
    doc: str


def _arch(name: str, role: str, builder: Callable[..., nn.Module]) -> Arch:
    """An `Arch` whose options and doc come from `builder`'s signature and docstring."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    parameters = inspect.signature(builder).parameters.values()
    keyword_only = [parameter for parameter in parameters if parameter.kind is parameter.KEYWORD_ONLY]
    options = {parameter.name: parameter.default for parameter in keyword_only}
    doc = " ".join(inspect.getdoc(builder).split("\n\n")[0].split())
    return Arch(name, role, builder, options, doc)


ARCHS: dict[str, Arch] = {
    arch.name: arch
    for arch in (
        _arch("unet", "generator", UNet),
        _arch("resnet_generator", "generator", ResnetGenerator),
        _arch("patchgan", "discriminator", PatchGAN),
        _arch("encoder", "encoder", Encoder),
        _arch("dcgan_generator", "generator", DCGANGenerator),
        _arch("dcgan_discriminator", "discriminator", DCGANDiscriminator),
        _arch("classifier", "classifier", Classifier),
        _arch("stargan_discriminator", "discriminator", StarGANDiscriminator),
        _arch("unit_encoder", "encoder", UNITEncoder),
        _arch("unit_decoder", "generator", UNITDecoder),
    )
}


def _suggestion(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _lookup(arch: str) -> Arch:
    if not isinstance(arch, str) or arch not in ARCHS:
        names = sorted(ARCHS)
        hint = _suggestion(str(arch), names)
        raise ValueError(f"unknown arch {arch!r}{hint}; known archs: {', '.join(names)}")
    return ARCHS[arch]


def options_of(arch: str) -> dict[str, object]:
    """The option names of `arch` with their defaults (a copy, safe to change)."""
    return dict(_lookup(arch).options)


def build(arch: str, *, in_channels: int, out_channels: int, image_size: int, **options: object) -> nn.Module:
    """A freshly initialised module of architecture `arch`.

    `in_channels` counts the channels after the module combines its inputs (images, broadcast
    vectors, one-hot labels); `image_size` is the side of the square images it will see, which
    fixes how deep it can go. Unknown archs and options raise `ValueError` naming the valid ones.
    """
    entry = _lookup(arch)
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        valid = sorted(entry.options)
        hint = _suggestion(unknown[0], valid) if len(unknown) == 1 else ""
        raise ValueError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
            f" for arch {arch!r}{hint}; valid options: {', '.join(valid)}"
        )
    positive_int("in_channels", in_channels)
    positive_int("out_channels", out_channels)
    positive_int("image_size", image_size)
    module = entry.builder(in_channels, out_channels, image_size, **options)
    return init_weights(module)


def mixes_batch(module: nn.Module) -> bool:
    """Whether `module` contains a layer that mixes the samples of a batch.

    Batch norm (any BatchNorm*, SyncBatchNorm) normalises with the batch's statistics in training
    and updates its running statistics from every batch, so merging or splitting such a module's
    calls (real and fake images in one forward, say) changes its results. Instance norm that
    tracks running statistics normalises each sample alone but averages the batch into its
    running statistics, one update per call, so it counts too. The answer is structural, the
    same in train and eval mode. A custom layer that mixes samples says so with the attribute
    `mixes_batch = True`.
    """
    return any(
        isinstance(submodule, nn.modules.batchnorm._BatchNorm)
        or (isinstance(submodule, nn.modules.instancenorm._InstanceNorm) and submodule.track_running_stats)
        or getattr(submodule, "mixes_batch", False) is True
        for submodule in module.modules()
    )
