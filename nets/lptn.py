"""LPTN, the Laplacian pyramid translation network (Liang et al., arXiv 2105.09188): image in,
image out, for photorealistic translation (colour and tone) at full resolution.

    x -> fixed Laplacian pyramid: high bands h_0 (finest) ... h_{L-1}, low band (1/2^L size)
      low band  -> small residual CNN -> tanh(low + residual)            (the translated low band)
      [h_{L-1}, up(low), up(translated low)] -> residual CNN -> mask     (at h_{L-1}'s size)
      for each band, coarse to fine: upsample the mask to the band's size, then
        paper:    mask = refine_i(mask); band' = band * mask             (one channel, carried on)
        released: band' = refine_i(band * mask + band)                   (one mask per channel)
      recompose(band'_0 ... band'_{L-1}, translated low) -> output

Only the low band, 1/2^L of the image's side, goes through the heavier CNN; the high bands are
only masked, so the output keeps the input's edges and texture. The output is not bounded: a
tanh'd low band plus masked high bands, so the arch declares no output range.

The pyramid has no parameters: a 5x5 binomial blur ([1 4 6 4 1]^T [1 4 6 4 1] / 256, reflect
padding); down blurs and keeps every other pixel; up inserts zeros and blurs with 4x the kernel;
each high band is its level minus up(the next). `recompose(decompose(x))` is x up to rounding
(tests/nets/test_lptn.py). Sides need not be divisible by 2^L at run time: up crops the doubled
map to the finer level's side, so the network is fully convolutional.

Where this follows the official code (csjliang/LPTN, `LPTN_paper_arch.py` and `LPTN_arch.py`;
facts only, written here): the layer sequence and channel counts (the code's 16 are `width // 4`,
its 64 `width`), LeakyReLU's default slope 0.01, the one instance norm (no affine parameters) in
the low-band CNN, zero padding in the CNNs, and nearest-neighbour resizing of the mask and of the
low bands fed to the mask CNN. `mask: paper` is the code's `LPTNPaper` (`train_FiveK_paper.yml`),
`mask: released` its default `LPTN`. Every convolution has a bias but the one before the instance
norm, which cancels it (nets/norms.py): in the code that bias gets only rounding noise as its
gradient, which Adam turns into full-size steps. At the code's size (`levels: 3, width: 64,
low_blocks: 5, high_blocks: 3`) the paper design has 616,199 parameters for RGB and the released
one 617,551, the code's counts less those 16 biases (tests/nets/test_lptn.py counts them layer
by layer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .checks import halvings_fit, non_negative_int, positive_int
from .inputs import Combine

MASKS = ("paper", "released")
_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


class LaplacianPyramid(nn.Module):
    """The fixed Laplacian pyramid of `levels` high bands: `decompose` and its inverse `recompose`.

    No parameters; the blur kernel is a non-persistent buffer, so it follows the module's device
    and dtype and stays out of checkpoints.
    """

    def __init__(self, levels: int):
        super().__init__()
        self.levels = positive_int("levels", levels)
        taps = torch.tensor(_BINOMIAL)
        self.register_buffer("kernel", torch.outer(taps, taps) / 256, persistent=False)

    def blur(self, image: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """Each channel convolved with `gain` x the 5x5 kernel, reflect-padded to keep the side."""
        channels = image.shape[1]
        weight = (self.kernel * gain).expand(channels, 1, 5, 5)
        return F.conv2d(F.pad(image, (2, 2, 2, 2), mode="reflect"), weight, groups=channels)

    def down(self, image: torch.Tensor) -> torch.Tensor:
        return self.blur(image)[:, :, ::2, ::2]

    def up(self, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Zeros between the pixels (twice the side), blurred with 4x the kernel (which restores
        the mean the zeros took), cropped to `size`, the finer level's side."""
        n, c, h, w = image.shape
        spread = torch.stack((image, torch.zeros_like(image)), dim=-1).reshape(n, c, h, 2 * w)
        spread = torch.stack((spread, torch.zeros_like(spread)), dim=-2).reshape(n, c, 2 * h, 2 * w)
        return self.blur(spread, gain=4.0)[:, :, : size[0], : size[1]]

    def decompose(self, image: torch.Tensor) -> list[torch.Tensor]:
        """[h_0, ..., h_{levels-1}, low]: the high bands finest first, then the low band."""
        bands = []
        current = image
        for _ in range(self.levels):
            smaller = self.down(current)
            bands.append(current - self.up(smaller, current.shape[-2:]))
            current = smaller
        return bands + [current]

    def recompose(self, bands: list[torch.Tensor]) -> torch.Tensor:
        """The image whose pyramid is `bands` (as `decompose` orders them)."""
        image = bands[-1]
        for band in reversed(bands[:-1]):
            image = self.up(image, band.shape[-2:]) + band
        return image


