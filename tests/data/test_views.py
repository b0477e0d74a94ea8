"""Augmented views: the random kind `augmented(x)`, a second view of each image (TUNIT's x_tf).

The pieces are checked against their definitions written out here: the colour jitter's
brightness, contrast and saturation formulas, a hue turn that keeps luma and is undone by the
opposite turn, a flip or identity map that moves pixels exactly; the drawn parameters stay in
TUNIT's ranges; a view depends only on its generator's state; and in a spec the view is drawn
once per iteration, the same for every step and for a queue's push.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import lossgraph
from lossgraph.data.views import AREA, HUE, JITTER, ROTATION, augmented_view, colour_factors, geometry, jitter
from lossgraph.language.errors import SpecError


def images(seed, n=3, channels=3, size=8):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), b=st.floats(0.6, 1.4), c=st.floats(0.6, 1.4), s=st.floats(0.6, 1.4))
def test_jitter_is_brightness_then_contrast_then_saturation(seed, b, c, s):
    v = images(seed)
    luma = lambda u: 0.299 * u[:, 0:1] + 0.587 * u[:, 1:2] + 0.114 * u[:, 2:3]  # noqa: E731
    want = (v * b).clamp(0, 1)
    mean = luma(want).mean((2, 3), keepdim=True)
    want = ((want - mean) * c + mean).clamp(0, 1)
    want = ((want - luma(want)) * s + luma(want)).clamp(0, 1)
    got = jitter(v, torch.tensor([[b, c, s, 0.0]] * 3, dtype=torch.float64))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_a_hue_turn_keeps_luma_and_the_opposite_turn_undoes_it():
    v = images(1) * 0.5 + 0.25  # away from the clamps
    turned = jitter(v, torch.tensor([[1.0, 1.0, 1.0, 0.05]] * 3, dtype=torch.float64))
    luma = lambda u: 0.299 * u[:, 0] + 0.587 * u[:, 1] + 0.114 * u[:, 2]  # noqa: E731
    torch.testing.assert_close(luma(turned), luma(v), rtol=1e-9, atol=1e-9)
    assert (turned - v).abs().max() > 1e-3
    back = jitter(turned, torch.tensor([[1.0, 1.0, 1.0, -0.05]] * 3, dtype=torch.float64))
    torch.testing.assert_close(back, v, rtol=1e-6, atol=1e-6)


def test_identity_and_flip_maps_move_pixels_exactly():
    v = images(2)
    identity = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]], dtype=torch.float64).repeat(3, 1, 1)
    flip = torch.tensor([[[-1.0, 0, 0], [0, 1.0, 0]]], dtype=torch.float64).repeat(3, 1, 1)
    for theta, want in ((identity, v), (flip, v.flip(-1))):
        grid = F.affine_grid(theta, list(v.shape), align_corners=False)
        torch.testing.assert_close(F.grid_sample(v, grid, align_corners=False), want)


def test_drawn_parameters_lie_in_tunits_ranges():
    g = torch.Generator().manual_seed(0)
    theta = geometry(4000, g)
    linear, shift = theta[:, :, :2], theta[:, :, 2]
    scale = linear.det().abs().sqrt()  # zoom: the crop's area, resized
    assert scale.min() >= 1 / math.sqrt(AREA[1]) - 1e-9 and scale.max() <= 1 / math.sqrt(AREA[0]) + 1e-9
    assert shift.abs().max() <= 0.2 + 1e-12 and shift.abs().max() > 0.19
    flips = (linear.det() < 0).double().mean()
    assert 0.45 < float(flips) < 0.55
    # the first column is the zoomed, rotated (and perhaps mirrored) x axis: its angle is the rotation
    angle = torch.rad2deg(torch.atan2(linear[:, 1, 0], linear[:, 0, 0].abs()))
    assert angle.abs().max() <= ROTATION + 1e-9 and angle.abs().max() > ROTATION - 1
    factors = colour_factors(4000, g)
    assert factors[:, :3].min() >= 1 - JITTER and factors[:, :3].max() <= 1 + JITTER
    assert factors[:, 3].abs().max() <= HUE


def test_a_view_depends_only_on_the_generator_and_stays_an_image():
    x = images(3, n=5, size=16).float() * 2 - 1
    first = augmented_view(x, torch.Generator().manual_seed(7))
    again = augmented_view(x, torch.Generator().manual_seed(7))
    other = augmented_view(x, torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == x.shape and first.min() >= -1 and first.max() <= 1
    one_channel = augmented_view(x[:, :1], torch.Generator().manual_seed(7))
    assert one_channel.shape == (5, 1, 16, 16)


SPEC = """
name: views
data: {x: image}
random: {x_tf: augmented(x)}
networks:
  C: {arch: classifier, classes: 5, width: 8, depth: 2}
queues:
  Q: {size: 8, push: C(x_tf)}
players:
  C:
    networks: [C]
    minimize:
      mi: {weight: -5, expr: "mi(softmax(C(x)), softmax(C(x_tf)))"}
      moco: E[nce(C(x), C(x_tf), Q, 0.5)]
train: {image_size: 16}
"""


def test_a_spec_draws_the_view_once_per_iteration_for_every_step_and_push():
    program = lossgraph.compile(lossgraph.loads(SPEC, "views.yaml"))
    inputs = program.example_inputs(batch_size=4, seed=1)
    assert inputs["x_tf"].shape == inputs["x"].shape and not torch.equal(inputs["x_tf"], inputs["x"])
    nets = program.build_networks(seed=0)
    trainer = program.trainer(nets)
    batch = {"x": inputs["x"]}
    torch.manual_seed(5)
    trainer.step(batch)  # fills the queue from the first batch, then pushes this iteration's rows
    torch.manual_seed(5)
    view = augmented_view(batch["x"])  # the one draw of the iteration, from the run's CPU stream
    first, pushed = trainer.queues.values["Q"][:4], trainer.queues.values["Q"][4:]
    net = program.build_networks(seed=0)["C"]
    with torch.no_grad():
        torch.testing.assert_close(first, net(view))  # the queue was filled with the same view
    assert pushed.shape == (4, 5)


@pytest.mark.parametrize("kind, message", [
    ("augmented(y)", "augmented(y) is a view of an image of the batch, but 'y' is not an image data variable"),
    ("augmented(c)", "augmented(c) is a view of an image of the batch, but 'c' is not an image data variable"),
    ("augmented()", "augmented takes the image data variable it is a view of: augmented(x)"),
])
def test_a_view_of_what_is_not_an_image_is_located(kind, message):
    text = SPEC.replace("data: {x: image}", "data: {x: image, c: label(3)}").replace("augmented(x)", kind)
    with pytest.raises(SpecError) as caught:
        lossgraph.compile(lossgraph.loads(text, "views.yaml"))
    assert message in str(caught.value) and "views.yaml:4:" in str(caught.value)
