"""The authors' recipes (specs/cyclegan-authors.yaml, specs/pix2pix-authors.yaml) against their
released training steps, written by hand in benchmarks/baselines/ (cyclegan_authors.py,
pix2pix_authors.py) on the released networks written out independently (released_nets.py).

From the same initial weights (lossgraph's, copied layer by layer) and the same batch, one
iteration gives the same losses and leaves the same parameters and batch-norm statistics, in
float64 so that a difference in the order of operations shows (the trainer reports losses as
float32, so those agree to float32's precision; the weights to 1e-9). Here at 32x32 and 64x64 with
the networks at a quarter of their width (16), so it runs in seconds; at 256x256 and full width,
the recipes' own networks, under `-m slow`. The dropout masks of pix2pix's U-Net match because
both sides call G(x) once, from the same torch seed.
"""

from __future__ import annotations

import pytest
import torch

import lossgraph
from benchmarks.baselines import released_nets
from benchmarks.baselines.cyclegan_authors import CycleGANAuthors
from benchmarks.baselines.pix2pix_authors import Pix2PixAuthors

# the released code's name of each lossgraph network (cyclegan_authors.py's docstring)
CYCLEGAN_NAMES = {"G_XY": "G_A", "G_YX": "G_B", "D_Y": "D_A", "D_X": "D_B"}
STEPS_PER_EPOCH = 400  # any: one iteration trains at the first epoch's rate


def compiled(name: str, image_size: int, width: int, *overrides: str):
    widths = [f"networks.{network}.width={width}" for network in lossgraph.load(name).networks]
    # the crop is the training size: both set to the size under test
    size = [f"dataset.load_size={image_size}", f"dataset.crop_size={image_size}", f"train.image_size={image_size}"]
    return lossgraph.compile(name, overrides=[*size, *widths, *overrides])


def released_cyclegan(nets, image_size, width):
    example = torch.zeros(1, 3, image_size, image_size, dtype=torch.float64)
    generator = {"width": width, "norm": "instance"}
    discriminator = {"width": width, "norm": "instance"}
    built = {"G_A": released_nets.ResnetGenerator(**generator), "G_B": released_nets.ResnetGenerator(**generator),
             "D_A": released_nets.NLayerDiscriminator(3, **discriminator),
             "D_B": released_nets.NLayerDiscriminator(3, **discriminator)}
    for ours, theirs in CYCLEGAN_NAMES.items():
        built[theirs] = built[theirs].double()
        released_nets.copy_weights(nets[ours], built[theirs], example)
    return built


def released_pix2pix(nets, image_size, width, depth):
    example = torch.zeros(1, 3, image_size, image_size, dtype=torch.float64)
    built = {"G": released_nets.UnetGenerator(depth=depth, width=width, norm="batch").double(),
             "D": released_nets.NLayerDiscriminator(6, width=width, norm="batch").double()}
    released_nets.copy_weights(nets["G"], built["G"], example)
    released_nets.copy_weights(nets["D"], built["D"], example, example)
    return built


def batch(image_size, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, image_size, image_size, generator=generator, dtype=torch.float64) * 2 - 1 for _ in range(2)]


def assert_same_state(ours: torch.nn.Module, theirs: torch.nn.Module, example, where: str) -> None:
    """Every parameter and buffer of each layer, layer by layer in call order."""
    pairs = zip(released_nets.stateful_layers_in_call_order(ours, *example),
                released_nets.stateful_layers_in_call_order(theirs, torch.cat(example, 1) if len(example) > 1 else example[0]))
    for index, (mine, other) in enumerate(pairs):
        for (key, value), (_, wanted) in zip(mine.state_dict().items(), other.state_dict().items()):
            label = f"{where} layer {index} {type(mine).__name__}.{key}"
            if value.is_floating_point():
                torch.testing.assert_close(value, wanted, rtol=1e-9, atol=1e-12, msg=label)
            else:
                assert torch.equal(value, wanted), label


