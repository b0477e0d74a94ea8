"""Tests for StarGAN v2's networks (nets/starganv2.py): shapes, the style reaching G's output, the
domain count from the spec's option, parameter counts written out by hand, and He init."""

from __future__ import annotations

import math

import pytest
import torch

import lossgraph.nets as nets

BATCH, SIZE, STYLE, K = 2, 32, 8, 4


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _nets(domains: int = K):
    torch.manual_seed(0)
    G = nets.build("starganv2_generator", in_channels=3 + STYLE, out_channels=3, image_size=SIZE,
                   style=STYLE, width=8, downsample=2, blocks=1)
    M = nets.build("starganv2_mapping", in_channels=16, out_channels=1, image_size=SIZE,
                   domains=domains, style=STYLE, hidden=32, shared=2, branch=2)
    S = nets.build("starganv2_style_encoder", in_channels=3, out_channels=1, image_size=SIZE,
                   domains=domains, style=STYLE, width=8, depth=3)
    D = nets.build("starganv2_discriminator", in_channels=3, out_channels=1, image_size=SIZE,
                   domains=domains, width=8, depth=3)
    return G, M, S, D


@pytest.mark.parametrize("domains", [2, 4, 5])
def test_shapes_and_domains_from_the_option(domains):
    G, M, S, D = _nets(domains)
    x, z = torch.randn(BATCH, 3, SIZE, SIZE), torch.randn(BATCH, 16)
    assert M(z).shape == (BATCH, domains, STYLE)
    assert S(x).shape == (BATCH, domains, STYLE)
    assert D(x).shape == (BATCH, domains)
    fake = G(x, M(z)[:, 0])
    assert fake.shape == (BATCH, 3, SIZE, SIZE) and fake.abs().max() <= 1


def test_the_style_changes_the_output_and_gets_a_gradient():
    G, M, _, _ = _nets()
    x = torch.randn(BATCH, 3, SIZE, SIZE)
    s1, s2 = torch.randn(BATCH, STYLE, requires_grad=True), torch.randn(BATCH, STYLE)
    out1, out2 = G(x, s1), G(x, s2)
    assert (out1 - out2).abs().mean() > 1e-3
    out1.sum().backward()
    assert s1.grad is not None and s1.grad.abs().sum() > 0
    # Each domain's branch of M gives its own code.
    codes = M(torch.randn(BATCH, 16))
    assert (codes[:, 0] - codes[:, 1]).abs().mean() > 1e-3


def test_parameter_counts_by_hand():
    G, M, S, D = _nets()
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    linear = lambda a, b: a * b + b  # noqa: E731
    # M: shared 16 -> 32 -> 32, then K branches 32 -> 32 -> STYLE.
    assert count(M) == linear(16, 32) + linear(32, 32) + K * (linear(32, 32) + linear(32, STYLE))
    # D: stem 3 -> 8; blocks 8 -> 16 -> 32 -> 64 (conv1 keeps channels, conv2 changes them, 1x1
    # shortcut without bias); a 4x4 convolution over the last map; a linear layer to K logits.
    conv = lambda a, b, k: a * b * k * k + b  # noqa: E731
    block = lambda a, b: conv(a, a, 3) + conv(a, b, 3) + a * b  # noqa: E731
    trunk = conv(3, 8, 3) + block(8, 16) + block(16, 32) + block(32, 64) + conv(64, 64, 4)
    assert count(D) == trunk + linear(64, K)
    assert count(S) == trunk + K * linear(64, STYLE)
    # G's AdaIN layers: one linear layer of the style to 2 * channels each, two per decoder block.
    adain = sum(p.numel() for name, p in G.named_parameters() if ".affine." in name)
    decoder_channels = [(32, 32), (32, 16), (16, 8)]  # (in, out) of the blocks, deepest first
    assert adain == sum(linear(STYLE, 2 * a) + linear(STYLE, 2 * b) for a, b in decoder_channels)


def test_he_init_and_zero_biases():
    torch.manual_seed(0)
    D = nets.build("starganv2_discriminator", in_channels=3, out_channels=1, image_size=SIZE, domains=K, width=64)
    conv = D.features.trunk[1].conv1  # 64 -> 64, 3x3: fan in 576
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.05)
    assert all(m.bias.abs().sum() == 0 for m in D.modules() if isinstance(m, torch.nn.Conv2d) and m.bias is not None)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="no image channels"):
        nets.build("starganv2_generator", in_channels=64, out_channels=3, image_size=SIZE)
    with pytest.raises(ValueError, match="conflicts with domains"):
        nets.build("starganv2_discriminator", in_channels=3, out_channels=3, image_size=SIZE, domains=4)
    G = _nets()[0]
    with pytest.raises(ValueError, match="style code"):
        G(torch.randn(BATCH, 3, SIZE, SIZE))
