"""StarGAN v2's four networks (Choi et al., arXiv 1912.01865), at a size the CPU trains.

    G(x, s): image and style code (N, style) to an image. Encoder: pre-activation residual blocks
             with instance norm and average-pool halving; decoder: residual blocks whose norms are
             AdaIN, (1 + gamma(s)) * IN(h) + beta(s), with nearest up-sampling; tanh.
    M(z):    latent (N, k) to style codes (N, K, style): a shared MLP, then one MLP per domain.
    S(x):    image to style codes (N, K, style); D(x): image to raw logits (N, K). S and D share a
             design, not weights: pre-activation residual blocks without norm, leaky ReLU(0.2),
             average-pool halving, then a 4x4-or-smaller convolution over the last map and one
             linear head per domain (S) or one linear layer to K logits (D).

The layout follows the released code (clovaai/stargan-v2, core/model.py) for facts only: residual
blocks add a learned 1x1 shortcut where channels change and scale the sum by 1/sqrt(2); He
(Kaiming normal) initialisation with zero biases, which `build` keeps (`OWN_INIT`) instead of
pix2pix's N(0, 0.02). Two departures: G ends in tanh (the data lie in [-1, 1], and the built-in
generators' outputs are known to), where the released G has a plain 1x1 convolution; and the
released G's high-pass masks (faces only, `w_hpf 1`) are left out, as the AFHQ setting does.

G takes its style as its last argument, so a spec's `G(x, s)` gives in_channels = image channels
+ style; the style size is the `style` option and the rest are the image's channels.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from .checks import halvings_fit, output_count, positive_int
from .inputs import Combine, CombineVectors


def he_init(module: nn.Module) -> nn.Module:
    """Kaiming-normal weights (fan in, ReLU gain) and zero biases for every conv and linear layer."""
    for submodule in module.modules():
        if isinstance(submodule, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(submodule.weight, mode="fan_in", nonlinearity="relu")
            if submodule.bias is not None:
                nn.init.zeros_(submodule.bias)
    return module


class AdaIN(nn.Module):
    """Instance norm without affine, then (1 + gamma(s)) * h + beta(s), gamma and beta from one
    linear layer of the style."""

    def __init__(self, style: int, channels: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.affine = nn.Linear(style, 2 * channels)

    def forward(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(s)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * self.norm(h) + beta


class ResBlock(nn.Module):
    """Pre-activation residual block: [norm] act conv3x3 [pool] [norm] act conv3x3, plus a 1x1
    shortcut where channels change, the sum scaled by 1/sqrt(2). `norm` instance or none;
    `halve` average-pools by 2 in both paths."""

    def __init__(self, source: int, target: int, *, norm: bool, halve: bool):
        super().__init__()
        self.halve = halve
        self.norm1 = nn.InstanceNorm2d(source, affine=True) if norm else nn.Identity()
        self.conv1 = nn.Conv2d(source, source, 3, padding=1)
        self.norm2 = nn.InstanceNorm2d(source, affine=True) if norm else nn.Identity()
        self.conv2 = nn.Conv2d(source, target, 3, padding=1)
        self.shortcut = nn.Conv2d(source, target, 1, bias=False) if source != target else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        skip = self.shortcut(h)
        out = self.conv1(functional.leaky_relu(self.norm1(h), 0.2))
        if self.halve:
            skip, out = functional.avg_pool2d(skip, 2), functional.avg_pool2d(out, 2)
        out = self.conv2(functional.leaky_relu(self.norm2(out), 0.2))
        return (skip + out) / math.sqrt(2)


class AdaINResBlock(nn.Module):
    """G's decoder block: AdaIN act [upsample] conv3x3 AdaIN act conv3x3, plus a 1x1 shortcut
    where channels change, the sum scaled by 1/sqrt(2); `double` up-samples (nearest) by 2."""

    def __init__(self, source: int, target: int, style: int, *, double: bool):
        super().__init__()
        self.double = double
        self.norm1 = AdaIN(style, source)
        self.conv1 = nn.Conv2d(source, target, 3, padding=1)
        self.norm2 = AdaIN(style, target)
        self.conv2 = nn.Conv2d(target, target, 3, padding=1)
        self.shortcut = nn.Conv2d(source, target, 1, bias=False) if source != target else nn.Identity()

    def forward(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        skip = h
        out = functional.leaky_relu(self.norm1(h, s), 0.2)
        if self.double:
            skip = functional.interpolate(skip, scale_factor=2, mode="nearest")
            out = functional.interpolate(out, scale_factor=2, mode="nearest")
        out = self.conv2(functional.leaky_relu(self.norm2(self.conv1(out), s), 0.2))
        return (self.shortcut(skip) + out) / math.sqrt(2)


def _channels(width: int, level: int) -> int:
    """Channels at halving level `level`: doubling from `width`, at most 8 * width (as the
    released code caps them at its max_conv_dim)."""
    return width * min(2**level, 8)


class StarGANv2Generator(nn.Module):
    """StarGAN v2 generator G(x, s): a residual encoder with instance norm, `downsample` halvings
    then `blocks` more blocks, and a decoder of AdaIN residual blocks driven by the style s; tanh.

    Options: `style` size of the style code (last argument); `width` channels of the stem,
    doubling per halving up to 8 * width; `downsample` halvings; `blocks` bottleneck blocks on
    each side.
    """

    OWN_INIT = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        *,
        style: int = 64,
        width: int = 32,
        downsample: int = 2,
        blocks: int = 2,
    ):
        super().__init__()
        self.style = positive_int("style", style)
        width = positive_int("width", width)
        downsample = positive_int("downsample", downsample)
        blocks = positive_int("blocks", blocks)
        halvings_fit(image_size, downsample, "downsample")
        image_channels = in_channels - style
        if image_channels < 1:
            raise ValueError(f"in_channels={in_channels} leaves no image channels beside style={style}:"
                             " apply G to an image and a style code, G(x, s)")
        self.combine = Combine(image_channels)
        self.stem = nn.Conv2d(image_channels, width, 3, padding=1)
        encode, decode = [], []
        for level in range(downsample):
            source, target = _channels(width, level), _channels(width, level + 1)
            encode.append(ResBlock(source, target, norm=True, halve=True))
            decode.insert(0, AdaINResBlock(target, source, style, double=True))
        deepest = _channels(width, downsample)
        for _ in range(blocks):
            encode.append(ResBlock(deepest, deepest, norm=True, halve=False))
            decode.insert(0, AdaINResBlock(deepest, deepest, style, double=False))
        self.encode = nn.Sequential(*encode)
        self.decode = nn.ModuleList(decode)
        self.to_image = nn.Sequential(nn.InstanceNorm2d(width, affine=True), nn.LeakyReLU(0.2),
                                      nn.Conv2d(width, out_channels, 1), nn.Tanh())
        he_init(self)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) < 2 or inputs[-1].dim() != 2 or inputs[-1].shape[1] != self.style:
            shapes = ", ".join(str(tuple(tensor.shape)) for tensor in inputs)
            raise ValueError(f"G(x, s) takes image(s) then a style code (N, {self.style}); got shapes {shapes}")
        *images, s = inputs
        h = self.encode(self.stem(self.combine(*images)))
        for block in self.decode:
            h = block(h, s)
        return self.to_image(h)


class StarGANv2Mapping(nn.Module):
    """StarGAN v2 mapping network M(z): a latent (N, k) to style codes (N, domains, style) by a
    shared MLP of `shared` ReLU layers, then one MLP per domain of `branch` layers.

    Options: `domains` K; `style` size of each code; `hidden` width of every hidden layer;
    `shared` layers of the shared MLP; `branch` layers of each domain's MLP, its last linear.
    """

    OWN_INIT = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        *,
        domains: int = 2,
        style: int = 64,
        hidden: int = 128,
        shared: int = 4,
        branch: int = 4,
    ):
        super().__init__()
        self.domains = positive_int("domains", domains)
        style = positive_int("style", style)
        hidden = positive_int("hidden", hidden)
        shared = positive_int("shared", shared)
        branch = positive_int("branch", branch)
        output_count(out_channels, style, "style")
        self.combine = CombineVectors(in_channels)
        layers: list[nn.Module] = []
        source = in_channels
        for _ in range(shared):
            layers += [nn.Linear(source, hidden), nn.ReLU()]
            source = hidden
        self.shared = nn.Sequential(*layers)

        def one_branch() -> nn.Sequential:
            hidden_layers = [module for _ in range(branch - 1) for module in (nn.Linear(hidden, hidden), nn.ReLU())]
            return nn.Sequential(*hidden_layers, nn.Linear(hidden, style))

        self.branches = nn.ModuleList(one_branch() for _ in range(self.domains))
        he_init(self)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        h = self.shared(self.combine(*inputs))
        return torch.stack([branch(h) for branch in self.branches], dim=1)


class _PooledResidual(nn.Module):
    """S's and D's common trunk: a 3x3 stem, `depth` residual blocks without norm, each halving,
    then leaky ReLU, a convolution over the whole remaining map (at most 4x4) and leaky ReLU,
    giving (N, channels) features."""

    def __init__(self, in_channels: int, image_size: int, width: int, depth: int):
        super().__init__()
        halvings_fit(image_size, depth, "depth")
        self.combine = Combine(in_channels)
        blocks = [nn.Conv2d(in_channels, width, 3, padding=1)]
        for level in range(depth):
            blocks.append(ResBlock(_channels(width, level), _channels(width, level + 1), norm=False, halve=True))
        self.channels = _channels(width, depth)
        side = image_size // 2**depth
        self.trunk = nn.Sequential(*blocks, nn.LeakyReLU(0.2), nn.Conv2d(self.channels, self.channels, side),
                                   nn.LeakyReLU(0.2), nn.Flatten())

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.combine(*inputs))


class StarGANv2StyleEncoder(nn.Module):
    """StarGAN v2 style encoder S(x): residual halvings without norm, then one linear head per
    domain, returning style codes (N, domains, style).

    Options: `domains` K; `style` size of each code; `width` channels of the stem, doubling per
    halving up to 8 * width; `depth` halvings.
    """

    OWN_INIT = True

    def __init__(self, in_channels: int, out_channels: int, image_size: int, *,
                 domains: int = 2, style: int = 64, width: int = 16, depth: int = 3):
        super().__init__()
        self.domains = positive_int("domains", domains)
        style = positive_int("style", style)
        output_count(out_channels, style, "style")
        self.features = _PooledResidual(in_channels, image_size, positive_int("width", width), positive_int("depth", depth))
        self.heads = nn.ModuleList(nn.Linear(self.features.channels, style) for _ in range(self.domains))
        he_init(self)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        h = self.features(*inputs)
        return torch.stack([head(h) for head in self.heads], dim=1)


class StarGANv2Discriminator(nn.Module):
    """StarGAN v2 discriminator D(x): residual halvings without norm, then one linear layer to raw
    logits (N, domains), one per domain.

    Options: `domains` K; `width` channels of the stem, doubling per halving up to 8 * width;
    `depth` halvings.
    """

    OWN_INIT = True

    def __init__(self, in_channels: int, out_channels: int, image_size: int, *,
                 domains: int = 2, width: int = 16, depth: int = 3):
        super().__init__()
        self.domains = positive_int("domains", domains)
        output_count(out_channels, self.domains, "domains")
        self.features = _PooledResidual(in_channels, image_size, positive_int("width", width), positive_int("depth", depth))
        self.logits = nn.Linear(self.features.channels, self.domains)
        he_init(self)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(*inputs))
