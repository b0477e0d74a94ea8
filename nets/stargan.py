"""StarGAN discriminator: image(s) in, the tuple `(src, cls)` out.

    trunk: `layers` 4x4 stride-2 convolutions with LeakyReLU(0.01) (StarGAN's slope)
    src:   3x3 convolution to a PatchGAN map of raw logits, (N, out_channels, h, h)
    cls:   convolution with a kernel the size of the map, to domain logits, (N, classes)

h = image_size // 2**layers; the heads are returned in the order of a spec's
`heads: {src: probability, cls: raw}`, both from one pass through the trunk. StarGAN uses no
norm in its discriminator (its WGAN-GP loss needs per-sample gradients, which batch norm would
couple), so `norm` defaults to none. Channels double per layer up to 8 * width (StarGAN's own
doubling has no cap; the cap keeps deep settings small).
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import halving_block, level_channels
from .checks import positive_int
from .inputs import Combine
from .norms import check_norm, norm_layer


class StarGANDiscriminator(nn.Module):
    """StarGAN discriminator: shared stride-2 convolutions, then two heads returned as the tuple
    (src, cls): a PatchGAN logit map (N, out_channels, h, h) with h = image_size // 2**layers, and
    domain logits (N, classes).

    Options: `classes` number of domains; `width` channels of the first convolution, doubling
    per layer up to 8 * width; `layers` stride-2 convolutions; `norm` none | instance | batch
    (none, as StarGAN); `num_classes` to one-hot encode an integer label input.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        *,
        classes: int = 3,
        width: int = 32,
        layers: int = 3,
        norm: str = "none",
        num_classes: int | None = None,
    ):
        super().__init__()
        classes = positive_int("classes", classes)
        width = positive_int("width", width)
        layers = positive_int("layers", layers)
        norm = check_norm(norm)
        side = image_size // 2**layers
        if side < 1:
            raise ValueError(f"layers={layers} halves image_size={image_size} below one pixel")
        self.combine = Combine(in_channels, num_classes)
        modules: list[nn.Module] = []
        source = in_channels
        for layer in range(layers):
            target = level_channels(width, layer)
            layer_norm = None if layer == 0 else norm_layer(norm, target, image_size // 2 ** (layer + 1))
            modules += halving_block(source, target, layer_norm, slope=0.01)
            source = target
        self.trunk = nn.Sequential(*modules)
        self.src = nn.Conv2d(source, out_channels, kernel_size=3, padding=1)
        # A kernel covering the whole map makes the domain logits a function of the whole image.
        self.cls = nn.Sequential(nn.Conv2d(source, classes, kernel_size=side), nn.Flatten())

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(self.combine(*inputs))
        return self.src(features), self.cls(features)
