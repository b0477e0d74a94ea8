"""Augmentation (augment.py): load_size, crop_size and flip, for every kind of dataset.

Crops are checked against the image they are cut from: a dataset's `load_items` gives the
uncut images at the load size, and every training sample must be one window of it (mirrored or
not), the window the (seed, stream, position) draws name.
"""

import re
from pathlib import Path

import numpy
import pytest
import torch
from PIL import Image

import lossgraph
from lossgraph.data import open_dataset
from lossgraph.data.augment import Augment
from lossgraph.data.dataset import POSITION
from lossgraph.language.errors import DataError, SpecError
from lossgraph.language.kinds import Kind
from lossgraph.train.run import RunOptions, train

IMAGE = Kind("image", 3)
PAIR = {"x": IMAGE, "y": IMAGE}
TINY = Path(__file__).resolve().parents[1] / "run" / "tiny.yaml"
CROP = {"load_size": 40, "crop_size": 32, "flip": True}


def shapes(pairing="paired", seed=0, **options):
    return open_dataset({"builtin": "shapes", "pairing": pairing, **CROP, **options}, PAIR, 32, seed=seed)


def window(full: torch.Tensor, top: int, left: int, size: int, mirrored: bool) -> torch.Tensor:
    cut = full[:, top:top + size, left:left + size]
    return cut.flip(-1) if mirrored else cut


def random_pixels(path: Path, size: tuple[int, int], seed: int) -> numpy.ndarray:
    """A PNG of noise (every window differs from every other), written to `path`; its pixels."""
    pixels = numpy.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=numpy.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def make_aligned_negatives(root: Path, count: int = 6, side: int = 40) -> None:
    """Aligned pairs whose B half is the photographic negative of A: y = -x, pixel for pixel."""
    for index in range(count):
        a = numpy.random.default_rng(index).integers(0, 256, (side, side, 3), dtype=numpy.uint8)
        path = root / "train" / f"{index:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(numpy.concatenate([a, 255 - a], axis=1)).save(path)


# ----- the crops and flips themselves


def test_every_training_sample_is_the_window_its_draws_name():
    dataset = shapes()
    indices = dataset.batch_indices(3, 8)
    full = dataset.load_items(indices)
    batch = dataset.batch(3, 8)
    tops, lefts, flips = dataset.augment.draws(0, "pairs", indices[POSITION])
    for name in ("x", "y"):
        assert full[name].shape[-1] == 40 and batch[name].shape == (8, 3, 32, 32)
        for n in range(8):
            assert torch.equal(batch[name][n], window(full[name][n], tops[n], lefts[n], 32, flips[n]))


def test_crops_follow_seed_step_and_position_only():
    first = shapes().batch(5, 6)
    again = shapes().batch(5, 6)  # a fresh dataset, as a resumed run opens
    assert all(torch.equal(first[name], again[name]) for name in ("x", "y"))
    # Position 5 * 6 + 2 of batch size 6 is position 8 * 4 of batch size 4: the same item would be
    # cut alike; the item differs with the batch size, so compare the draws themselves.
    augment = Augment(32, 40, True)
    assert augment.draws(0, "pairs", torch.tensor([32])) == augment.draws(0, "pairs", torch.tensor([32]))
    draws = [augment.draws(seed, "pairs", torch.arange(64)) for seed in (0, 1)]
    assert draws[0] != draws[1]
    assert augment.draws(0, "A", torch.arange(64)) != augment.draws(0, "B", torch.arange(64))


def test_a_slice_of_a_batch_is_cut_as_the_whole_batch_is():
    """What a distributed process loads (distributed.py: load_train on its slice of batch_indices)."""
    dataset = shapes(pairing="unpaired")
    whole = dataset.batch(2, 8)
    indices = dataset.batch_indices(2, 8)
    part = dataset.load_train({name: index[4:8] for name, index in indices.items()})
    for name in ("x", "y"):
        assert torch.equal(part[name], whole[name][4:8])


def test_load_train_without_positions_is_refused():
    dataset = shapes()
    indices = dataset.batch_indices(0, 2)
    del indices[POSITION]
    with pytest.raises(ValueError, match="positions"):
        dataset.load_train(indices)


def test_unpaired_domains_draw_their_own_crops_and_pairs_share_one():
    augment = Augment(32, 40, True)
    positions = torch.arange(32)
    dataset = shapes(pairing="unpaired")
    assert dataset.stream_of("x") != dataset.stream_of("y")
    assert augment.draws(0, dataset.stream_of("x"), positions) != augment.draws(0, dataset.stream_of("y"), positions)
    assert shapes(pairing="paired").stream_of("x") == shapes(pairing="paired").stream_of("y")


