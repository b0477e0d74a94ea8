"""Encoder to a Gaussian latent code (BicycleGAN's E): image(s) in, `(mu, logvar)` out.

    `depth` 4x4 stride-2 convolutions with LeakyReLU(0.2) -> global average pooling
    -> two linear heads, `mu` and `logvar`, each (N, latent)

The heads are returned as a tuple in that order, matching a spec's `heads: {mu: raw, logvar: raw}`.
Average pooling makes the module work at any image size its convolutions fit. The first
convolution has no norm (as in pix2pix's discriminator); neither has the last when the norm is
instance norm, since the pooling that follows would then average each channel of a map that instance
norm has just centred, and the codes would lose each feature's mean and scale.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import pooled_features
from .checks import output_count, positive_int
from .inputs import Combine
from .norms import check_norm


class Encoder(nn.Module):
    """Encoder (BicycleGAN's E): stride-2 convolutions, global average pooling, then linear heads
    returning the tuple (mu, logvar), each (N, latent).

    Options: `latent` size of the code; `width` channels of the first convolution, doubling per
    layer up to 8 * width; `depth` stride-2 convolutions; `norm` instance | batch | none;
    `num_classes` to one-hot encode an integer label input.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        *,
        latent: int = 8,
        width: int = 32,
        depth: int = 3,
        norm: str = "instance",
        num_classes: int | None = None,
    ):
        super().__init__()
        latent = positive_int("latent", latent)
        width = positive_int("width", width)
        depth = positive_int("depth", depth)
        norm = check_norm(norm)
        output_count(out_channels, latent, "latent")
        self.combine = Combine(in_channels, num_classes)
        self.features, source = pooled_features(in_channels, image_size, width, depth, norm)
        self.mu = nn.Linear(source, latent)
        self.logvar = nn.Linear(source, latent)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(self.combine(*inputs))
        return self.mu(features), self.logvar(features)
