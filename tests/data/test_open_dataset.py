"""`open_dataset` and the shared `Dataset` behaviour: config checks, sampling, held-out data."""

import pytest
import torch

from lossgraph.data import Dataset, open_dataset
from lossgraph.data.scenes import render
from lossgraph.language.errors import DataError

UNPAIRED = {"builtin": "shapes", "pairing": "unpaired"}
PAIRED = {"builtin": "shapes", "pairing": "paired"}


def shapes(config=UNPAIRED, seed=0, image_size=32, **options):
    return open_dataset({**config, **options}, ["x", "y"], image_size, seed=seed)


def test_batches_are_a_pure_function_of_seed_step_and_batch_size():
    first = shapes().batch(7, 8)
    again = shapes().batch(7, 8)  # a fresh dataset object, as after resuming a run
    for name in ("x", "y"):
        assert torch.equal(first[name], again[name])
    later = shapes().batch(8, 8)
    other_seed = shapes(seed=1).batch(7, 8)
    assert not torch.equal(first["x"], later["x"])
    assert not torch.equal(first["x"], other_seed["x"])


def test_batches_have_the_right_shape_and_range():
    dataset = shapes(image_size=64)
    assert isinstance(dataset, Dataset)
    batch = dataset.batch(0, 5)
    assert set(batch) == {"x", "y"}
    for images in batch.values():
        assert images.shape == (5, 3, 64, 64)
        assert images.dtype == torch.float32
        assert images.min() >= -1 and images.max() <= 1


def test_every_epoch_visits_each_scene_once_in_a_fresh_order():
    dataset = shapes(size=12)
    assert len(dataset) == 12
    # Batches of 5 do not divide 12, so some batches straddle an epoch boundary.
    indices = torch.cat([dataset.batch_indices(step, 5)["x"] for step in range(12)])
    epochs = indices.view(5, 12)
    for epoch in epochs:
        assert sorted(epoch.tolist()) == list(range(12))
    assert not torch.equal(epochs[0], epochs[1])
    # A batch larger than the dataset spans several epochs and still works.
    assert dataset.batch_indices(0, 30)["x"].shape == (30,)


def test_paired_batches_show_the_same_scene_in_both_domains():
    dataset = shapes(PAIRED)
    indices = dataset.batch_indices(3, 16)
    assert torch.equal(indices["x"], indices["y"])
    batch = dataset.batch(3, 16)
    scenes = dataset.scenes("train", indices["x"])
    assert torch.equal(batch["x"], render(scenes, "flat", 32))
    assert torch.equal(batch["y"], render(scenes, "outlined", 32))


def test_unpaired_batches_draw_each_domain_independently():
    dataset = shapes()
    indices = dataset.batch_indices(3, 16)
    x_scenes = dataset.scenes("train", indices["x"])
    y_scenes = dataset.scenes("train", indices["y"])
    assert (indices["x"] != indices["y"]).sum() >= 14
    assert not torch.equal(x_scenes.hue, y_scenes.hue)
    # Still the same pool of scenes: over an epoch, both domains visit every scene.
    small = shapes(size=10)
    x_epoch = torch.cat([small.batch_indices(step, 5)["x"] for step in range(2)])
    y_epoch = torch.cat([small.batch_indices(step, 5)["y"] for step in range(2)])
    assert sorted(x_epoch.tolist()) == sorted(y_epoch.tolist()) == list(range(10))
    assert not torch.equal(x_epoch, y_epoch)


def test_held_out_is_fixed_paired_and_apart_from_training():
    dataset = shapes()
    assert dataset.paired_held_out
    first = dataset.held_out(8)
    first["x"].zero_()  # a caller writing into its batch must not change the next one
    again = dataset.held_out(8)
    fresh = shapes().held_out(16)
    assert torch.equal(again["x"], fresh["x"][:8])
    assert torch.equal(again["y"], fresh["y"][:8])
    test_scenes = dataset.scenes("test", range(8))
    assert torch.equal(again["x"], render(test_scenes, "flat", 32))
    assert torch.equal(again["y"], render(test_scenes, "outlined", 32))
    train_hues = dataset.scenes("train", range(len(dataset))).hue[:, 0]
    assert not torch.isin(test_scenes.hue[:, 0], train_hues).any()
    # At most test_size samples.
    assert shapes(test_size=5).held_out(64)["x"].shape[0] == 5


def test_identity_baseline_is_far_from_the_ground_truth():
    held_out = shapes().held_out(64)
    identity_l1 = torch.nn.functional.l1_loss(held_out["x"], held_out["y"]).item()
    print(f"identity-baseline L1 on 64 held-out scenes at 32x32: {identity_l1:.3f}")
    assert identity_l1 > 0.5


def test_describe_is_one_informative_line():
    text = shapes(size=100, test_size=10).describe()
    assert "\n" not in text
    for part in ("shapes", "100 train", "10 test", "unpaired", "32x32"):
        assert part in text


def test_variables_map_in_order_onto_domains():
    forward = open_dataset(PAIRED, ["a", "b"], 32).batch(0, 4)
    backward = open_dataset(PAIRED, ["b", "a"], 32).batch(0, 4)
    assert torch.equal(forward["a"], backward["b"])  # the first variable always reads domain A


CONFIG_MISTAKES = [
    ({**UNPAIRED, "sise": 10}, ["unknown key 'sise'", "did you mean 'size'?", "'size'", "'test_size'"]),
    ({**UNPAIRED, "colour": 1}, ["unknown key 'colour'", "'builtin'", "'pairing'"]),
    (
        {**UNPAIRED, "pairing": "pared"},
        ["dataset.pairing", "'pared'", "did you mean 'paired'?", "'unpaired'"],
    ),
    ({"builtin": "shapes"}, ["missing key 'pairing'", "'paired'", "'unpaired'"]),
    ({**PAIRED, "builtin": "mnist"}, ["unknown builtin dataset 'mnist'", "'shapes'"]),
    ({"pairing": "paired"}, ["'builtin'", "'folder'"]),
    ({**PAIRED, "folder": "data"}, ["either 'builtin' or 'folder'"]),
    ({"folder": "data", "pairing": "paired", "size": 3}, ["dataset.size", "only to builtin"]),
    ({**PAIRED, "size": 0}, ["dataset.size", "positive integer"]),
    ({**PAIRED, "test_size": True}, ["dataset.test_size", "positive integer"]),
    (["shapes"], ["expected a mapping"]),
]


@pytest.mark.parametrize("config, expected", CONFIG_MISTAKES)
def test_config_mistakes_name_the_key_and_the_valid_choices(config, expected):
    with pytest.raises(DataError) as raised:
        open_dataset(config, ["x", "y"], 32)
    message = str(raised.value)
    for part in expected:
        assert part in message, (part, message)
    assert message.count("\n") == 0 and len(message) < 300


@pytest.mark.parametrize("variables", [["x"], ["x", "x"], ["x", "y", "z"]])
def test_the_spec_must_name_two_distinct_image_variables(variables):
    with pytest.raises(DataError) as raised:
        open_dataset(PAIRED, variables, 32)
    message = str(raised.value)
    assert "exactly 2 distinct image variables" in message
    assert str(variables) in message


def test_image_size_is_checked():
    with pytest.raises(DataError, match="image size"):
        open_dataset(UNPAIRED, ["x", "y"], 0)
