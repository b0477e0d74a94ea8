"""Tests for the architecture registry `nets`: shapes, ranges, input combining, determinism,
option errors, `mixes_batch` and gradient flow. Every net here is small, so each test is fast."""

from __future__ import annotations

import pytest
import torch

import lossgraph.nets as nets

GENERATORS = ["unet", "resnet_generator"]
DISCRIMINATORS = ["patchgan"]


def _build(arch: str, in_channels: int = 3, image_size: int = 32, **options: object) -> torch.nn.Module:
    out_channels = 1 if nets.ARCHS[arch].role == "discriminator" else 3
    return nets.build(
        arch, in_channels=in_channels, out_channels=out_channels, image_size=image_size, **options
    )


def test_registry_entries_describe_their_archs():
    assert set(GENERATORS + DISCRIMINATORS) <= set(nets.ARCHS)
    for name, arch in nets.ARCHS.items():
        assert arch.name == name
        assert arch.role in nets.ROLES
        assert arch.doc
        assert nets.options_of(name) == arch.options
        hash(arch)
    unet_defaults = {"width": 32, "depth": 3, "norm": "instance", "dropout": 0.0, "dropout_levels": None,
                     "num_classes": None, "bias": None}
    assert nets.options_of("unet") == unet_defaults


def test_options_of_returns_a_copy():
    nets.options_of("unet")["width"] = 999
    assert nets.options_of("unet")["width"] == 32


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("arch", GENERATORS)
def test_generator_output_shape_and_range(arch, image_size):
    torch.manual_seed(0)
    generator = _build(arch, image_size=image_size)
    # Large inputs push the pre-tanh activations far out, so the range check is not vacuous.
    output = generator(10 * torch.randn(2, 3, image_size, image_size))
    assert output.shape == (2, 3, image_size, image_size)
    assert output.min() >= -1 and output.max() <= 1


@pytest.mark.parametrize(
    "image_size, layers, side", [(32, 2, 8), (64, 2, 16), (32, 3, 4), (64, 3, 8), (256, 4, 16)]
)
def test_patchgan_logit_map_shape(image_size, layers, side):
    discriminator = nets.build(
        "patchgan", in_channels=6, out_channels=2, image_size=image_size, layers=layers
    )
    source, target = torch.randn(2, 1, 3, image_size, image_size)
    output = discriminator(source, target)
    assert output.shape == (1, 2, side, side)


def test_patchgan_returns_logits_not_probabilities():
    torch.manual_seed(0)
    discriminator = _build("patchgan", norm="none")
    with torch.no_grad():
        for parameter in discriminator.parameters():
            parameter.mul_(20)
    output = discriminator(torch.randn(4, 3, 32, 32))
    assert output.min() < 0 or output.max() > 1


def test_two_images_are_concatenated_in_call_order():
    x, y = torch.randn(2, 3, 32, 32), torch.randn(2, 1, 32, 32)
    combined = nets.combine([x, y])
    assert torch.equal(combined, torch.cat([x, y], dim=1))
    discriminator = _build("patchgan", in_channels=4)
    assert discriminator(x, y).shape == (2, 1, 8, 8)


def test_vector_is_broadcast_over_height_and_width():
    image, code = torch.randn(2, 3, 4, 4), torch.randn(2, 8)
    combined = nets.combine([image, code])
    assert combined.shape == (2, 11, 4, 4)
    assert torch.equal(combined[:, 3:], code[:, :, None, None].expand(2, 8, 4, 4))
    generator = _build("unet", in_channels=11)
    assert generator(torch.randn(2, 3, 32, 32), code).shape == (2, 3, 32, 32)


def test_label_is_one_hot_encoded_and_broadcast():
    image, label = torch.randn(3, 3, 4, 4), torch.tensor([2, 0, 4])
    combined = nets.combine([image, label], num_classes=5)
    assert combined.shape == (3, 8, 4, 4)
    assert torch.equal(combined[:, 3:, 1, 2], torch.nn.functional.one_hot(label, 5).float())
    assert torch.equal(combined[:, 3:, 0, 0], combined[:, 3:, 3, 3])
    generator = _build("resnet_generator", in_channels=8, num_classes=5)
    assert generator(torch.randn(3, 3, 32, 32), label).shape == (3, 3, 32, 32)


def test_label_without_num_classes_is_an_error():
    with pytest.raises(ValueError, match="num_classes"):
        nets.combine([torch.randn(2, 3, 4, 4), torch.tensor([0, 1])])