class _Residual(nn.Module):
    """x + conv3x3(LeakyReLU(conv3x3(x))), as the code's blocks (no norm, zero padding)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(), nn.Conv2d(channels, channels, 3, padding=1)
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.body(hidden)


def _resize(image: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Nearest-neighbour resize to `size` (as the code's `F.interpolate` default); a no-op at it."""
    return image if image.shape[-2:] == size else F.interpolate(image, size=tuple(size), mode="nearest")


class LPTN(nn.Module):
    """LPTN (Laplacian pyramid translation network): a fixed Laplacian pyramid, a residual CNN
    on the low band (tanh(low + residual)), a mask refined band by band for the high bands,
    recomposed into the output.

    Options: `levels` high bands L (image_size must be divisible by 2**levels, leaving at least 2
    pixels; the code has 3 at 256x256); `width` channels of the residual blocks (the code's 64;
    the thin layers have width // 4); `low_blocks` and `high_blocks` residual blocks in the
    low-band and the mask CNNs (the code's 5 and 3); `mask` paper (one channel, refined by each
    band's 1x1 block, then multiplied) | released (the code's default: one mask per channel,
    band * mask + band refined by the 1x1 block). The output has the input's channels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        *,
        levels: int = 2,
        width: int = 32,
        low_blocks: int = 5,
        high_blocks: int = 3,
        mask: str = "paper",
    ):
        super().__init__()
        levels = positive_int("levels", levels)
        width = positive_int("width", width)
        low_blocks = non_negative_int("low_blocks", low_blocks)
        high_blocks = non_negative_int("high_blocks", high_blocks)
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {', '.join(MASKS)}; got {mask!r}")
        if out_channels != in_channels:
            raise ValueError(f"LPTN translates the pyramid of its input, so out_channels must equal in_channels"
                             f" ({in_channels}); got out_channels={out_channels}")
        halvings_fit(image_size, levels, "levels", smallest=2)
        channels, thin = in_channels, max(1, width // 4)
        self.combine = Combine(in_channels)
        self.mask_kind = mask
        self.pyramid = LaplacianPyramid(levels)
        self.low = nn.Sequential(
            nn.Conv2d(channels, thin, 3, padding=1, bias=False), nn.InstanceNorm2d(thin), nn.LeakyReLU(),
            nn.Conv2d(thin, width, 3, padding=1), nn.LeakyReLU(),
            *(_Residual(width) for _ in range(low_blocks)),
            nn.Conv2d(width, thin, 3, padding=1), nn.LeakyReLU(),
            nn.Conv2d(thin, channels, 3, padding=1),
        )
        mask_channels = 1 if mask == "paper" else channels
        self.mask = nn.Sequential(
            nn.Conv2d(3 * channels, width, 3, padding=1), nn.LeakyReLU(),
            *(_Residual(width) for _ in range(high_blocks)),
            nn.Conv2d(width, mask_channels, 3, padding=1),
        )
        # refine[i] serves band h_{L-1-i}: coarse to fine, the order the mask travels in
        self.refine = nn.ModuleList(
            nn.Sequential(nn.Conv2d(mask_channels, thin, 1), nn.LeakyReLU(), nn.Conv2d(thin, mask_channels, 1))
            for _ in range(levels)
        )

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        bands = self.pyramid.decompose(self.combine(*inputs))
        low, highs = bands[-1], bands[:-1]
        translated = torch.tanh(low + self.low(low))
        coarsest = highs[-1].shape[-2:]
        mask = self.mask(torch.cat([highs[-1], _resize(low, coarsest), _resize(translated, coarsest)], dim=1))
        out = list(highs)
        for refine, level in zip(self.refine, reversed(range(len(highs)))):
            band = highs[level]
            mask = _resize(mask, band.shape[-2:])
            if self.mask_kind == "paper":
                mask = refine(mask)
                out[level] = band * mask
            else:
                out[level] = refine(band * mask + band)
        return self.pyramid.recompose(out + [translated])
