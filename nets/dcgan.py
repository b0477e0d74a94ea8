"""DCGAN generator and discriminator, laid out for CoGAN's weight sharing.

Generator: a latent vector (N, k), no image, to an image in [-1, 1].

    trunk: k x 1 x 1 -> transposed conv (kernel = start side) -> norm ReLU
           -> stride-2 transposed convs with norm ReLU, doubling the side, halving the channels
    head:  stride-2 transposed conv to out_channels -> tanh

Discriminator: image(s) to one logit vector per sample, (N, out_channels).

    stem:  stride-2 conv with LeakyReLU(0.2), no norm (as DCGAN)
    trunk: stride-2 convs with norm LeakyReLU(0.2), down to the start side
           -> conv with kernel = start side (one logit per sample) -> flatten

The start side is 4 for power-of-two images (32, 64, 128) and otherwise the smallest side of at
least 4 that halving reaches exactly (24 -> 6). The generator's map at level l from the output has
`width * 2**l` channels (at most 8 * width), and the discriminator mirrors it.

CoGAN couples two generators that share every layer but their last, and two discriminators that
share every layer but their first. Each module groups its layers accordingly (`SHAREABLE`), so
that `nets.share(G2, G1, ["trunk"])` and `nets.share(D2, D1, ["trunk"])` declare the coupling.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import STRIDE_TWO, doubling_block, halving_block, level_channels, start_side
from .checks import positive_int
from .inputs import Combine, CombineVectors
from .norms import check_norm, convolution_with_norm, norm_layer


class DCGANGenerator(nn.Module):
    """DCGAN generator from a latent vector (no image input): a projection to a small map, then
    stride-2 transposed convolutions up to image_size, tanh output. Submodules `trunk` (all but
    the last layer) and `head` (the last layer and tanh) can be shared with `nets.share`.

    Options: `width` channels of the last hidden map, doubling per level towards the projection
    up to 8 * width; `norm` batch | instance | none (batch, as in DCGAN); `num_classes` to one-hot
    encode an integer label input, concatenated to the latent code.
    """

    SHAREABLE = ("trunk", "head")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        *,
        width: int = 32,
        norm: str = "batch",
        num_classes: int | None = None,
    ):
        super().__init__()
        width = positive_int("width", width)
        norm = check_norm(norm)
        doublings, side = start_side(image_size)
        # The vector inputs, concatenated, are the code; in_channels is its length.
        self.combine = CombineVectors(in_channels, num_classes)
        channels = [level_channels(width, level) for level in range(doublings)]
        source = channels[-1]
        # A transposed convolution over a 1x1 map with kernel `side` is a linear layer to a
        # side x side map, kept as a convolution so that every layer is initialised alike.
        layers = convolution_with_norm(
            CodeToMap, in_channels, source, norm_layer(norm, source, side), kernel_size=side
        )
        layers.append(nn.ReLU())
        for level in reversed(range(doublings - 1)):
            side *= 2
            target = channels[level]
            layers += doubling_block(source, target, norm_layer(norm, target, side))
            source = target
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.ConvTranspose2d(source, out_channels, **STRIDE_TWO), nn.Tanh())

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(self.combine(*inputs)))


class CodeToMap(nn.ConvTranspose2d):
    """The generator's first layer: a code (N, k) to a side x side map, computed as the matrix
    product it is. The layer and its weights are a transposed convolution's over a 1x1 map, but a
    (N, k, 1, 1) tensor is as much channels-last as contiguous, and a compiled backward through
    one (torch.compile on CUDA) can disagree with cuDNN about the gradient's memory layout."""

    def forward(self, code: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        batch, (_, channels, height, width) = code.shape[0], self.weight.shape
        out = (code @ self.weight.flatten(1)).view(batch, channels, height, width)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: stride-2 convolutions with LeakyReLU(0.2), then one logit vector per
    sample, (N, out_channels), never probabilities. Submodules `stem` (the first convolution)
    and `trunk` (the rest, ending in the logits) can be shared with `nets.share`.

    Options: `width` channels of the first convolution, doubling per layer up to 8 * width;
    `norm` batch | instance | none (batch, as in DCGAN; the first layer has none);
    `num_classes` to one-hot encode an integer label input.
    """

    SHAREABLE = ("stem", "trunk")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        *,
        width: int = 32,
        norm: str = "batch",
        num_classes: int | None = None,
    ):
        super().__init__()
        width = positive_int("width", width)
        norm = check_norm(norm)
        halvings, side = start_side(image_size)
        self.combine = Combine(in_channels, num_classes)
        self.stem = nn.Sequential(*halving_block(in_channels, width, None, slope=0.2))
        layers: list[nn.Module] = []
        source = width
        for level in range(1, halvings):
            target = level_channels(width, level)
            level_norm = norm_layer(norm, target, image_size // 2 ** (level + 1))
            layers += halving_block(source, target, level_norm, slope=0.2)
            source = target
        layers += [nn.Conv2d(source, out_channels, kernel_size=side), nn.Flatten()]
        self.trunk = nn.Sequential(*layers)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.stem(self.combine(*inputs)))
