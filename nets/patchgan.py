"""PatchGAN discriminator (pix2pix): image(s) in, a map of raw logits out, one per patch.

`layers` 4x4 stride-2 convolutions with LeakyReLU(0.2), channels doubling from `width` up to
8 * width, the first without a norm (as in pix2pix); then `stride1_layers` 4x4 stride-1
convolutions with norm and LeakyReLU, channels still doubling; then a `head_kernel` x
`head_kernel` stride-1 convolution to `out_channels`. Every convolution pads by 1, so a stride-1
4x4 one takes a pixel off the side and the 3x3 head keeps it.

With the defaults (no stride-1 layers, a 3x3 head) the output is (N, out_channels,
image_size // 2**layers, same), and each logit sees a patch of 8, 18, 38, 78, 158 pixels for
layers = 1, 2, 3, 4, 5. The default of two layers (an 8x8 map of 18-pixel patches at 32x32) is
chosen for the small images this project trains on: with three layers every logit sees the whole
32x32 image, and in DiscoGAN on shapes (filled to outlined) the generator then collapsed, where
with two it learned the translation.

The released pix2pix/CycleGAN code's `basic` discriminator, the "70x70 PatchGAN", is
`layers: 3, stride1_layers: 1, head_kernel: 4` (C64-C128-C256 at stride 2, C512 at stride 1, a
4x4 convolution to the logits): a 30x30 map of 70-pixel patches at 256x256. With `width: 64` and
instance norm (`bias: true`, the released code's biases) it has 2,764,737 parameters for RGB
(tests/nets/test_released_nets.py).

The module returns logits, never probabilities: a spec's probability output applies the sigmoid
inside its stable log terms.
"""

from __future__ import annotations

import torch
from torch import nn

from .checks import non_negative_int, positive_int
from .inputs import Combine
from .norms import check_bias, check_norm, convolution_with_norm, norm_layer

_HALVE = {"kernel_size": 4, "stride": 2, "padding": 1}
_STRIDE_ONE = {"kernel_size": 4, "stride": 1, "padding": 1}
HEAD_KERNELS = (3, 4)


class PatchGAN(nn.Module):
    """PatchGAN discriminator: stride-2 convolutions with LeakyReLU(0.2), then a convolution to
    an `out_channels` map of logits, one per overlapping patch.

    Options: `width` channels of the first convolution, doubling per layer up to 8 * width;
    `layers` stride-2 convolutions; `stride1_layers` 4x4 stride-1 convolutions after them;
    `head_kernel` 3 or 4, the kernel of the last convolution; `norm` instance | batch | none;
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
        layers: int = 2,
        stride1_layers: int = 0,
        head_kernel: int = 3,
        norm: str = "instance",
        num_classes: int | None = None,
        bias: bool | None = None,
    ):
        super().__init__()
        width = positive_int("width", width)
        layers = positive_int("layers", layers)
        stride1_layers = non_negative_int("stride1_layers", stride1_layers)
        if head_kernel not in HEAD_KERNELS or isinstance(head_kernel, bool):
            raise ValueError(f"head_kernel must be 3 (keeps the side) or 4 (one pixel less), got {head_kernel!r}")
        norm = check_norm(norm)
        bias = check_bias(bias)
        side = image_size // 2**layers
        if side < 1:
            raise ValueError(f"layers={layers} halves image_size={image_size} below one pixel")
        if side - stride1_layers - (head_kernel - 3) < 1:
            raise ValueError(f"layers={layers}, stride1_layers={stride1_layers} and head_kernel={head_kernel}"
                             f" leave no logit at image_size={image_size}")
        self.combine = Combine(in_channels, num_classes)
        modules: list[nn.Module] = []
        source = in_channels
        for layer in range(layers + stride1_layers):
            target = width * min(2**layer, 8)
            halving = layer < layers
            layer_side = image_size // 2 ** (layer + 1) if halving else side - (layer - layers + 1)
            layer_norm = None if layer == 0 else norm_layer(norm, target, layer_side)
            shape = _HALVE if halving else _STRIDE_ONE
            modules += convolution_with_norm(nn.Conv2d, source, target, layer_norm, bias, **shape)
            modules.append(nn.LeakyReLU(0.2))
            source = target
        modules.append(nn.Conv2d(source, out_channels, kernel_size=head_kernel, padding=1))
        self.layers = nn.Sequential(*modules)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(self.combine(*inputs))
