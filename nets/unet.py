"""U-Net generator in the pix2pix style: image(s) in, image out in [-1, 1].

Level l (0-based) halves the map with a 4x4 stride-2 convolution to `width * 2**l` channels (at
most 8 * width, as pix2pix caps it); the way up mirrors it with 4x4 stride-2 transposed
convolutions, each fed the map from the level below concatenated with the skip of its own level.

    down: conv | LReLU conv norm | ... | LReLU conv          (outermost, middle, innermost)
    up:   ReLU convT tanh | ReLU convT norm [dropout] | ...  (outermost, then inner levels)

As in pix2pix, the outermost and innermost down-sampling convolutions have no norm; for the
innermost this also keeps instance norm off a bottleneck that may be 1x1. Activations are not in
place, because a down block's input is also a skip tensor.

Level l's up-sampling takes the map from side image_size / 2**(l+1) back to image_size / 2**l;
level 0's is the output layer. Dropout goes after the inner ones' norm: all of them by default,
or the `dropout_levels` listed. The released pix2pix code's `unet_256` (depth 8) has it at levels
4, 5 and 6, the three 8 * width blocks between the innermost and the first that narrows (its
paper's table puts it on the three innermost, 5 to 7); with `width: 64, norm: batch, bias: false`
this is that network, 54,413,955 parameters for RGB (tests/nets/test_released_nets.py).
"""

from __future__ import annotations

import torch
from torch import nn

from .checks import halvings_fit, level_list, positive_int, probability
from .inputs import Combine
from .norms import check_bias, check_norm, convolution_with_norm, norm_layer

_HALVE = {"kernel_size": 4, "stride": 2, "padding": 1}


class UNet(nn.Module):
    """U-Net generator (pix2pix): `depth` stride-2 convolutions down, transposed convolutions up,
    skip connections at every level, tanh output.

    Options: `width` channels at the first level, doubling per level up to 8 * width; `depth`
    down-samplings (image_size must be divisible by 2**depth); `norm` instance | batch | none;
    `dropout` rate after each inner up-sampling (pix2pix's noise source; 0 leaves it out);
    `dropout_levels` the levels (1 to depth - 1) that get it, default all inner ones;
    `num_classes` to one-hot encode an integer label input; `bias` true | false | null (default:
    only where no norm follows; nets/norms.py, Note [Biases as the released code has them]).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        *,
        width: int = 32,
        depth: int = 3,
        norm: str = "instance",
        dropout: float = 0.0,
        dropout_levels: list[int] | None = None,
        num_classes: int | None = None,
        bias: bool | None = None,
    ):
        super().__init__()
        width = positive_int("width", width)
        depth = positive_int("depth", depth)
        norm = check_norm(norm)
        dropout = probability("dropout", dropout)
        bias = check_bias(bias)
        halvings_fit(image_size, depth, "depth")
        dropped = level_list("dropout_levels", dropout_levels, 1, depth - 1, default=range(1, depth))
        self.combine = Combine(in_channels, num_classes)
        channels = [width * min(2**level, 8) for level in range(depth)]

        # down[l] takes level l - 1's map (side image_size // 2**l) to level l's, half the side.
        self.down = nn.ModuleList()
        for level in range(depth):
            outermost, innermost = level == 0, level == depth - 1
            source = in_channels if outermost else channels[level - 1]
            side = image_size // 2 ** (level + 1)
            norm_module = None if outermost or innermost else norm_layer(norm, channels[level], side)
            layers = [] if outermost else [nn.LeakyReLU(0.2)]
            layers += convolution_with_norm(nn.Conv2d, source, channels[level], norm_module, bias, **_HALVE)
            self.down.append(nn.Sequential(*layers))

        # up[l] takes level l's side back to level l - 1's; only the innermost has no skip to take in.
        self.up = nn.ModuleList()
        for level in range(depth):
            source = channels[level] if level == depth - 1 else 2 * channels[level]
            layers = [nn.ReLU()]
            if level == 0:
                layers += [nn.ConvTranspose2d(source, out_channels, **_HALVE), nn.Tanh()]
            else:
                norm_module = norm_layer(norm, channels[level - 1], image_size // 2**level)
                target = channels[level - 1]
                layers += convolution_with_norm(nn.ConvTranspose2d, source, target, norm_module, bias, **_HALVE)
                if dropout > 0 and level in dropped:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        features = []
        hidden = self.combine(*inputs)
        for block in self.down:
            hidden = block(hidden)
            features.append(hidden)
        hidden = self.up[-1](features[-1])
        for level in range(len(self.up) - 2, -1, -1):
            hidden = self.up[level](torch.cat([features[level], hidden], dim=1))
        return hidden
