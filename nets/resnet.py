"""ResNet generator in the CycleGAN style: image(s) in, image out in [-1, 1].

    7x7 conv stem -> `downsample` stride-2 3x3 convs -> `blocks` residual blocks
    -> `downsample` stride-2 3x3 transposed convs -> 7x7 conv -> tanh

Every convolution but the last is followed by the norm and a ReLU. Reflection padding around the
7x7 and the residual convolutions avoids the dark borders that zero padding leaves on generated
images (CycleGAN's choice). Channels double per down-sampling, up to 8 * width.

Note [Conditions survive the stem]
    A condition broadcast over the image (StarGAN's one-hot label, PixelDA's noise) is constant
    over height and width, and so is its contribution to the reflection-padded stem convolution:
    an instance norm right after would subtract it exactly, and the generator could not see its
    condition at all. So a generator given more input channels than it outputs (a condition) has
    a biased stem without norm; the ReLU after it turns the condition into features that later
    norms keep. `stem_norm` says otherwise explicitly.
"""

from __future__ import annotations

import torch
from torch import nn

from .checks import halvings_fit, non_negative_int, positive_int
from .inputs import Combine
from .norms import check_bias, check_norm, convolution_with_norm, norm_layer

_HALVE = {"kernel_size": 3, "stride": 2, "padding": 1}
_DOUBLE = {"kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1}


class ResidualBlock(nn.Module):
    """x + (pad conv3x3 norm ReLU pad conv3x3 norm)(x), no activation after the sum (CycleGAN)."""

    def __init__(self, channels: int, norm: str, side: int, bias: bool | None = None):
        super().__init__()
        first = norm_layer(norm, channels, side)
        second = norm_layer(norm, channels, side)
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            *convolution_with_norm(nn.Conv2d, channels, channels, first, bias, kernel_size=3),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            *convolution_with_norm(nn.Conv2d, channels, channels, second, bias, kernel_size=3),
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.body(hidden)


class ResnetGenerator(nn.Module):
    """ResNet generator (CycleGAN): conv stem, stride-2 down-sampling, residual blocks,
    transposed-conv up-sampling, tanh output.

    Options: `width` channels of the stem, doubling per down-sampling up to 8 * width; `blocks`
    residual blocks; `downsample` stride-2 steps (image_size must be divisible by 2**downsample,
    leaving at least 2 pixels for the reflection padding); `norm` instance | batch | none;
    `num_classes` to one-hot encode an integer label input; `stem_norm` (default: only without a
    condition, see Note [Conditions survive the stem]); `bias` true | false | null (default: only
    where no norm follows; nets/norms.py, Note [Biases as the released code has them]).

    With `width: 64, blocks: 9, bias: true` and instance norm this is the released CycleGAN code's
    `resnet_9blocks`, 11,378,179 parameters for RGB (tests/nets/test_released_nets.py).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        *,
        width: int = 16,
        blocks: int = 3,
        downsample: int = 2,
        norm: str = "instance",
        num_classes: int | None = None,
        stem_norm: bool | None = None,
        bias: bool | None = None,
    ):
        super().__init__()
        width = positive_int("width", width)
        blocks = non_negative_int("blocks", blocks)
        downsample = non_negative_int("downsample", downsample)
        norm = check_norm(norm)
        bias = check_bias(bias)
        halvings_fit(image_size, downsample, "downsample", smallest=2)
        if image_size < 4:
            raise ValueError(f"the reflection-padded 7x7 stem needs image_size >= 4, got {image_size}")
        self.combine = Combine(in_channels, num_classes)
        channels = [width * min(2**step, 8) for step in range(downsample + 1)]

        if stem_norm is None:
            stem_norm = in_channels <= out_channels and num_classes is None
        stem = norm_layer(norm, width, image_size) if stem_norm else None
        layers = [nn.ReflectionPad2d(3)]
        layers += convolution_with_norm(nn.Conv2d, in_channels, width, stem, bias, kernel_size=7)
        layers.append(nn.ReLU())
        for step in range(downsample):
            source, target = channels[step], channels[step + 1]
            step_norm = norm_layer(norm, target, image_size // 2 ** (step + 1))
            layers += convolution_with_norm(nn.Conv2d, source, target, step_norm, bias, **_HALVE)
            layers.append(nn.ReLU())
        layers += [ResidualBlock(channels[-1], norm, image_size // 2**downsample, bias) for _ in range(blocks)]
        for step in reversed(range(downsample)):
            source, target = channels[step + 1], channels[step]
            step_norm = norm_layer(norm, target, image_size // 2**step)
            layers += convolution_with_norm(nn.ConvTranspose2d, source, target, step_norm, bias, **_DOUBLE)
            layers.append(nn.ReLU())
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, kernel_size=7), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(self.combine(*inputs))
