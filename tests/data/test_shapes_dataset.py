"""The builtin `shapes` scenes and their rendering (lossgraph/data/scenes.py), and the dataset
that draws them (lossgraph/data/shapes.py)."""

import time

import pytest
import torch

from lossgraph.data.scenes import (
    DOMAIN_STYLES,
    HUE_BAND,
    KIND_NAMES,
    MAX_SHAPES,
    STYLES,
    Scenes,
    render,
    sample_scenes,
)
from lossgraph.data.shapes import ShapesDataset


def assert_same_scenes(first: Scenes, second: Scenes) -> None:
    for field in ("kind", "present", "centre", "radius", "hue"):
        assert torch.equal(getattr(first, field), getattr(second, field)), field


def test_a_scene_depends_only_on_seed_split_and_index():
    together = sample_scenes(0, "train", [5, 9, 2])
    alone = sample_scenes(0, "train", [9])
    assert torch.equal(together.hue[1], alone.hue[0])
    assert_same_scenes(sample_scenes(0, "train", [5, 9, 2]), together)
    assert not torch.equal(sample_scenes(1, "train", [5]).hue, sample_scenes(0, "train", [5]).hue)
    assert not torch.equal(sample_scenes(0, "test", [5]).hue, sample_scenes(0, "train", [5]).hue)


def test_scene_parameters_are_in_range():
    scenes = sample_scenes(3, "train", range(500))
    assert scenes.kind.shape == (500, MAX_SHAPES)
    assert scenes.present[:, 0].all()
    counts = scenes.present.sum(dim=1)
    assert set(counts.tolist()) == {1, 2, 3}
    assert set(scenes.labels.tolist()) == set(range(len(KIND_NAMES)))
    # The main shape (slot 0, the label) is the largest of its scene.
    extras = torch.where(scenes.present[:, 1:], scenes.radius[:, 1:], torch.zeros(()))
    assert (scenes.radius[:, 0:1] > extras).all()


def test_hues_come_from_the_band():
    # Note [Why hues come from a narrow band]: it pins down the colour mapping of unpaired data.
    hue = sample_scenes(3, "train", range(500)).hue
    assert (hue >= HUE_BAND[0]).all() and (hue <= HUE_BAND[1]).all()
    assert hue.max() - hue.min() > (HUE_BAND[1] - HUE_BAND[0]) * 0.9


@pytest.mark.parametrize("image_size", [32, 64, 128, 256])
@pytest.mark.parametrize("style", sorted(STYLES))
def test_render_shape_and_range(image_size, style):
    images = render(sample_scenes(0, "train", range(4)), style, image_size)
    assert images.shape == (4, 3, image_size, image_size)
    assert images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    # Not a blank canvas: the shapes changed some pixels away from the background colour.
    assert images.flatten(1).std(dim=1).min() > 0.05


def test_each_shape_sits_inside_the_image():
    # A scene's shape touches no border pixel, so the border is pure background.
    scenes = sample_scenes(0, "train", range(64))
    images = render(scenes, "flat", 64)
    background = torch.tensor(STYLES["flat"].background) * 2 - 1
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], dim=-1)
    assert torch.allclose(border, background.view(1, 3, 1).expand_as(border), atol=1e-5)


def test_styles_share_geometry_but_differ_in_appearance():
    scenes = sample_scenes(0, "test", range(16))
    flat, outlined = (render(scenes, style, 32) for style in DOMAIN_STYLES)
    flat_background = torch.tensor(STYLES["flat"].background) * 2 - 1
    outlined_background = torch.tensor(STYLES["outlined"].background) * 2 - 1
    # Wherever one style shows pure background, so does the other: same shapes, same places.
    on_flat_background = (flat - flat_background.view(1, 3, 1, 1)).abs().amax(dim=1) < 1e-5
    on_outlined_background = (outlined - outlined_background.view(1, 3, 1, 1)).abs().amax(dim=1) < 1e-5
    assert torch.equal(on_flat_background, on_outlined_background)
    assert (flat - outlined).abs().mean() > 0.5


def test_batch_rendering_is_fast():
    dataset = ShapesDataset(["x", "y"], 32)
    dataset.batch(0, 16)
    # One thread measures the rendering itself: on a small machine shared with other work,
    # OpenMP threads that wait for each other can make every op 100 times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        for step in range(1, 11):
            dataset.batch(step, 16)
        per_batch = (time.perf_counter() - start) / 10
    finally:
        torch.set_num_threads(threads)
    print(f"shapes: {per_batch * 1e3:.2f} ms per batch of 16 x 2 images at 32x32, one thread")
    # Generous, so a busy machine does not fail it; typical is 1 to 2 ms.
    assert per_batch < 0.05
