"""PatchGAN discriminator (pix2pix): image(s) in, a map of raw logits out, one per patch.

`layers` 4x4 stride-2 convolutions with LeakyReLU(0.2), channels doubling from `width` up to
8 * width, the first without a norm (as in pix2pix); then a 3x3 stride-1 convolution to
`out_channels`. The output is (N, out_channels, image_size // 2**layers, same).

Each logit sees a patch of 8, 18, 38, 78, 158 pixels for layers = 1, 2, 3, 4, 5. The default of
two layers (an 8x8 map of 18-pixel patches at 32x32) is chosen for the small images this project
trains on: with three layers every logit sees the whole 32x32 image, and in DiscoGAN on shapes
(filled to outlined) the generator then collapsed, where with two it learned the translation. For
256x256 images, layers: 4 is close to pix2pix's 70-pixel patches.

The module returns logits, never probabilities: a spec's probability output applies the sigmoid
inside its stable log terms.
"""

from __future__ import annotations

import torch
from torch import nn

from .checks import positive_int
from .inputs import Combine
from .norms import check_norm, convolution_with_norm, norm_layer

_HALVE = {"kernel_size": 4, "stride": 2, "padding": 1}


class PatchGAN(nn.Module):
    """PatchGAN discriminator: stride-2 convolutions with LeakyReLU(0.2), then a convolution to
    an `out_channels` map of logits, one per overlapping patch.

    Options: `width` channels of the first convolution, doubling per layer up to 8 * width;
    `layers` stride-2 convolutions (the map side is image_size // 2**layers); `norm`
    instance | batch | none; `num_classes` to one-hot encode an integer label input.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        *,
        width: int = 32,
        layers: int = 2,
        norm: str = "instance",
        num_classes: int | None = None,
    ):
        super().__init__()
        width = positive_int("width", width)
        layers = positive_int("layers", layers)
        norm = check_norm(norm)
        if image_size // 2**layers < 1:
            raise ValueError(f"layers={layers} halves image_size={image_size} below one pixel")
        self.combine = Combine(in_channels, num_classes)
        modules: list[nn.Module] = []
        source = in_channels
        for layer in range(layers):
            target = width * min(2**layer, 8)
            layer_norm = None if layer == 0 else norm_layer(norm, target, image_size // 2 ** (layer + 1))
            modules += convolution_with_norm(nn.Conv2d, source, target, layer_norm, **_HALVE)
            modules.append(nn.LeakyReLU(0.2))
            source = target
        modules.append(nn.Conv2d(source, out_channels, kernel_size=3, padding=1))
        self.layers = nn.Sequential(*modules)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(self.combine(*inputs))
