"""Network architectures by name, for specs to refer to as `{arch: unet, width: 16}`.

`ARCHS` maps each name to an `Arch`: its role, the builder (a module class), the options with
their defaults, a one-line doc and the range of its outputs. The options are read off the
builder's keyword parameters other than in_channels, out_channels and image_size, so registering
an architecture is one `_arch(...)` entry and its defaults live in one place. Roles: "generator"
(image(s) to an image in [-1, 1]), "discriminator" (image(s) to raw logits, never probabilities),
"encoder" and "classifier". Users add their own with `register_arch` or the `lossgraph.archs`
entry point (see `nets.registry`).

Every module's `forward(*inputs)` combines its arguments itself (see `nets.inputs`), and
`build` initialises weights pix2pix-style from the current torch RNG (see `nets.init`),
but for classes marked `OWN_INIT` that initialise themselves (StarGAN v2's, He init).
The exceptions: `dcgan_generator` takes only vectors and labels (a latent code, no image),
`unit_decoder` takes a latent map smaller than the image, and `munit_decoder` takes a content map
and a style vector, which it never concatenates (AdaIN; see `nets.munit`).

Networks tied by weight sharing (CoGAN's generators and discriminators, UNIT's encoders and
decoders) name the submodules they can share in their class's `SHAREABLE`; `share` ties them
(see `nets.sharing`).
"""

from __future__ import annotations

import traceback
from typing import Callable

from torch import nn

from .checks import positive_int
from .classifier import Classifier
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .encoder import Encoder
from .init import init_weights
from .inputs import Combine, CombineVectors, combine, combine_vectors
from .lptn import LPTN
from .munit import MUNITContentEncoder, MUNITDecoder, MUNITDiscriminator, MUNITStyleEncoder
from .patchgan import PatchGAN
from .registry import (
    ARCHS,
    ENTRY_POINT_GROUP,
    REQUIRED,
    ROLES,
    Arch,
    ArchLoadError,
    _suggestion,
    accepts_option,
    arch_entry_points,
    default_out_channels,
    describe,
    find_arch,
    lookup,
    options_of,
    register_arch,
)
from .resnet import ResnetGenerator
from .sharing import share, shareable_parts
from .stargan import StarGANDiscriminator
from .starganv2 import StarGANv2Discriminator, StarGANv2Generator, StarGANv2Mapping, StarGANv2StyleEncoder
from .tunit import TUNITGuide
from .unet import UNet
from .unit import UNITDecoder, UNITEncoder

__all__ = [
    "ARCHS",
    "ENTRY_POINT_GROUP",
    "REQUIRED",
    "ROLES",
    "Arch",
    "ArchLoadError",
    "Combine",
    "CombineVectors",
    "accepts_option",
    "arch_entry_points",
    "build",
    "combine",
    "combine_vectors",
    "default_out_channels",
    "find_arch",
    "init_weights",
    "lookup",
    "mixes_batch",
    "options_of",
    "register_arch",
    "share",
    "shareable_parts",
]

def _arch(name: str, role: str, builder: Callable[..., nn.Module], output_range: tuple[float, float] | None = None) -> Arch:
    """A built-in `Arch` whose options and doc come from `builder`'s signature and docstring."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return describe(name, role, builder, output_range=output_range)


TANH = (-1.0, 1.0)  # the built-in generators end in tanh (tests/nets/test_register_arch.py checks)

ARCHS.update(
    (arch.name, arch)
    for arch in (
        _arch("unet", "generator", UNet, TANH),
        _arch("resnet_generator", "generator", ResnetGenerator, TANH),
        _arch("patchgan", "discriminator", PatchGAN),
        _arch("encoder", "encoder", Encoder),
        _arch("dcgan_generator", "generator", DCGANGenerator, TANH),
        _arch("dcgan_discriminator", "discriminator", DCGANDiscriminator),
        _arch("classifier", "classifier", Classifier),
        _arch("stargan_discriminator", "discriminator", StarGANDiscriminator),
        _arch("unit_encoder", "encoder", UNITEncoder),
        _arch("unit_decoder", "generator", UNITDecoder, TANH),
        _arch("lptn", "generator", LPTN),  # tanh'd low band plus masked high bands: unbounded
        _arch("munit_content_encoder", "encoder", MUNITContentEncoder),
        _arch("munit_style_encoder", "encoder", MUNITStyleEncoder),
        _arch("munit_decoder", "generator", MUNITDecoder, TANH),
        _arch("munit_discriminator", "discriminator", MUNITDiscriminator),
        _arch("tunit_guide", "encoder", TUNITGuide),
        _arch("starganv2_generator", "generator", StarGANv2Generator, TANH),
        _arch("starganv2_mapping", "encoder", StarGANv2Mapping),
        _arch("starganv2_style_encoder", "encoder", StarGANv2StyleEncoder),
        _arch("starganv2_discriminator", "discriminator", StarGANv2Discriminator),
    )
)


def build(arch: str, *, in_channels: int, out_channels: int, image_size: int, **options: object) -> nn.Module:
    """A freshly initialised module of architecture `arch`.

    `in_channels` counts the channels after the module combines its inputs (images, broadcast
    vectors, one-hot labels); `image_size` is the side of the square images it will see, which
    fixes how deep it can go. Unknown archs and options, and missing required ones, raise
    `ValueError` naming the valid ones. Built-in modules are initialised pix2pix-style
    (`init_weights`); a user's keep the weights their builder gave them.
    """
    entry = lookup(arch)
    unknown = [] if entry.any_option else sorted(set(options) - set(entry.options))
    if unknown:
        valid = sorted(entry.options)
        hint = _suggestion(unknown[0], valid) if len(unknown) == 1 else ""
        raise ValueError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
            f" for arch {arch!r}{hint}; valid options: {', '.join(valid) or '(none)'}"
        )
    missing = [name for name, default in entry.options.items() if default is REQUIRED and name not in options]
    if missing:
        raise ValueError(f"arch {arch!r} needs option{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
                         f" (its builder has no default); give {'them' if len(missing) > 1 else 'it'} in the spec")
    positive_int("in_channels", in_channels)
    positive_int("out_channels", out_channels)
    positive_int("image_size", image_size)
    sizes = {"in_channels": in_channels, "out_channels": out_channels, "image_size": image_size}
    if entry.builtin:
        module = entry.builder(**sizes, **options)
        # A class with OWN_INIT initialised itself as its paper does (StarGAN v2: He init).
        return module if getattr(module, "OWN_INIT", False) else init_weights(module)
    return _user_module(entry, sizes, options)


def _user_module(entry: Arch, sizes: dict[str, int], options: dict[str, object]) -> nn.Module:
    """A user's builder called, its failures turned into `ValueError`s that say which builder
    failed where, so that `lossgraph check` reports them at the network's spec line."""
    try:
        module = entry.builder(**sizes, **options)
    except (ValueError, TypeError):
        raise
    except Exception as error:  # noqa: BLE001 - a user's builder may raise anything
        frames = traceback.extract_tb(error.__traceback__)
        where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        raise ValueError(f"the builder of arch {entry.name!r} ({entry.source}) raised "
                         f"{type(error).__name__}{where}: {error}") from error
    if not isinstance(module, nn.Module):
        raise TypeError(f"the builder of arch {entry.name!r} ({entry.source}) returned "
                        f"{type(module).__name__}, not a torch.nn.Module")
    return module


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
