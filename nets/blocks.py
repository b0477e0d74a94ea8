"""Building blocks shared by the architectures added for the survey's methods.

The channel schedule is the one every architecture here uses: level l (after l halvings of the
map) has `width * 2**l` channels, capped at 8 * width as pix2pix caps it, so that deep settings
for large images do not blow up the parameter count.
"""

from __future__ import annotations

from torch import nn

from .norms import convolution_with_norm, norm_layer

# A 4x4 kernel with stride 2 and padding 1 halves a side exactly (convolution) or doubles it
# (transposed convolution), and the kernel is a multiple of the stride, which avoids checkerboards.
STRIDE_TWO = {"kernel_size": 4, "stride": 2, "padding": 1}


def level_channels(width: int, level: int) -> int:
    """Channels at `level` halvings: `width * 2**level`, at most 8 * width."""
    return width * min(2**level, 8)


def halving_block(source: int, target: int, norm: nn.Module | None, slope: float) -> list[nn.Module]:
    """A 4x4 stride-2 convolution, the norm if any, then LeakyReLU(`slope`): half the side."""
    return convolution_with_norm(nn.Conv2d, source, target, norm, **STRIDE_TWO) + [nn.LeakyReLU(slope)]


def doubling_block(source: int, target: int, norm: nn.Module | None) -> list[nn.Module]:
    """A 4x4 stride-2 transposed convolution, the norm if any, then ReLU: twice the side."""
    return convolution_with_norm(nn.ConvTranspose2d, source, target, norm, **STRIDE_TWO) + [nn.ReLU()]


def start_side(image_size: int, smallest: int = 4) -> tuple[int, int]:
    """(halvings, side): halve `image_size` exactly as often as possible while the side stays at
    least `smallest`. 32 -> (3, 4), 64 -> (4, 4), 24 -> (2, 6); a side that cannot be halved even
    once (odd, or below 2 * smallest) is an error, since then there is nothing to up- or down-sample.
    """
    halvings = 0
    while image_size % 2 ** (halvings + 1) == 0 and image_size // 2 ** (halvings + 1) >= smallest:
        halvings += 1
    if halvings == 0:
        raise ValueError(
            f"image_size={image_size} must be even and at least {2 * smallest}"
            " so that it can be halved at least once"
        )
    return halvings, image_size // 2**halvings


def pooled_features(in_channels: int, image_size: int, width: int, depth: int, norm: str) -> tuple[nn.Sequential, int]:
    """`depth` stride-2 convolutions then global average pooling: (module, feature count).

    The trunk of the classifier and the encoder, which differ only in their linear heads. No norm
    on the first level (pix2pix style), nor instance norm on the last, where a map may be 1x1.
    """
    if image_size // 2**depth < 1:
        raise ValueError(f"depth={depth} halves image_size={image_size} below one pixel")
    layers: list[nn.Module] = []
    source = in_channels
    for level in range(depth):
        target = level_channels(width, level)
        unnormalised = level == 0 or (level == depth - 1 and norm == "instance")
        level_norm = None if unnormalised else norm_layer(norm, target, image_size // 2 ** (level + 1))
        layers += halving_block(source, target, level_norm, slope=0.2)
        source = target
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), source
