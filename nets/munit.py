"""MUNIT's networks (arXiv 1804.04732): content and style encoders, an AdaIN decoder, and a
multi-scale discriminator, sized by default for 32x32 images.

Content encoder: image -> content map (N, width * 2**downsample, image_size // 2**downsample, same).

    reflection-padded 7x7 conv -> `downsample` stride-2 4x4 convs (channels doubling)
    -> `blocks` residual blocks; instance norm and ReLU after every conv

Style encoder: image -> style vector (N, style).

    7x7 conv -> `downsample` stride-2 4x4 convs (doubling for the first two, then constant)
    -> global average pooling -> 1x1 conv; ReLU after each conv but the last, no norm

Decoder: (content map, style vector) -> image in [-1, 1].

    MLP: style -> mlp_width -> mlp_width -> the mean and std of every AdaIN layer
    `blocks` residual blocks with AdaIN in place of instance norm
    -> `upsample` x (nearest 2x -> 5x5 conv halving channels -> layer norm -> ReLU)
    -> 7x7 conv -> tanh

The style is never concatenated to the content: it reaches the image only through the AdaIN
parameters, each layer's `std * instance_norm(h) + mean`. The decoder is called as `G(c, s)`;
lossgraph counts its input channels as the content's plus the style's, so the content's are
`in_channels - style`.

Discriminator: image -> one PatchGAN logit map per scale, returned as a tuple (heads `full`,
`half`, `quarter`, ... in a spec). Scale k sees the image shrunk k times by a 3x3 average pool of
stride 2 that does not count the padding; each scale has `layers` stride-2 4x4 convs with
LeakyReLU(0.2) and no norm, then a 1x1 conv to raw logits (a least-squares discriminator).

The released code (NVlabs/MUNIT) at 256x256: width 64, 4 residual blocks, discriminator width 64
with 4 layers and 3 scales. At 32x32 a spec takes the defaults here: width 16, 2 residual blocks,
a discriminator of 3 layers and 2 scales (4x4 and 2x2 maps). Encoders and decoders are initialised
Kaiming-normal as the released code does (`INIT`, nets/init.py), the discriminator N(0, 0.02).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from .blocks import level_channels
from .checks import halvings_fit, non_negative_int, output_count, positive_int
from .inputs import Combine
from .resnet import ResidualBlock

_HALVE = {"stride": 2}  # a 4x4 conv after a reflection pad of 1: the side halves exactly


def _conv(source: int, target: int, kernel: int, **options: object) -> list[nn.Module]:
    """A reflection-padded convolution that keeps the side (stride 1) or halves it (`_HALVE`)."""
    pad = 1 if options.get("stride") == 2 else kernel // 2
    return [nn.ReflectionPad2d(pad), nn.Conv2d(source, target, kernel_size=kernel, **options)]


def _check_side(image_size: int, halvings: int, option: str) -> None:
    # A reflection pad of p needs a map larger than p: 2 pixels after the last halving (residual
    # blocks pad by 1), and 4 for the 7x7 stem.
    halvings_fit(image_size, halvings, option, smallest=2)
    if image_size < 4:
        raise ValueError(f"the reflection-padded 7x7 convolution needs image_size >= 4, got {image_size}")


class MUNITContentEncoder(nn.Module):
    """MUNIT content encoder: 7x7 conv, stride-2 convs and residual blocks with instance norm,
    returning the content map (N, width * 2**downsample, image_size // 2**downsample, same).

    Options: `width` channels of the stem, doubling per down-sampling up to 8 * width;
    `downsample` stride-2 4x4 convs; `blocks` residual blocks; `num_classes` to one-hot encode a
    label input.
    """

    INIT = "kaiming"

    def __init__(self, in_channels: int, out_channels: int, image_size: int, *, width: int = 16,
                 downsample: int = 2, blocks: int = 2, num_classes: int | None = None):
        super().__init__()
        width = positive_int("width", width)
        downsample = non_negative_int("downsample", downsample)
        blocks = non_negative_int("blocks", blocks)
        _check_side(image_size, downsample, "downsample")
        hidden = level_channels(width, downsample)
        output_count(out_channels, hidden, "width * 2**downsample")
        self.combine = Combine(in_channels, num_classes)
        # No conv bias: the instance norm after each subtracts it.
        layers = _conv(in_channels, width, 7, bias=False) + [nn.InstanceNorm2d(width), nn.ReLU()]
        for step in range(downsample):
            source, target = level_channels(width, step), level_channels(width, step + 1)
            layers += _conv(source, target, 4, bias=False, **_HALVE) + [nn.InstanceNorm2d(target), nn.ReLU()]
        side = image_size // 2**downsample
        layers += [ResidualBlock(hidden, "instance", side) for _ in range(blocks)]
        self.layers = nn.Sequential(*layers)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(self.combine(*inputs))


class MUNITStyleEncoder(nn.Module):
    """MUNIT style encoder: convs without norm, global average pooling and a 1x1 conv, returning
    the style vector (N, style).

    Options: `style` size of the code; `width` channels of the 7x7 stem, doubling over the first
    two down-samplings only; `downsample` stride-2 4x4 convs; `num_classes` to one-hot encode a
    label input.
    """

    INIT = "kaiming"

    def __init__(self, in_channels: int, out_channels: int, image_size: int, *, style: int = 8,
                 width: int = 16, downsample: int = 4, num_classes: int | None = None):
        super().__init__()
        style = positive_int("style", style)
        width = positive_int("width", width)
        downsample = non_negative_int("downsample", downsample)
        halvings_fit(image_size, downsample, "downsample", smallest=1)
        if image_size < 4:
            raise ValueError(f"the reflection-padded 7x7 convolution needs image_size >= 4, got {image_size}")
        output_count(out_channels, style, "style")
        self.combine = Combine(in_channels, num_classes)
        layers = _conv(in_channels, width, 7) + [nn.ReLU()]
        source = width
        for step in range(downsample):
            target = width * 2 ** min(step + 1, 2)
            layers += _conv(source, target, 4, **_HALVE) + [nn.ReLU()]
            source = target
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(source, style, kernel_size=1), nn.Flatten()]
        self.layers = nn.Sequential(*layers)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(self.combine(*inputs))


def adain(hidden: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Adaptive instance norm: each sample's channels normalised, then scaled by its `std` and
    shifted by its `mean`, both (N, C)."""
    return functional.instance_norm(hidden, eps=1e-5) * std[:, :, None, None] + mean[:, :, None, None]


class AdaINResidualBlock(nn.Module):
    """x + (pad conv3x3 AdaIN ReLU pad conv3x3 AdaIN)(x), the AdaIN parameters given per call."""

    PARAMETERS_PER_CHANNEL = 4  # (mean, std) for each of the two AdaIN layers

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        # No conv bias: AdaIN's normalisation subtracts it.
        self.first = nn.Sequential(*_conv(channels, channels, 3, bias=False))
        self.second = nn.Sequential(*_conv(channels, channels, 3, bias=False))

    def forward(self, hidden: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
        mean1, std1, mean2, std2 = parameters.split(self.channels, dim=1)
        out = functional.relu(adain(self.first(hidden), mean1, std1))
        return hidden + adain(self.second(out), mean2, std2)


class MUNITDecoder(nn.Module):
    """MUNIT decoder, G(c, s): residual blocks with AdaIN whose parameters an MLP computes from
    the style vector, then nearest-neighbour up-sampling with 5x5 convs and layer norm, and a
    7x7 conv with tanh; returns (N, out_channels, image_size, image_size).

    Takes the content map (N, in_channels - style, image_size // 2**upsample, same) and the style
    vector (N, style), in that order. Options: `style` size of the style vector; `upsample`
    up-sampling steps, each halving the channels; `blocks` residual blocks; `mlp_width` hidden
    size of the MLP.
    """

    INIT = "kaiming"

    def __init__(self, in_channels: int, out_channels: int, image_size: int, *, style: int = 8,
                 upsample: int = 2, blocks: int = 2, mlp_width: int = 256):
        super().__init__()
        self.style = positive_int("style", style)
        upsample = non_negative_int("upsample", upsample)
        blocks = non_negative_int("blocks", blocks)
        mlp_width = positive_int("mlp_width", mlp_width)
        _check_side(image_size, upsample, "upsample")
        content = in_channels - self.style
        if content < 2**upsample or content % 2**upsample:
            raise ValueError(f"the content map has in_channels - style = {in_channels} - {self.style} = {content} "
                             f"channels; {upsample} up-sampling steps halve them, so they must be a positive "
                             f"multiple of {2**upsample}")
        self.content_channels = content
        self.content_side = image_size // 2**upsample
        self.blocks = nn.ModuleList(AdaINResidualBlock(content) for _ in range(blocks))
        count = AdaINResidualBlock.PARAMETERS_PER_CHANNEL * content * blocks
        self.mlp = nn.Sequential(nn.Linear(self.style, mlp_width), nn.ReLU(),
                                 nn.Linear(mlp_width, mlp_width), nn.ReLU(),
                                 nn.Linear(mlp_width, count)) if blocks else None
        layers: list[nn.Module] = []
        channels = content
        for _ in range(upsample):
            # Layer norm over (C, H, W) with a per-channel scale and shift: it keeps the conv's bias.
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), *_conv(channels, channels // 2, 5),
                       nn.GroupNorm(1, channels // 2), nn.ReLU()]
            channels //= 2
        layers += [*_conv(channels, out_channels, 7), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        shapes = [tuple(tensor.shape) for tensor in inputs]
        if len(inputs) != 2 or inputs[0].dim() != 4 or inputs[1].dim() != 2:
            raise ValueError(f"munit_decoder takes a content map (N, C, h, w) and a style vector (N, {self.style}), "
                             f"in that order; got shapes {shapes}")
        content, style = inputs
        expected = (self.content_channels, self.content_side, self.content_side)
        if tuple(content.shape[1:]) != expected or style.shape[1] != self.style or len(style) != len(content):
            raise ValueError(f"munit_decoder expects content (N, {', '.join(map(str, expected))}) and style "
                             f"(N, {self.style}); got shapes {shapes}")
        hidden = content
        if self.mlp is not None:
            parameters = self.mlp(style).chunk(len(self.blocks), dim=1)
            for block, block_parameters in zip(self.blocks, parameters):
                hidden = block(hidden, block_parameters)
        return self.layers(hidden)


class MUNITDiscriminator(nn.Module):
    """MUNIT's multi-scale discriminator: one PatchGAN of `layers` stride-2 convs per scale, the
    image halved by a 3x3 average pool (stride 2, padding not counted) between scales; returns a
    tuple of raw logit maps, one per scale from the full size down, each (N, out_channels,
    side // 2**layers, same) for its scale's side.

    Options: `scales` number of scales (a spec's heads: full, half, quarter, ...); `layers`
    stride-2 4x4 convs per scale with LeakyReLU(0.2) and no norm; `width` channels of the first,
    doubling per layer up to 8 * width; `num_classes` to one-hot encode a label input.
    """

    def __init__(self, in_channels: int, out_channels: int, image_size: int, *, scales: int = 2,
                 layers: int = 3, width: int = 32, num_classes: int | None = None):
        super().__init__()
        scales = positive_int("scales", scales)
        layers = positive_int("layers", layers)
        width = positive_int("width", width)
        # The smallest scale's last conv reads a map of 2 pixels (its reflection pad needs 2).
        if image_size % 2 ** (scales - 1 + layers) or image_size // 2 ** (scales - 1 + layers) < 1:
            raise ValueError(f"scales={scales} and layers={layers} need image_size divisible by "
                             f"2**{scales - 1 + layers} = {2 ** (scales - 1 + layers)}, got image_size={image_size}")
        self.combine = Combine(in_channels, num_classes)
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.scales = nn.ModuleList()
        for _ in range(scales):
            modules: list[nn.Module] = []
            source = in_channels
            for layer in range(layers):
                target = level_channels(width, layer)
                modules += _conv(source, target, 4, **_HALVE) + [nn.LeakyReLU(0.2)]
                source = target
            modules.append(nn.Conv2d(source, out_channels, kernel_size=1))
            self.scales.append(nn.Sequential(*modules))

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        image = self.combine(*inputs)
        outputs = []
        for position, scale in enumerate(self.scales):
            if position:
                image = self.downsample(image)
            outputs.append(scale(image))
        return tuple(outputs)