def run_cyclegan(image_size: int, width: int) -> None:
    program = compiled("cyclegan-authors", image_size, width)
    nets = {name: net.double() for name, net in program.build_networks(seed=0).items()}
    baseline = CycleGANAuthors(released_cyclegan(nets, image_size, width))
    x, y = batch(image_size, seed=1)
    trainer = program.trainer(nets, steps_per_epoch=STEPS_PER_EPOCH)
    stats = trainer.step({"x": x, "y": y})
    want = baseline.step(real_A=x, real_B=y)

    expected = {"G": want["G"], "G/adv": want["G_A"] + want["G_B"], "G/cycle": want["cycle_A"] + want["cycle_B"],
                "G/identity": want["idt_A"] + want["idt_B"], "D": want["D"], "D/adv_Y": want["D_A"], "D/adv_X": want["D_B"]}
    for key, value in expected.items():
        assert stats[key] == pytest.approx(float(value), rel=1e-6), key
    example = (torch.zeros(1, 3, image_size, image_size, dtype=torch.float64),)
    for ours, theirs in CYCLEGAN_NAMES.items():
        assert_same_state(nets[ours], baseline.__dict__[theirs], example, ours)


def run_pix2pix(image_size: int, width: int, depth: int) -> None:
    overrides = [f"networks.G.depth={depth}"]
    if depth < 8:  # the released code's rule: dropout in the depth - 5 blocks under the innermost
        overrides.append(f"networks.G.dropout_levels=[{', '.join(str(level) for level in range(4, depth - 1))}]")
    program = compiled("pix2pix-authors", image_size, width, *overrides)
    nets = {name: net.double() for name, net in program.build_networks(seed=0).items()}
    baseline = Pix2PixAuthors(released_pix2pix(nets, image_size, width, depth))
    x, y = batch(image_size, seed=2)
    trainer = program.trainer(nets, steps_per_epoch=STEPS_PER_EPOCH)
    torch.manual_seed(7)  # the dropout masks
    stats = trainer.step({"x": x, "y": y})
    torch.manual_seed(7)
    want = baseline.step(real_A=x, real_B=y)

    expected = {"G": want["G"], "G/adv": want["G_GAN"], "G/l1": want["G_L1"], "D": want["D"], "D/adv": -want["D"]}
    for key, value in expected.items():
        assert stats[key] == pytest.approx(float(value), rel=1e-6), key
    example = torch.zeros(1, 3, image_size, image_size, dtype=torch.float64)
    nets["G"].eval(), baseline.G.eval()  # listing the layers runs a forward: no statistics move
    assert_same_state(nets["G"], baseline.G, (example,), "G")
    nets["D"].eval(), baseline.D.eval()
    assert_same_state(nets["D"], baseline.D, (example, example), "D")


def test_one_cyclegan_iteration_is_the_released_one():
    run_cyclegan(image_size=32, width=16)


def test_one_pix2pix_iteration_is_the_released_one():
    # depth 6 at 64x64 keeps one dropout block (level 4) and a 1x1 bottleneck, as unet_256 at 256
    run_pix2pix(image_size=64, width=16, depth=6)


@pytest.mark.slow
def test_one_cyclegan_iteration_at_256_is_the_released_one():
    run_cyclegan(image_size=256, width=64)


@pytest.mark.slow
def test_one_pix2pix_iteration_at_256_is_the_released_one():
    run_pix2pix(image_size=256, width=64, depth=8)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cyclegan-authors", "pix2pix-authors"])
def test_the_recipe_trains_at_256_on_the_cpu(name, tmp_path):
    """A few steps of the spec as written: 286x286 scenes cut to random 256x256 crops and flipped,
    batch 1, the epoch schedule's first rate, a checkpoint at the end."""
    import csv

    from lossgraph.data import open_dataset
    from lossgraph.train.run import RunOptions, train

    program = lossgraph.compile(name, overrides=["dataset.size=16", "dataset.test_size=2"])
    spec = program.spec
    assert spec.train.image_size == 256 and spec.dataset["load_size"] == 286
    dataset = open_dataset(spec.dataset, spec.kinds, spec.train.image_size, seed=0)
    assert dataset.batch(1, 1)["x"].shape == (1, 3, 256, 256)
    summary = train(program, dataset, RunOptions(out_dir=tmp_path / "run", device="cpu", steps=2, progress=False,
                                                 tensorboard=False, eval_count=2, sample_count=2))
    assert summary.step == 2 and summary.checkpoint is not None
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        assert float(row["lr/G"]) == float(row["lr/D"]) == 2e-4  # epoch 1 of 200 (16 steps an epoch)
        assert all(torch.isfinite(torch.tensor(float(row[key]))) for key in ("G", "D"))
