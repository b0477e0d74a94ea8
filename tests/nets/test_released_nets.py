"""The authors' recipes' networks against the published ones: parameter counts worked out from the
layer tables, layer-by-layer shapes at 256x256 as the papers list them, the 70x70 PatchGAN's
receptive field, and the same function as the released code's networks written out independently
(benchmarks/baselines/released_nets.py) once the weights are copied over.

The counts (RGB in and out; the pix2pix discriminator sees 6 channels):

    resnet_9blocks, ngf 64, instance norm     11,378,179   every convolution biased
    basic (70x70 PatchGAN), ndf 64, instance   2,764,737   every convolution biased
    basic (70x70 PatchGAN), ndf 64, batch      2,768,705   (6 channels in) biased where no norm follows
    unet_256, ngf 64, batch norm              54,413,955   only the output layer biased

Instance norm has no affine parameters (affine=False, track_running_stats=False in the released
code), so it adds nothing to a count; batch norm adds a scale and a shift per channel.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lossgraph
import lossgraph.nets as nets
from benchmarks.baselines import released_nets


def conv(source: int, target: int, kernel: int, biased: bool) -> int:
    return source * target * kernel * kernel + (target if biased else 0)


def resnet_count(width: int = 64, blocks: int = 9, channels: int = 3) -> int:
    """c7s1-w, d2w, d4w, blocks x R4w (two 3x3 convolutions each), u2w, uw, c7s1-3; all biased."""
    count = conv(channels, width, 7, True) + conv(width, 2 * width, 3, True) + conv(2 * width, 4 * width, 3, True)
    count += blocks * 2 * conv(4 * width, 4 * width, 3, True)
    count += conv(4 * width, 2 * width, 3, True) + conv(2 * width, width, 3, True) + conv(width, channels, 7, True)
    return count


def patchgan_count(channels: int, batch_norm: bool, width: int = 64) -> int:
    """C64 (biased, no norm) - C128 - C256 - C512 (4x4, normalised) - 4x4 to one logit (biased)."""
    count = conv(channels, width, 4, True)
    for source, target in ((width, 2 * width), (2 * width, 4 * width), (4 * width, 8 * width)):
        count += conv(source, target, 4, not batch_norm) + (2 * target if batch_norm else 0)
    return count + conv(8 * width, 1, 4, True)


def unet_count(width: int = 64, depth: int = 8, channels: int = 3) -> int:
    """Batch norm: level l has w_l = width * min(2**l, 8) channels. Down: a 4x4 convolution per
    level, normalised but at the outermost and innermost; up: a 4x4 transposed convolution per
    level, from w_l (innermost) or 2 w_l (joined to the skip) to w_(l-1), normalised; the
    outermost one to the image, the only biased layer."""
    levels = [width * min(2**level, 8) for level in range(depth)]
    count = conv(channels, levels[0], 4, False) + conv(2 * levels[0], channels, 4, True)
    for level in range(1, depth):
        inner, outer = levels[level], levels[level - 1]
        count += conv(outer, inner, 4, False) + (2 * inner if level < depth - 1 else 0)
        source = inner if level == depth - 1 else 2 * inner
        count += conv(source, outer, 4, False) + 2 * outer
    return count


def parameters(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


@pytest.fixture(scope="module")
def recipes():
    with torch.device("meta"):  # the 256x256 networks, without spending time on their weights
        return {name: lossgraph.compile(name).build_networks(seed=0) for name in ("cyclegan-authors", "pix2pix-authors")}


def test_the_recipes_networks_have_the_published_parameter_counts(recipes):
    assert resnet_count() == 11_378_179
    assert patchgan_count(3, batch_norm=False) == 2_764_737
    assert patchgan_count(6, batch_norm=True) == 2_768_705
    assert unet_count() == 54_413_955
    cyclegan, pix2pix = recipes["cyclegan-authors"], recipes["pix2pix-authors"]
    assert parameters(cyclegan["G_XY"]) == parameters(cyclegan["G_YX"]) == resnet_count()
    assert parameters(cyclegan["D_X"]) == parameters(cyclegan["D_Y"]) == patchgan_count(3, batch_norm=False)
    assert parameters(pix2pix["G"]) == unet_count()
    assert parameters(pix2pix["D"]) == patchgan_count(6, batch_norm=True)
    # the independent transcriptions agree, and at other sizes too
    assert parameters(released_nets.ResnetGenerator(width=64, blocks=9, norm="instance")) == resnet_count()
    assert parameters(released_nets.ResnetGenerator(width=32, blocks=6, norm="instance")) == resnet_count(32, 6)
    assert parameters(released_nets.NLayerDiscriminator(3, norm="instance")) == patchgan_count(3, batch_norm=False)
    assert parameters(released_nets.UnetGenerator(depth=7, width=64)) == unet_count(depth=7)  # unet_128


def convolution_outputs(module: nn.Module, *inputs: torch.Tensor) -> list[tuple[int, int]]:
    """(channels, side) of every convolution's output, in the order the forward calls them."""
    shapes: list[tuple[int, int]] = []
    hooks = [m.register_forward_hook(lambda m, args, out: shapes.append((out.shape[1], out.shape[-1])))
             for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    module(*inputs)
    for hook in hooks:
        hook.remove()
    return shapes


def test_layer_by_layer_shapes_are_the_papers_tables(recipes):
    image = torch.empty(1, 3, 256, 256, device="meta")
    # CycleGAN's appendix: c7s1-64, d128, d256, 9 x R256, u128, u64, c7s1-3
    assert convolution_outputs(recipes["cyclegan-authors"]["G_XY"], image) == \
        [(64, 256), (128, 128), (256, 64)] + [(256, 64)] * 18 + [(128, 128), (64, 256), (3, 256)]
    # C64-C128-C256-C512 then one channel: the last two at stride 1, a 30x30 map of 70x70 patches
    assert convolution_outputs(recipes["cyclegan-authors"]["D_Y"], image) == \
        [(64, 128), (128, 64), (256, 32), (512, 31), (1, 30)]
    assert convolution_outputs(recipes["pix2pix-authors"]["D"], image, image)[-1] == (1, 30)
    # pix2pix's U-Net: encoder C64-C128-C256-C512-C512-C512-C512-C512, the decoder back up (each
    # layer's output before it is joined to the skip), then the image
    unet = recipes["pix2pix-authors"]["G"]
    assert convolution_outputs(unet, image) == \
        [(64, 128), (128, 64), (256, 32), (512, 16), (512, 8), (512, 4), (512, 2), (512, 1),
         (512, 2), (512, 4), (512, 8), (512, 16), (256, 32), (128, 64), (64, 128), (3, 256)]
    # dropout where the released code has it: the 512-channel blocks between the innermost and
    # the first that narrows (levels 4, 5, 6; the paper's table puts it on 5, 6, 7)
    assert [level for level, block in enumerate(unet.up) if any(isinstance(m, nn.Dropout) for m in block)] == [4, 5, 6]
    norms = [m for m in unet.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 6 + 7  # no norm on the outermost and innermost way down, nor on the output


def test_the_70x70_patchgan_sees_70x70_patches():
    discriminator = nets.build("patchgan", in_channels=1, out_channels=1, image_size=192, width=4, layers=3,
                               stride1_layers=1, head_kernel=4, norm="none")
    with torch.no_grad():
        for parameter in discriminator.parameters():
            parameter.fill_(0.01)  # positive everywhere: every input pixel in reach moves the logit
    image = torch.zeros(1, 1, 192, 192, requires_grad=True)
    logits = discriminator(image)
    assert logits.shape[-1] == 192 // 8 - 2
    logits[0, 0, 10, 10].backward()
    rows = torch.nonzero(image.grad[0, 0].abs().sum(dim=1)).flatten()
    columns = torch.nonzero(image.grad[0, 0].abs().sum(dim=0)).flatten()
    assert int(rows[-1] - rows[0]) + 1 == int(columns[-1] - columns[0]) + 1 == 70


@pytest.mark.parametrize("arch, options, released, inputs, size", [
    ("resnet_generator", {"width": 16, "blocks": 9, "bias": True},
     lambda: released_nets.ResnetGenerator(width=16, blocks=9, norm="instance"), 1, 32),
    ("patchgan", {"width": 16, "layers": 3, "stride1_layers": 1, "head_kernel": 4, "bias": True},
     lambda: released_nets.NLayerDiscriminator(3, width=16, norm="instance"), 1, 64),
    ("patchgan", {"width": 16, "layers": 3, "stride1_layers": 1, "head_kernel": 4, "norm": "batch"},
     lambda: released_nets.NLayerDiscriminator(6, width=16, norm="batch"), 2, 64),
    ("unet", {"width": 16, "depth": 6, "norm": "batch", "bias": False, "dropout": 0.5, "dropout_levels": [4]},
     lambda: released_nets.UnetGenerator(depth=6, width=16, norm="batch"), 1, 64),
])
def test_the_same_function_as_the_released_network(arch, options, released, inputs, size):
    torch.manual_seed(0)
    ours = nets.build(arch, in_channels=3 * inputs, out_channels=1 if arch == "patchgan" else 3, image_size=size, **options)
    theirs = released()
    images = [torch.randn(2, 3, size, size) for _ in range(inputs)]
    released_nets.copy_weights(ours, theirs, *images)
    for mode in ("eval", "train"):  # train: batch statistics, and the same dropout masks from one seed
        getattr(ours, mode)(), getattr(theirs, mode)()
        torch.manual_seed(1)
        mine = ours(*images)
        torch.manual_seed(1)
        torch.testing.assert_close(mine, theirs(torch.cat(images, 1)), rtol=0, atol=0)


def test_copying_between_different_networks_is_refused():
    ours = nets.build("patchgan", in_channels=3, out_channels=1, image_size=64, width=16, layers=3)  # a 3x3 head
    with pytest.raises(ValueError, match="layer"):
        released_nets.copy_weights(ours, released_nets.NLayerDiscriminator(3, width=16, norm="instance"), torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize("arch, options, message", [
    ("unet", {"dropout": 0.5, "dropout_levels": [0, 2]}, r"dropout_levels must lie in 1\.\.2 here, got 0"),
    ("unet", {"dropout_levels": [1, 1]}, "dropout_levels lists a level twice"),
    ("unet", {"dropout_levels": "4"}, "dropout_levels must be a list of integers"),
    ("unet", {"bias": "yes"}, "bias must be true, false or null"),
    ("patchgan", {"head_kernel": 5}, "head_kernel must be 3 .* or 4"),
    ("patchgan", {"layers": 3, "stride1_layers": 3, "head_kernel": 4}, "leave no logit at image_size=32"),
    ("patchgan", {"stride1_layers": -1}, "stride1_layers must be a non-negative integer"),
])
def test_bad_options_name_the_option(arch, options, message):
    with pytest.raises(ValueError, match=message):
        nets.build(arch, in_channels=3, out_channels=3, image_size=32, **options)


def test_bias_true_biases_every_convolution_and_false_only_the_output():
    def biased(module):
        return [m.bias is not None for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]

    every = nets.build("resnet_generator", in_channels=3, out_channels=3, image_size=32, bias=True)
    assert all(biased(every))
    default = nets.build("resnet_generator", in_channels=3, out_channels=3, image_size=32)
    assert biased(default) == [False] * (len(biased(default)) - 1) + [True]  # a norm follows all but the last
    output_only = nets.build("unet", in_channels=3, out_channels=3, image_size=32, bias=False)
    assert sum(biased(output_only)) == 1 and output_only.up[0][1].bias is not None  # level 0's way up: the output
    unet_default = nets.build("unet", in_channels=3, out_channels=3, image_size=32)
    assert sum(biased(unet_default)) == 3  # the outermost and innermost way down have no norm, and the output
