"""UNIT's encoder and decoder (generator), laid out for the shared latent space's weight sharing.

Encoder: image(s) to the mean of a latent MAP, (N, latent_channels, h, h), h = image_size // 2**downsample.

    stem:   7x7 conv -> `downsample` stride-2 3x3 convs -> `blocks` residual blocks    (own)
    shared: `shared_blocks` residual blocks [-> 1x1 conv to latent_channels]          (shareable)

Decoder: a latent map (N, in_channels, h, h) to an image in [-1, 1],
(N, out_channels, image_size, image_size).

    shared: [1x1 conv from in_channels ->] `shared_blocks` residual blocks             (shareable)
    own:    `blocks` residual blocks -> `downsample` stride-2 transposed convs -> 7x7 conv -> tanh

Each convolution but the last is followed by the norm and a ReLU, as in the ResNet generator,
whose residual block these reuse. The hidden map at h has C = width * 2**downsample channels (at
most 8 * width). The encoder's `latent_channels` defaults to C; the decoder's `in_channels` is
whatever it is applied to (the compiler takes it from the encoder's output) and a 1x1 convolution
adapts it to C only when they differ, so with the defaults the code is the residual stream itself,
as in UNIT.

UNIT ties the last encoder layers of E1 and E2, and the first decoder layers of G1 and G2, so
both domains map to one latent space: `nets.share(E2, E1, ["shared"])`, `nets.share(G2, G1, ["shared"])`.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import level_channels
from .checks import halvings_fit, non_negative_int, output_count, positive_int
from .inputs import Combine
from .norms import check_norm, convolution_with_norm, norm_layer
from .resnet import ResidualBlock

_HALVE = {"kernel_size": 3, "stride": 2, "padding": 1}
_DOUBLE = {"kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1}


def _check_size(image_size: int, downsample: int) -> None:
    # Reflection padding needs a map of at least 2 pixels (residual blocks) and 4 (the 7x7 conv).
    halvings_fit(image_size, downsample, "downsample", smallest=2)
    if image_size < 4:
        raise ValueError(f"the reflection-padded 7x7 convolution needs image_size >= 4, got {image_size}")


class UNITEncoder(nn.Module):
    """UNIT encoder: 7x7 stem, stride-2 down-sampling and residual blocks (`stem`), then
    `shared_blocks` residual blocks (`shared`, shareable between the two domains' encoders),
    returning the latent mean map (N, latent_channels, image_size // 2**downsample, same).

    Options: `width` stem channels, doubling per down-sampling up to 8 * width; `downsample`
    stride-2 steps; `blocks` residual blocks of the stem; `shared_blocks` residual blocks of the
    shared part; `latent_channels` channels of the code (null: width * 2**downsample, at most
    8 * width); `norm` instance | batch | none; `num_classes` to one-hot encode a label input.
    """

    SHAREABLE = ("stem", "shared")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        *,
        width: int = 16,
        downsample: int = 2,
        blocks: int = 2,
        shared_blocks: int = 1,
        latent_channels: int | None = None,
        norm: str = "instance",
        num_classes: int | None = None,
    ):
        super().__init__()
        width = positive_int("width", width)
        downsample = non_negative_int("downsample", downsample)
        blocks = non_negative_int("blocks", blocks)
        shared_blocks = positive_int("shared_blocks", shared_blocks)
        norm = check_norm(norm)
        _check_size(image_size, downsample)
        hidden = level_channels(width, downsample)
        if latent_channels is not None:
            positive_int("latent_channels", latent_channels)
        latent_channels = hidden if latent_channels is None else latent_channels
        output_count(out_channels, latent_channels, "latent_channels")
        side = image_size // 2**downsample
        self.combine = Combine(in_channels, num_classes)

        layers = [nn.ReflectionPad2d(3)]
        stem_norm = norm_layer(norm, width, image_size)
        layers += convolution_with_norm(nn.Conv2d, in_channels, width, stem_norm, kernel_size=7)
        layers.append(nn.ReLU())
        for step in range(downsample):
            source, target = level_channels(width, step), level_channels(width, step + 1)
            step_norm = norm_layer(norm, target, image_size // 2 ** (step + 1))
            layers += convolution_with_norm(nn.Conv2d, source, target, step_norm, **_HALVE)
            layers.append(nn.ReLU())
        layers += [ResidualBlock(hidden, norm, side) for _ in range(blocks)]
        self.stem = nn.Sequential(*layers)

        shared: list[nn.Module] = [ResidualBlock(hidden, norm, side) for _ in range(shared_blocks)]
        if latent_channels != hidden:
            shared.append(nn.Conv2d(hidden, latent_channels, kernel_size=1))
        self.shared = nn.Sequential(*shared)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.shared(self.stem(self.combine(*inputs)))


class UNITDecoder(nn.Module):
    """UNIT decoder (generator) from a latent map (N, in_channels, image_size // 2**downsample,
    same), not an image: `shared_blocks` residual blocks (`shared`, shareable between the two
    domains' decoders), then residual blocks, stride-2 transposed convolutions and a 7x7
    convolution with tanh (`own`), returning (N, out_channels, image_size, image_size).

    Options: `width` channels of the last hidden map, doubling per down-sampling step towards the
    latent up to 8 * width; `downsample` stride-2 up-sampling steps (the latent side is
    image_size // 2**downsample); `blocks` residual blocks of the own part; `shared_blocks`
    residual blocks of the shared part; `norm` instance | batch | none; `num_classes` to one-hot
    encode an integer label input (broadcast over the latent map).
    """

    SHAREABLE = ("shared", "own")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        *,
        width: int = 16,
        downsample: int = 2,
        blocks: int = 2,
        shared_blocks: int = 1,
        norm: str = "instance",
        num_classes: int | None = None,
    ):
        super().__init__()
        width = positive_int("width", width)
        downsample = non_negative_int("downsample", downsample)
        blocks = non_negative_int("blocks", blocks)
        shared_blocks = positive_int("shared_blocks", shared_blocks)
        norm = check_norm(norm)
        _check_size(image_size, downsample)
        hidden = level_channels(width, downsample)
        self.latent_side = image_size // 2**downsample
        self.combine = Combine(in_channels, num_classes)

        shared: list[nn.Module] = []
        if in_channels != hidden:
            shared.append(nn.Conv2d(in_channels, hidden, kernel_size=1))
        shared += [ResidualBlock(hidden, norm, self.latent_side) for _ in range(shared_blocks)]
        self.shared = nn.Sequential(*shared)

        layers: list[nn.Module] = [ResidualBlock(hidden, norm, self.latent_side) for _ in range(blocks)]
        for step in reversed(range(downsample)):
            source, target = level_channels(width, step + 1), level_channels(width, step)
            step_norm = norm_layer(norm, target, image_size // 2**step)
            layers += convolution_with_norm(nn.ConvTranspose2d, source, target, step_norm, **_DOUBLE)
            layers.append(nn.ReLU())
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, kernel_size=7), nn.Tanh()]
        self.own = nn.Sequential(*layers)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        latent = self.combine(*inputs)
        if latent.shape[2:] != (self.latent_side, self.latent_side):
            # Applied to a full-size image, the decoder would silently return a larger image.
            raise ValueError(
                f"unit_decoder takes a latent map of {self.latent_side}x{self.latent_side} pixels"
                f" (image_size // 2**downsample), got {tuple(latent.shape[2:])}"
            )
        return self.own(self.shared(latent))
