"""MUNIT's networks (nets/munit.py): shapes, parameter counts written out from the layer list,
the style reaching the image only through AdaIN, the multi-scale discriminator's pooling, and
the checks on options and inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional

import lossgraph.nets as nets

BATCH = 2


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _build(arch, in_channels=3, image_size=32, **options):
    out = 3 if arch == "munit_decoder" else 1
    return nets.build(arch, in_channels=in_channels, out_channels=out, image_size=image_size, **options)


def conv(source, target, kernel, bias=True):
    return source * target * kernel * kernel + (target if bias else 0)


def test_registered_with_their_roles():
    roles = {name: nets.ARCHS[name].role for name in nets.ARCHS if name.startswith("munit_")}
    assert roles == {"munit_content_encoder": "encoder", "munit_style_encoder": "encoder",
                     "munit_decoder": "generator", "munit_discriminator": "discriminator"}
    assert nets.ARCHS["munit_decoder"].output_range == (-1.0, 1.0)


@pytest.mark.parametrize("image_size", [32, 64])
def test_shapes(image_size):
    x = torch.randn(BATCH, 3, image_size, image_size)
    content = _build("munit_content_encoder", image_size=image_size)(x)
    assert content.shape == (BATCH, 64, image_size // 4, image_size // 4)
    style = _build("munit_style_encoder", image_size=image_size)(x)
    assert style.shape == (BATCH, 8)
    image = _build("munit_decoder", in_channels=64 + 8, image_size=image_size)(content, style)
    assert image.shape == x.shape and image.abs().max() <= 1
    full, half = _build("munit_discriminator", image_size=image_size)(x)
    assert full.shape == (BATCH, 1, image_size // 8, image_size // 8)
    assert half.shape == (BATCH, 1, image_size // 16, image_size // 16)


def test_three_scales_give_three_heads_at_64():
    outputs = _build("munit_discriminator", image_size=64, scales=3)(torch.randn(BATCH, 3, 64, 64))
    assert [o.shape[-1] for o in outputs] == [8, 4, 2]


def test_parameter_counts():
    """Each count written out from the architecture of the module docstring (width 16, 2 blocks)."""
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    # conv7 3->16, 4x4 16->32, 32->64 (no bias: instance norm follows), 2 blocks of two 3x3 64->64
    content = conv(3, 16, 7, False) + conv(16, 32, 4, False) + conv(32, 64, 4, False) + 4 * conv(64, 64, 3, False)
    assert count(_build("munit_content_encoder")) == content
    # conv7 3->16, 4x4 16->32, 32->64, 64->64, 64->64, 1x1 64->8, every conv biased (no norm)
    style = conv(3, 16, 7) + conv(16, 32, 4) + conv(32, 64, 4) + 2 * conv(64, 64, 4) + conv(64, 8, 1)
    assert count(_build("munit_style_encoder")) == style
    # MLP 8->256->256->(2 blocks x 2 AdaIN layers x (mean, std) x 64); 4 unbiased 3x3 convs;
    # up: 5x5 64->32 + layer norm (32 scales, 32 shifts), 5x5 32->16 + layer norm; conv7 16->3
    mlp = (8 * 256 + 256) + (256 * 256 + 256) + (256 * 512 + 512)
    decoder = mlp + 4 * conv(64, 64, 3, False) + conv(64, 32, 5) + 64 + conv(32, 16, 5) + 32 + conv(16, 3, 7)
    assert count(_build("munit_decoder", in_channels=72)) == decoder
    # per scale: 4x4 3->32, 32->64, 64->128, then 1x1 128->1; two scales
    scale = conv(3, 32, 4) + conv(32, 64, 4) + conv(64, 128, 4) + conv(128, 1, 1)
    assert count(_build("munit_discriminator")) == 2 * scale


def test_different_styles_give_different_images():
    torch.manual_seed(0)
    decoder = _build("munit_decoder", in_channels=72)
    content = torch.randn(BATCH, 64, 8, 8)
    first, second = torch.randn(BATCH, 8), torch.randn(BATCH, 8)
    differ = (decoder(content, first) - decoder(content, second)).abs().flatten(1).mean(1)
    assert (differ > 1e-2).all(), differ
    assert torch.equal(decoder(content, first), decoder(content, first))


def test_the_style_acts_through_adain_alone():
    """With the MLP's AdaIN parameters fixed, the style has no other way in: the image is the same."""
    torch.manual_seed(0)
    decoder = _build("munit_decoder", in_channels=72)
    fixed = torch.randn(BATCH, decoder.mlp[-1].out_features)
    decoder.mlp = _Constant(fixed)
    content = torch.randn(BATCH, 64, 8, 8)
    assert torch.equal(decoder(content, torch.randn(BATCH, 8)), decoder(content, torch.randn(BATCH, 8)))


