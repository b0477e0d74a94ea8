"""A second, strongly augmented view of each image: the random kind `augmented(x)`.

TUNIT (arXiv 2006.06500; its code's `transform_tf`) compares each image with such a view of itself:
a random affine transform (rotation within ±20°, translation within 10% of the side, shear within
±10°), a resized crop (area scale 0.9 to 1.1), colour jitter (brightness, contrast and saturation
factors in [0.6, 1.4], hue turned by up to ±0.125 of a turn) and a left-right flip with
probability 1/2. All geometry is relative to the image's side, so it applies at the built-in
data's 32 pixels as at 128.

Here the geometry is one affine map per sample, sampled bilinearly (outside the image is black,
as torchvision's affine fills 0); the hue is turned in YIQ space, a rotation of the chroma plane
(torchvision turns it in HSV: the same idea, slightly different colours). Colour jitter applies to
3-channel images; others get brightness and contrast only. Each sample's parameters are drawn
from `generator` (the run's CPU stream when None), on the CPU whatever the images' device, so a
view depends on the seed and the step only and a resumed run draws it again exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ROTATION = 20.0      # degrees, either way
TRANSLATION = 0.1    # of the side, either way
SHEAR = 10.0         # degrees, either way
AREA = (0.9, 1.1)    # the resized crop's area scale
JITTER = 0.4         # brightness, contrast, saturation factors in [1 - 0.4, 1 + 0.4]
HUE = 0.125          # of a turn, either way

_LUMA = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def _uniform(count: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(count, generator=generator, dtype=torch.float64) * (high - low) + low


def geometry(count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(count, 2, 3) affine maps from output to input coordinates (affine_grid's normalised [-1, 1])."""
    angle = torch.deg2rad(_uniform(count, -ROTATION, ROTATION, generator))
    shear = torch.deg2rad(_uniform(count, -SHEAR, SHEAR, generator))
    shift = _uniform(2 * count, -TRANSLATION, TRANSLATION, generator).view(count, 2) * 2  # the side spans 2
    zoom = 1 / _uniform(count, *AREA, generator).sqrt()  # a crop of area a, resized to the side
    flip = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0).double()
    cos, sin = angle.cos(), angle.sin()
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shearing = torch.eye(2, dtype=torch.float64).repeat(count, 1, 1)
    shearing[:, 0, 1] = shear.tan()
    flipping = torch.diag_embed(torch.stack([flip, torch.ones_like(flip)], -1))
    linear = zoom[:, None, None] * rotation @ shearing @ flipping
    return torch.cat([linear, shift[:, :, None]], -1)


def colour_factors(count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(count, 4): brightness, contrast and saturation factors and the hue turn, per sample."""
    factors = _uniform(3 * count, 1 - JITTER, 1 + JITTER, generator).view(count, 3)
    return torch.cat([factors, _uniform(count, -HUE, HUE, generator)[:, None]], -1)


def jitter(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Colour jitter of images in [0, 1], (N, C, H, W), by `colour_factors`; clamped to [0, 1]."""
    factors = factors.to(images)
    brightness, contrast, saturation, hue = (factors[:, i, None, None, None] for i in range(4))
    colour = images.shape[1] == 3
    luma = (lambda v: (v * torch.tensor(_LUMA, dtype=torch.float64).to(v)[None, :, None, None]).sum(1, keepdim=True)) if colour else (
        lambda v: v.mean(1, keepdim=True))
    out = (images * brightness).clamp(0, 1)
    out = ((out - luma(out).mean((2, 3), keepdim=True)) * contrast + luma(out).mean((2, 3), keepdim=True)).clamp(0, 1)
    if not colour:
        return out
    grey = luma(out)
    out = ((out - grey) * saturation + grey).clamp(0, 1)
    to_yiq = torch.tensor(_RGB_TO_YIQ, dtype=torch.float64).to(out)
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, out)
    turn = 2 * math.pi * hue[:, 0]  # (N, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], i * turn.cos() - q * turn.sin(), i * turn.sin() + q * turn.cos()], 1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_yiq), yiq).clamp(0, 1)


def augmented_view(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of (N, C, H, W) in [-1, 1] under its own random affine map, crop, flip and colour
    jitter: a view of the same item, in [-1, 1], of the same shape."""
    if images.device.type == "meta":
        return torch.empty_like(images)
    count = images.shape[0]
    theta = geometry(count, generator).to(images.device, images.dtype)
    factors = colour_factors(count, generator)
    unit = (images + 1) / 2
    grid = F.affine_grid(theta, list(unit.shape), align_corners=False)
    moved = F.grid_sample(unit, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return jitter(moved, factors.to(images.device)) * 2 - 1
