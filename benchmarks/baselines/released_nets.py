"""The released pix2pix/CycleGAN code's three networks, written out independently of `nets/`.

Each follows the layer table of github.com/junyanz/pytorch-CycleGAN-and-pix2pix,
models/networks.py (read for facts; nothing here is taken from it), module for module, with that
code's rules rather than lossgraph's:

- norms: "instance" is InstanceNorm2d without affine parameters or running statistics, "batch"
  is BatchNorm2d with both;
- biases: a convolution is biased when the norm is instance norm and not when it is batch norm,
  whether or not a norm follows it; the output layers (and the PatchGAN's first convolution)
  keep torch's default, a bias;
- the U-Net is built from the inside out as nested skip blocks, each returning its input
  concatenated with its output; dropout sits only in the `depth - 5` blocks of 8 * width
  channels between the innermost block and the first narrower one.

`ResnetGenerator(9 blocks, 64)`, `NLayerDiscriminator(3 layers, 64)` and `UnetGenerator(depth 8,
64)` are the code's `resnet_9blocks`, `basic` and `unet_256`. `copy_weights(source, target)`
puts a lossgraph network's weights into one of these: tests/benchmarks/test_authors_recipes.py
checks that the two then compute the same function, and trains both. Nothing here imports
lossgraph.
"""

from __future__ import annotations

import torch
from torch import nn


def norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    raise ValueError(f"norm must be instance or batch, got {norm!r}")


class ResnetBlock(nn.Module):
    def __init__(self, channels: int, norm: str, biased: bool):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=biased), norm_layer(norm, channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=biased), norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-64, d128, d256, `blocks` x R256, u128, u64, c7s1-3, tanh (the CycleGAN paper's table)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 64, blocks: int = 9,
                 norm: str = "instance"):
        super().__init__()
        biased = norm == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7, bias=biased),
                                   norm_layer(norm, width), nn.ReLU(True)]
        for factor in (1, 2):
            layers += [nn.Conv2d(width * factor, width * factor * 2, 3, stride=2, padding=1, bias=biased),
                       norm_layer(norm, width * factor * 2), nn.ReLU(True)]
        layers += [ResnetBlock(width * 4, norm, biased) for _ in range(blocks)]
        for factor in (4, 2):
            layers += [nn.ConvTranspose2d(width * factor, width * factor // 2, 3, stride=2, padding=1,
                                          output_padding=1, bias=biased),
                       norm_layer(norm, width * factor // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """C64 (no norm) - C128 - C256 at stride 2, C512 at stride 1, a 4x4 convolution to one channel;
    every convolution 4x4 with padding 1, LeakyReLU(0.2) after each but the last."""

    def __init__(self, in_channels: int = 3, width: int = 64, layers: int = 3, norm: str = "batch"):
        super().__init__()
        biased = norm == "instance"
        sequence: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        channels = width
        for index in range(1, layers + 1):
            target = width * min(2**index, 8)
            stride = 2 if index < layers else 1
            sequence += [nn.Conv2d(channels, target, 4, stride=stride, padding=1, bias=biased),
                         norm_layer(norm, target), nn.LeakyReLU(0.2, True)]
            channels = target
        sequence.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*sequence)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SkipBlock(nn.Module):
    """One level of the U-Net: down, the block inside (if any), up; its input joined to its output."""

    def __init__(self, outer: int, inner: int, norm: str, inside: nn.Module | None = None, *,
                 in_channels: int | None = None, outermost: bool = False, dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        biased = norm == "instance"
        down = nn.Conv2d(in_channels or outer, inner, 4, stride=2, padding=1, bias=biased)
        if outermost:
            parts = [down, inside, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1), nn.Tanh()]
        elif inside is None:  # innermost: no norm on the way down, nothing to join on the way up
            parts = [nn.LeakyReLU(0.2, True), down,
                     nn.ReLU(True), nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=biased), norm_layer(norm, outer)]
        else:
            parts = [nn.LeakyReLU(0.2, True), down, norm_layer(norm, inner), inside,
                     nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=biased), norm_layer(norm, outer)]
            if dropout:
                parts.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """`depth` halvings (8 for 256x256: a 1x1 bottleneck); channels 64, 128, 256, then 512."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, depth: int = 8, width: int = 64,
                 norm: str = "batch", dropout: bool = True):
        super().__init__()
        if depth < 5:
            raise ValueError("the released U-Net has at least 5 levels")
        block = SkipBlock(width * 8, width * 8, norm)
        for _ in range(depth - 5):
            block = SkipBlock(width * 8, width * 8, norm, block, dropout=dropout)
        for factor in (4, 2, 1):
            block = SkipBlock(width * factor, width * factor * 2, norm, block)
        self.model = SkipBlock(out_channels, width, norm, block, in_channels=in_channels, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def stateful_layers_in_call_order(module: nn.Module, *inputs: torch.Tensor) -> list[nn.Module]:
    """The leaf modules holding parameters or buffers, in the order a forward pass calls them
    (a layer called twice counts once). Registration order differs between lossgraph's U-Net
    (all the way down, then all the way up) and the nested one above; call order does not."""
    order: list[nn.Module] = []
    leaves = [m for m in module.modules() if not list(m.children()) and (list(m.parameters(False)) or list(m.buffers(False)))]
    handles = [leaf.register_forward_pre_hook(lambda m, args: order.append(m) if m not in order else None) for leaf in leaves]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return order


@torch.no_grad()
def copy_weights(source: nn.Module, target: nn.Module, *example: torch.Tensor) -> None:
    """Put `source`'s parameters and buffers into `target`, layer by layer in call order on
    `example` inputs (which each network is called with as it is in training: lossgraph's with its
    separate inputs, these with them concatenated). Shapes must agree exactly; any layer left
    over on either side is an error, so a network with a missing or extra layer cannot pass."""
    was = source.training, target.training
    source.eval()
    target.eval()  # no batch-norm statistics move while the layers are listed
    try:
        given = stateful_layers_in_call_order(source, *example)
        wanted = stateful_layers_in_call_order(target, torch.cat(example, 1) if len(example) > 1 else example[0])
    finally:
        source.train(was[0])
        target.train(was[1])
    if len(given) != len(wanted):
        raise ValueError(f"{len(given)} layers with state against {len(wanted)}")
    for index, (mine, theirs) in enumerate(zip(given, wanted)):
        if type(mine) is not type(theirs):
            raise ValueError(f"layer {index}: {type(mine).__name__} against {type(theirs).__name__}")
        state, other = mine.state_dict(), theirs.state_dict()
        if [(k, v.shape) for k, v in state.items()] != [(k, v.shape) for k, v in other.items()]:
            raise ValueError(f"layer {index} ({type(mine).__name__}): {[(k, tuple(v.shape)) for k, v in state.items()]}"
                             f" against {[(k, tuple(v.shape)) for k, v in other.items()]}")
        theirs.load_state_dict(state)