class _Constant(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, style):
        return self.value


def test_adain_sets_each_channels_mean_and_std():
    hidden = torch.randn(BATCH, 4, 8, 8) * 3 + 1
    mean, std = torch.randn(BATCH, 4), torch.rand(BATCH, 4) + 0.5
    out = nets.munit.adain(hidden, mean, std)
    torch.testing.assert_close(out.mean((2, 3)), mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var((2, 3), unbiased=False).sqrt(), std, atol=1e-3, rtol=1e-3)


def test_upsampling_uses_layer_norm_over_each_sample():
    decoder = _build("munit_decoder", in_channels=72)
    norms = [m for m in decoder.layers if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 2 and all(m.num_groups == 1 for m in norms)
    assert not any(isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d)) for m in decoder.modules())
    assert isinstance(decoder.layers[-1], nn.Tanh)


def test_style_encoder_has_no_norm_and_content_encoder_instance_norm():
    style = _build("munit_style_encoder")
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) or isinstance(m, nn.GroupNorm) for m in style.modules())
    content = _build("munit_content_encoder")
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in content.modules()) == 3 + 2 * 2
    assert not nets.mixes_batch(content)


def test_discriminator_halves_by_average_pool_without_padding():
    """Scale 2 sees the image through a 3x3, stride-2 average pool that does not count padding."""
    torch.manual_seed(0)
    d = _build("munit_discriminator")
    x = torch.randn(BATCH, 3, 32, 32)
    pooled = functional.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    assert torch.equal(d(x)[1], d.scales[1](pooled))
    assert torch.equal(d(x)[0], d.scales[0](x))
    # a constant image stays constant at the border: the padding is not averaged in
    assert torch.allclose(d.downsample(torch.ones(1, 1, 8, 8)), torch.ones(1, 1, 4, 4))


def test_kaiming_init_for_encoders_and_decoder_normal_for_the_discriminator():
    torch.manual_seed(0)
    decoder = _build("munit_decoder", in_channels=72)
    first = decoder.mlp[0].weight  # Kaiming fan-in with ReLU gain: std sqrt(2 / 8) = 0.5
    assert 0.4 < first.std() < 0.6
    d = _build("munit_discriminator")
    assert d.scales[0][1].weight.std() < 0.03


def test_gradients_reach_every_parameter():
    x = torch.randn(BATCH, 3, 32, 32)
    encoder, style, decoder = _build("munit_content_encoder"), _build("munit_style_encoder"), _build("munit_decoder", in_channels=72)
    decoder(encoder(x), style(x)).sum().backward()
    d = _build("munit_discriminator")
    sum(o.sum() for o in d(x)).backward()
    for module in (encoder, style, decoder, d):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_meta_device_build_and_call():
    with torch.device("meta"):
        decoder = _build("munit_decoder", in_channels=72)
        out = decoder(torch.empty(BATCH, 64, 8, 8), torch.empty(BATCH, 8))
    assert out.shape == (BATCH, 3, 32, 32)


@pytest.mark.parametrize(
    ("arch", "options", "message"),
    [
        ("munit_content_encoder", {"downsample": 5}, "downsample=5"),
        ("munit_style_encoder", {"style": 0}, "style must be a positive integer"),
        ("munit_decoder", {"in_channels": 70}, "multiple of 4"),
        ("munit_decoder", {"image_size": 30}, "upsample=2 needs image_size divisible"),
        ("munit_discriminator", {"scales": 4}, "scales=4 and layers=3 need image_size divisible by 2[*][*]6"),
        ("munit_discriminator", {"layers": 0}, "layers must be a positive integer"),
    ],
)
def test_bad_options(arch, options, message):
    with pytest.raises(ValueError, match=message):
        _build(arch, **options)


def test_out_channels_must_agree_with_the_style_size():
    with pytest.raises(ValueError, match="conflicts with style=8"):
        nets.build("munit_style_encoder", in_channels=3, out_channels=4, image_size=32)
    assert nets.build("munit_style_encoder", in_channels=3, out_channels=8, image_size=32)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([torch.randn(BATCH, 72, 8, 8)], "takes a content map"),
        ([torch.randn(BATCH, 8), torch.randn(BATCH, 64, 8, 8)], "in that order"),
        ([torch.randn(BATCH, 64, 16, 16), torch.randn(BATCH, 8)], r"expects content \(N, 64, 8, 8\)"),
        ([torch.randn(BATCH, 64, 8, 8), torch.randn(BATCH, 5)], "style"),
    ],
)
def test_decoder_refuses_inputs_it_cannot_read(inputs, message):
    with pytest.raises(ValueError, match=message):
        _build("munit_decoder", in_channels=72)(*inputs)
