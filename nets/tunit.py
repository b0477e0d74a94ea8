"""TUNIT's guiding network (arXiv 2006.06500): one trunk, two heads, sized by default for 32x32.

    image -> `depth` blocks of (3x3 conv, batch norm, ReLU, 2x2 max pool), channels doubling from
    `width` up to 8 * width -> global average pooling -> heads:
      cls:   linear -> `classes` pseudo-domain logits (N, classes)
      style: linear -> a style code (N, style)

The released code (clovaai/tunit) takes VGG11 with batch norm as the trunk at 128x128 (its
convolutions in five pooled stages, then the two linear heads on the pooled features, K = 10
pseudo-domains and a style code of 128). At 32x32 this keeps its shape at CPU size: a VGG-like
stack of 3 stages with batch norm. The batch norm mixes the samples of a batch, as the released
network's does (`mixes_batch` sees it). The module returns the tuple (cls, style): a spec declares
`heads: {cls: raw, style: raw}`.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import level_channels
from .checks import positive_int
from .inputs import Combine


class TUNITGuide(nn.Module):
    """TUNIT's guiding network E: a VGG-like trunk with batch norm, global average pooling, and
    the heads `cls` (pseudo-domain logits, N x classes) and `style` (N x style).

    Options: `classes` pseudo-domains; `style` the style code's size; `width` channels of the first
    stage, doubling per stage up to 8 * width; `depth` pooled stages.
    """

    def __init__(self, in_channels: int, out_channels: int = 1, image_size: int = 32, *, classes: int = 10,
                 style: int = 128, width: int = 32, depth: int = 3):
        super().__init__()
        classes, style = positive_int("classes", classes), positive_int("style", style)
        width, depth = positive_int("width", width), positive_int("depth", depth)
        if image_size // 2**depth < 1:
            raise ValueError(f"depth={depth} halves image_size={image_size} below one pixel")
        self.combine = Combine(in_channels)
        layers: list[nn.Module] = []
        source = in_channels
        for level in range(depth):
            target = level_channels(width, level)
            layers += [nn.Conv2d(source, target, 3, padding=1), nn.BatchNorm2d(target), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            source = target
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.trunk = nn.Sequential(*layers)
        self.cls = nn.Linear(source, classes)
        self.style = nn.Linear(source, style)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(self.combine(*inputs))
        return self.cls(features), self.style(features)
