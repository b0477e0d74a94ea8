"""Small convolutional classifier (PixelDA's task network T): image(s) in, class logits out.

    `depth` 4x4 stride-2 convolutions with LeakyReLU(0.2) -> global average pooling
    -> linear layer to `classes` logits, (N, classes)

The logits are raw (a spec's `ce(T(x), c)` applies the log-softmax). The first convolution has
no norm; with instance norm neither has the last, whose channel means the pooling must keep.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import pooled_features
from .checks import output_count, positive_int
from .inputs import Combine
from .norms import check_norm


class Classifier(nn.Module):
    """Convolutional classifier: stride-2 convolutions, global average pooling, a linear layer to
    class logits (N, classes).

    Options: `classes` number of logits; `width` channels of the first convolution, doubling per
    layer up to 8 * width; `depth` stride-2 convolutions; `norm` batch | instance | none;
    `num_classes` to one-hot encode an integer label input (not the classes it predicts).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        *,
        classes: int = 3,
        width: int = 32,
        depth: int = 3,
        norm: str = "batch",
        num_classes: int | None = None,
    ):
        super().__init__()
        classes = positive_int("classes", classes)
        width = positive_int("width", width)
        depth = positive_int("depth", depth)
        norm = check_norm(norm)
        output_count(out_channels, classes, "classes")
        self.combine = Combine(in_channels, num_classes)
        self.features, source = pooled_features(in_channels, image_size, width, depth, norm)
        self.logits = nn.Linear(source, classes)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(self.combine(*inputs)))
