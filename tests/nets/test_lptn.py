"""LPTN's generator (nets/lptn.py): the fixed Laplacian pyramid against a blur written out here
with numpy, exact reconstruction, shapes, parameter counts layer by layer, any image size, and
the structure of the two mask designs. Every net here is small, so each test is fast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lossgraph.nets as nets
from lossgraph.nets.lptn import LaplacianPyramid


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _lptn(image_size: int = 32, **options) -> torch.nn.Module:
    return nets.build("lptn", in_channels=3, out_channels=3, image_size=image_size, **options)


# -- the pyramid, by hand -------------------------------------------------------------------------

TAPS = np.array([1, 4, 6, 4, 1]) / 16


def blur_by_hand(image: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """A 2-D image blurred with gain x (taps outer taps), reflecting about the edge pixels."""
    padded = np.pad(image, 2, mode="reflect")
    out = np.zeros_like(image)
    for i in range(5):
        for j in range(5):
            out += gain * TAPS[i] * TAPS[j] * padded[i:i + image.shape[0], j:j + image.shape[1]]
    return out


def pyramid_by_hand(image: np.ndarray, levels: int) -> list[np.ndarray]:
    bands, current = [], image
    for _ in range(levels):
        smaller = blur_by_hand(current)[::2, ::2]
        spread = np.zeros((2 * smaller.shape[0], 2 * smaller.shape[1]))
        spread[::2, ::2] = smaller
        up = blur_by_hand(spread, gain=4.0)[: current.shape[0], : current.shape[1]]
        bands.append(current - up)
        current = smaller
    return bands + [current]


@pytest.mark.parametrize(("size", "levels"), [(32, 2), (64, 3), (33, 2), (20, 1)])
def test_the_pyramid_is_the_blur_written_out(size, levels):
    torch.manual_seed(size)
    image = torch.randn(2, 3, size, size + 6, dtype=torch.float64)
    pyramid = LaplacianPyramid(levels).double()
    got = pyramid.decompose(image)
    for n in range(2):
        for c in range(3):
            want = pyramid_by_hand(image[n, c].numpy(), levels)
            assert len(got) == len(want) == levels + 1
            for band, expected in zip(got, want):
                np.testing.assert_allclose(band[n, c].numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [32, 64, 17, 50])
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_recompose_inverts_decompose(size, levels):
    torch.manual_seed(0)
    pyramid = LaplacianPyramid(levels)
    image = torch.randn(2, 3, size, size + 3, dtype=torch.float64)
    torch.testing.assert_close(pyramid.double().recompose(pyramid.decompose(image)), image, rtol=0, atol=1e-13)
    image32 = image.float()
    torch.testing.assert_close(pyramid.float().recompose(pyramid.decompose(image32)), image32, rtol=0, atol=2e-6)


def test_a_flat_image_has_no_high_bands_and_keeps_its_level():
    bands = LaplacianPyramid(3).decompose(torch.full((1, 3, 32, 32), 0.375))
    assert all(torch.equal(band, torch.zeros_like(band)) for band in bands[:-1])
    assert torch.equal(bands[-1], torch.full((1, 3, 4, 4), 0.375))


def test_the_pyramid_learns_nothing_and_stores_nothing():
    pyramid = LaplacianPyramid(2)
    assert list(pyramid.parameters()) == [] and pyramid.state_dict() == {}
    model = _lptn()
    assert not any(name.startswith("pyramid") for name in model.state_dict())


# -- the network ----------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", ["paper", "released"])
@pytest.mark.parametrize(("image_size", "levels", "low_side"), [(32, 2, 8), (64, 2, 16), (64, 3, 8), (32, 1, 16)])
def test_shapes(image_size, levels, low_side, mask):
    torch.manual_seed(0)
    model = _lptn(image_size, levels=levels, mask=mask)
    image = torch.randn(2, 3, image_size, image_size)
    assert model(image).shape == image.shape
    assert model.pyramid.decompose(image)[-1].shape == (2, 3, low_side, low_side)


def conv(source: int, target: int, kernel: int, bias: bool = True) -> int:
    return source * target * kernel * kernel + (target if bias else 0)


def count_by_hand(channels: int, width: int, low_blocks: int, high_blocks: int, levels: int, mask: str) -> int:
    thin = width // 4
    # the first convolution has no bias: an instance norm follows it
    low = (conv(channels, thin, 3, bias=False) + conv(thin, width, 3) + low_blocks * 2 * conv(width, width, 3)
           + conv(width, thin, 3) + conv(thin, channels, 3))
    m = 1 if mask == "paper" else channels
    high = conv(3 * channels, width, 3) + high_blocks * 2 * conv(width, width, 3) + conv(width, m, 3)
    refine = levels * (conv(m, thin, 1) + conv(thin, m, 1))
    return low + high + refine


@pytest.mark.parametrize("mask", ["paper", "released"])
def test_parameter_counts(mask):
    at_the_codes_size = _lptn(256, levels=3, width=64, low_blocks=5, high_blocks=3, mask=mask)
    want = {"paper": 616_199, "released": 617_551}[mask]  # as the module docstring states
    assert sum(p.numel() for p in at_the_codes_size.parameters()) == count_by_hand(3, 64, 5, 3, 3, mask) == want
    default = _lptn(mask=mask)
    assert sum(p.numel() for p in default.parameters()) == count_by_hand(3, 32, 5, 3, 2, mask)
    grey = nets.build("lptn", in_channels=1, out_channels=1, image_size=16, width=8, low_blocks=1, high_blocks=0, levels=1, mask=mask)
    assert sum(p.numel() for p in grey.parameters()) == count_by_hand(1, 8, 1, 0, 1, mask)


@pytest.mark.parametrize("mask", ["paper", "released"])
def test_fully_convolutional(mask):
    """Built for 32x32, it translates any size, sides not divisible by 2^L included, and the
    weights do not depend on the size it was built for."""
    torch.manual_seed(0)
    model = _lptn(32, mask=mask).eval()
    torch.manual_seed(0)
    other = _lptn(64, mask=mask).eval()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))
    for height, width in [(64, 64), (48, 80), (37, 45), (16, 16)]:
        image = torch.randn(1, 3, height, width)
        assert model(image).shape == image.shape
    assert torch.equal(model(image), other(image))


def test_the_paper_mask_multiplies_each_band_and_the_low_band_is_tanh():
    """With the low-band residual zeroed and every refined mask 1, the output is the input's own
    high bands over tanh(its low band)."""
    torch.manual_seed(0)
    model = _lptn(32, mask="paper")
    with torch.no_grad():
        model.low[-1].weight.zero_()
        model.low[-1].bias.zero_()
        for block in model.refine:
            block[-1].weight.zero_()
            block[-1].bias.fill_(1.0)
    image = 3 * torch.randn(2, 3, 32, 32)
    bands = model.pyramid.decompose(image)
    want = model.pyramid.recompose(bands[:-1] + [torch.tanh(bands[-1])])
    torch.testing.assert_close(model(image), want, rtol=0, atol=1e-6)
    with torch.no_grad():
        model.refine[-1][-1].bias.fill_(0.0)  # the finest band's mask 0: that band is gone
    want = model.pyramid.recompose([torch.zeros_like(bands[0]), bands[1], torch.tanh(bands[-1])])
    torch.testing.assert_close(model(image), want, rtol=0, atol=1e-6)


def test_the_released_mask_has_a_channel_per_band_channel_and_adds_the_band():
    torch.manual_seed(0)
    model = _lptn(32, mask="released")
    assert model.mask[-1].out_channels == 3 and all(block[0].in_channels == 3 for block in model.refine)
    assert _lptn(32, mask="paper").mask[-1].out_channels == 1
    seen = []
    model.refine[0].register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    image = torch.randn(2, 3, 32, 32)
    model(image)
    coarsest = model.pyramid.decompose(image)[-2]
    with torch.no_grad():
        low = model.pyramid.decompose(image)[-1]
        translated = torch.tanh(low + model.low(low))
        up = torch.nn.functional.interpolate
        mask = model.mask(torch.cat([coarsest, up(low, scale_factor=2), up(translated, scale_factor=2)], 1))
    torch.testing.assert_close(seen[0], coarsest * mask + coarsest)


@pytest.mark.parametrize("mask", ["paper", "released"])
def test_gradients_reach_every_parameter(mask):
    torch.manual_seed(0)
    model = _lptn(32, mask=mask)
    model(torch.randn(2, 3, 32, 32)).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize(("options", "message"), [
    ({"mask": "soft"}, "mask must be one of paper, released"),
    ({"levels": 5}, "levels=5 needs image_size divisible by 2\\*\\*5 = 32 with at least 2"),
    ({"levels": 0}, "levels must be a positive integer"),
    ({"width": 0}, "width must be a positive integer"),
    ({"low_blocks": -1}, "low_blocks must be a non-negative integer"),
])
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        _lptn(32, **options)


def test_the_output_has_the_inputs_channels():
    with pytest.raises(ValueError, match="out_channels must equal in_channels"):
        nets.build("lptn", in_channels=3, out_channels=1, image_size=32)


def test_registered_as_an_unbounded_generator():
    arch = nets.ARCHS["lptn"]
    assert arch.role == "generator" and arch.output_range is None
    assert nets.options_of("lptn") == {"levels": 2, "width": 32, "low_blocks": 5, "high_blocks": 3, "mask": "paper"}