def test_flips_come_up_about_half_the_time_and_crops_cover_every_offset():
    augment = Augment(32, 40, True)
    tops, lefts, flips = augment.draws(7, "pairs", torch.arange(4000))
    assert 0.46 < sum(flips) / len(flips) < 0.54  # 4000 fair coins: 6 standard deviations of slack
    assert set(tops) == set(range(9)) and set(lefts) == set(range(9))
    assert not any(Augment(32, 40, False).draws(7, "pairs", torch.arange(200))[2])
    assert set(Augment(32, 32, True).draws(7, "pairs", torch.arange(200))[0]) == {0}


def test_held_out_samples_are_the_centre_never_mirrored():
    dataset = shapes(test_size=6)
    plain = open_dataset({"builtin": "shapes", "pairing": "paired", "test_size": 6}, PAIR, 40)
    full = plain.held_out(6)  # the same test scenes drawn at the load size
    held_out = dataset.held_out(6)
    for name in ("x", "y"):
        assert held_out[name].shape == (6, 3, 32, 32)
        assert torch.equal(held_out[name], full[name][:, :, 4:36, 4:36])
        assert torch.equal(dataset.held_out(6)[name], held_out[name])  # the same on every call


def test_held_out_image_extras_are_cut_too():
    variables = {"x": IMAGE, "c_s": Kind("label", 3)}
    config = {"builtin": "shapes", "styles": {"x": 3}, "labels": {"c_s": "style(x)"},
              "held_out": {"c_t": "target_style(x)", "y_t": "restyle(x, c_t)"}, "load_size": 40, "crop_size": 32}
    held_out = open_dataset(config, variables, 32).held_out(6)
    assert held_out["y_t"].shape == (6, 3, 32, 32) and held_out["c_t"].shape == (6,)
    batch = open_dataset(config, variables, 32).batch(0, 6)
    assert batch["x"].shape == (6, 3, 32, 32) and batch["c_s"].shape == (6,)


# ----- every kind of dataset


def test_aligned_pairs_are_cut_and_mirrored_identically(tmp_path):
    make_aligned_negatives(tmp_path)
    dataset = open_dataset({"folder": str(tmp_path), "layout": "aligned", **CROP}, PAIR, 32)
    mirrored_any = False
    for step in range(6):
        batch = dataset.batch(step, 4)
        assert batch["x"].shape == (4, 3, 32, 32)
        # B is A's negative at every pixel of the crop (up to float rounding of 255 - a)
        assert torch.allclose(batch["y"], -batch["x"], atol=1e-6, rtol=0)
        indices = dataset.batch_indices(step, 4)
        mirrored_any |= any(dataset.augment.draws(0, "pairs", indices[POSITION])[2])
    assert mirrored_any
    held_out = dataset.held_out(3)
    assert torch.allclose(held_out["y"], -held_out["x"], atol=1e-6, rtol=0) and held_out["x"].shape == (3, 3, 32, 32)


def test_unaligned_folders_are_cut_from_the_loaded_image(tmp_path):
    for domain in "AB":
        for index in range(3):
            random_pixels(tmp_path / f"train{domain}" / f"{index}.png", (40, 40), seed=index + 10 * (domain == "B"))
    dataset = open_dataset({"folder": str(tmp_path), "pairing": "unpaired", **CROP}, PAIR, 32)
    indices = dataset.batch_indices(1, 4)
    full, batch = dataset.load_items(indices), dataset.batch(1, 4)
    for name in ("x", "y"):
        tops, lefts, flips = dataset.augment.draws(0, dataset.stream_of(name), indices[POSITION])
        for n in range(4):
            assert torch.equal(batch[name][n], window(full[name][n], tops[n], lefts[n], 32, flips[n]))
    assert dataset.held_out(2)["x"].shape == (2, 3, 32, 32)
    assert "random 32x32 crops of 40x40, random flips" in dataset.describe()


def test_class_folders_are_cut_and_keep_their_labels(tmp_path):
    for name in ("cat", "dog"):
        for index in range(2):
            random_pixels(tmp_path / "train" / name / f"{index}.png", (48, 40), seed=index)
    variables = {"x": IMAGE, "c": Kind("label", 2)}
    config = {"folder": str(tmp_path), "layout": "classes", "labels": {"c": "class(x)"}, **CROP}
    dataset = open_dataset(config, variables, 32)
    batch = dataset.batch(0, 4)
    assert batch["x"].shape == (4, 3, 32, 32)
    assert torch.equal(batch["c"], dataset.train_labels[dataset.batch_indices(0, 4)["x"]])