def test_channel_count_mismatch_names_the_inputs():
    generator = _build("unet", in_channels=3)
    with pytest.raises(ValueError, match=r"6 channels.*in_channels=3"):
        generator(torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize(
    "inputs, message",
    [
        ([torch.randn(2, 8)], "at least one image"),
        ([torch.randn(2, 3, 4, 4), torch.randn(3, 8)], "batch size"),
        ([torch.randn(2, 3, 4, 4), torch.randn(2, 3, 8, 8)], "pixels"),
        ([torch.randn(2, 3, 4, 4), torch.randn(2)], "expected an image"),
    ],
)
def test_inputs_that_cannot_be_combined(inputs, message):
    with pytest.raises(ValueError, match=message):
        nets.combine(inputs)


@pytest.mark.parametrize("arch", GENERATORS + DISCRIMINATORS)
def test_build_is_deterministic_under_manual_seed(arch):
    torch.manual_seed(7)
    first = _build(arch).state_dict()
    torch.manual_seed(7)
    second = _build(arch).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    torch.manual_seed(8)
    third = _build(arch).state_dict()
    assert not all(torch.equal(first[key], third[key]) for key in first)


def test_weights_are_initialised_pix2pix_style():
    torch.manual_seed(0)
    generator = _build("unet", norm="batch", width=32)
    convolution = generator.down[1][1]
    assert abs(convolution.weight.std().item() - 0.02) < 0.002
    assert abs(convolution.weight.mean().item()) < 0.002
    batch_norm = generator.down[1][2]
    assert abs(batch_norm.weight.mean().item() - 1) < 0.01
    assert torch.count_nonzero(batch_norm.bias) == 0
    assert torch.count_nonzero(generator.up[0][1].bias) == 0


def test_unknown_arch_names_the_known_archs():
    with pytest.raises(ValueError, match="unknown arch 'unnet'") as error:
        nets.build("unnet", in_channels=3, out_channels=3, image_size=32)
    message = str(error.value)
    assert "did you mean 'unet'?" in message
    assert all(name in message for name in nets.ARCHS)


def test_unknown_option_names_the_valid_options():
    with pytest.raises(ValueError, match="unknown option 'widht' for arch 'unet'") as error:
        _build("unet", widht=16)
    message = str(error.value)
    assert "did you mean 'width'?" in message
    assert "valid options: bias, depth, dropout, dropout_levels, norm, num_classes, width" in message


@pytest.mark.parametrize(
    "arch, options, message",
    [
        ("unet", {"norm": "group"}, "norm must be one of instance, batch, none"),
        ("unet", {"width": 0}, "width must be a positive integer"),
        ("unet", {"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
        ("patchgan", {"layers": 6}, "below one pixel"),
        ("resnet_generator", {"downsample": 5}, "downsample=5"),
    ],
)
def test_bad_option_values(arch, options, message):
    with pytest.raises(ValueError, match=message):
        _build(arch, **options)


def test_unet_depth_must_divide_image_size():
    with pytest.raises(ValueError, match=r"depth=4 needs image_size divisible by 2\*\*4 = 16"):
        _build("unet", image_size=24, depth=4)
    with pytest.raises(ValueError, match="depth=6"):
        _build("unet", image_size=32, depth=6)
    assert _build("unet", image_size=24, depth=3)(torch.randn(1, 3, 24, 24)).shape == (1, 3, 24, 24)


def test_unet_down_to_one_pixel_keeps_instance_norm_off_the_bottleneck():
    torch.manual_seed(0)
    generator = _build("unet", image_size=32, depth=5, width=8)
    innermost = generator.down[-1]
    assert not any(isinstance(layer, torch.nn.InstanceNorm2d) for layer in innermost)
    output = generator(torch.randn(2, 3, 32, 32))
    assert output.shape == (2, 3, 32, 32)
    assert torch.isfinite(output).all()


def test_null_norm_is_no_norm():
    layers = _build("patchgan", norm=None).modules()
    assert not any(isinstance(layer, torch.nn.InstanceNorm2d) for layer in layers)


@pytest.mark.parametrize("arch", GENERATORS + DISCRIMINATORS)
def test_mixes_batch_only_with_batch_norm(arch):
    assert nets.mixes_batch(_build(arch, norm="batch"))
    assert not nets.mixes_batch(_build(arch, norm="instance"))
    assert not nets.mixes_batch(_build(arch, norm="none"))


def test_mixes_batch_sees_other_batch_norms_and_flagged_layers():
    class MinibatchDeviation(torch.nn.Module):
        mixes_batch = True

    assert nets.mixes_batch(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)))
    assert nets.mixes_batch(torch.nn.Sequential(torch.nn.SyncBatchNorm(2)))
    assert nets.mixes_batch(torch.nn.Sequential(MinibatchDeviation()))
    assert not nets.mixes_batch(torch.nn.Sequential(torch.nn.GroupNorm(1, 2), torch.nn.LayerNorm(2)))
    # instance norm normalises each sample alone, but a tracked running mean averages the batch
    assert nets.mixes_batch(torch.nn.Sequential(torch.nn.InstanceNorm2d(2, track_running_stats=True)))
    assert not nets.mixes_batch(torch.nn.Sequential(torch.nn.InstanceNorm2d(2)))


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("arch", GENERATORS + DISCRIMINATORS)
def test_gradients_reach_every_parameter(arch, norm):
    torch.manual_seed(0)
    # The U-Net gets a vector and dropout, the others a label, so combining is on the path too.
    if arch == "unet":
        module = _build(arch, in_channels=3 + 2, norm=norm, dropout=0.5)
        extra = torch.randn(4, 2)
    else:
        module = _build(arch, in_channels=3 + 5, norm=norm, num_classes=5)
        extra = torch.tensor([0, 1, 2, 4])
    output = module(torch.randn(4, 3, 32, 32), extra)
    (output * torch.randn_like(output)).sum().backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name
