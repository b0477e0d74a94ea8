"""pix2pix-style weight initialisation, drawn from the current torch RNG.

Convolution and linear weights ~ N(0, 0.02), normalisation scales ~ N(1, 0.02), every bias 0.
A module class whose `INIT` is "kaiming" (MUNIT's encoders and decoder, as their released code
initialises them) gets Kaiming-normal convolution and linear weights (fan in, ReLU gain) instead.
Because the draws come from the global generator, `torch.manual_seed(s)` followed by
`nets.build(...)` gives the same weights every time.
"""

from __future__ import annotations

import torch
from torch import nn

_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)
_NORMALISING = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@torch.no_grad()
def init_weights(module: nn.Module) -> nn.Module:
    """Initialise every submodule of `module` in place, in registration order; returns `module`."""
    kaiming = getattr(module, "INIT", "normal") == "kaiming"
    for submodule in module.modules():
        if isinstance(submodule, _WEIGHTED) and kaiming:
            nn.init.kaiming_normal_(submodule.weight, a=0, mode="fan_in")
        elif isinstance(submodule, _WEIGHTED):
            nn.init.normal_(submodule.weight, 0.0, 0.02)
        elif isinstance(submodule, _NORMALISING) and getattr(submodule, "weight", None) is not None:
            nn.init.normal_(submodule.weight, 1.0, 0.02)
        else:
            continue
        if submodule.bias is not None:
            nn.init.zeros_(submodule.bias)
    return module