# ----- resume


def test_a_resumed_run_with_augmentation_ends_like_the_whole_run(tmp_path):
    overrides = ["dataset.load_size=12", "dataset.crop_size=8", "dataset.flip=true"]
    spec = lossgraph.load(TINY, overrides=overrides)
    program = lossgraph.compile(spec)

    def run(out, steps, resume=False):
        dataset = open_dataset(spec.dataset, spec.kinds, spec.train.image_size, seed=0)
        options = RunOptions(out_dir=out, device="cpu", steps=steps, progress=False, resume=resume,
                             checkpoint_every=3, log_every=1, sample_every=0, eval_every=1000)
        return train(program, dataset, options)

    run(tmp_path / "whole", 6)
    run(tmp_path / "split", 3)
    run(tmp_path / "split", 6, resume=True)
    from safetensors.torch import load_file

    whole, split = (load_file(str(tmp_path / name / "checkpoints" / "step_000006" / "nets.safetensors"))
                    for name in ("whole", "split"))
    assert whole.keys() == split.keys()
    assert all(torch.equal(whole[key], split[key]) for key in whole)
    assert lossgraph.load(tmp_path / "whole" / "spec.yaml").dataset["crop_size"] == 8  # the resolved spec reloads


# ----- mistakes


def spec_problem(*overrides: str) -> str:
    with pytest.raises(SpecError) as caught:
        lossgraph.load(TINY, overrides=list(overrides))
    return str(caught.value)


def test_crop_size_sets_the_image_size_when_the_spec_writes_none():
    spec = lossgraph.load(TINY, overrides=["train.image_size=null", "dataset.crop_size=16", "dataset.load_size=20"])
    assert spec.train.image_size == 16


@pytest.mark.parametrize("overrides, expected", [
    (["dataset.crop_size=16"], ["train.image_size", "8 differs from dataset.crop_size 16",
                                "remove train.image_size (crop_size implies it) or set it to 16"]),
    (["train.image_size=16", "dataset.crop_size=16", "dataset.load_size=12"],
     ["dataset.load_size", "load_size 12 is smaller than crop_size 16", "make load_size at least 16, e.g. 18"]),
    (["train.image_size=16", "dataset.load_size=12"],
     ["dataset.load_size", "smaller than the image size 16 (train.image_size)"]),
    (["dataset.crop_size=0"], ["dataset.crop_size", "at least 8, got 0"]),
    (["dataset.load_size=-4"], ["dataset.load_size", "at least 8, got -4"]),
    (["dataset.crop_size=8.5"], ["dataset.crop_size", "got 8.5"]),
    (["dataset.crop_size=true"], ["dataset.crop_size", "got True"]),
    (["dataset.flip=1"], ["dataset.flip", "expected true or false, got 1"]),
    (["dataset.flip=yes please"], ["dataset.flip", "got 'yes please'"]),
])
def test_bad_augmentation_options_are_located_with_the_fix(overrides, expected):
    message = spec_problem(*overrides)
    assert re.match(r"(<override \d>|.*tiny\.yaml):\d+:\d+: ", message)  # located where the value is written
    for part in expected:
        assert part in message, (part, message)


def test_a_bad_value_in_a_file_points_at_its_line(tmp_path):
    path = tmp_path / "spec.yaml"
    text = TINY.read_text().replace("size: 64, test_size: 4}", "size: 64, test_size: 4, crop_size: 8, load_size: 4}")
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        lossgraph.load(path)
    origin = caught.value.origin
    assert origin.key == "dataset.load_size" and origin.file == str(path) and origin.line == 4


@pytest.mark.parametrize("options, image_size, expected", [
    ({"crop_size": 16}, 32, "crop_size: 16 differs from the image size 32"),
    ({"load_size": 16}, 32, "load_size: 16 is smaller than the crop size 32"),
    ({"load_size": 0}, 32, "dataset.load_size: expected a positive integer"),
    ({"flip": "yes"}, 32, "dataset.flip: expected true or false"),
])
def test_open_dataset_refuses_options_that_disagree(options, image_size, expected):
    with pytest.raises(DataError, match=expected):
        open_dataset({"builtin": "shapes", "pairing": "paired", **options}, PAIR, image_size)
