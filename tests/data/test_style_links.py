"""`styles: {x_ref2: x_ref}`: an image drawn, sample by sample, in the style another image's sample
has, on scenes of its own (a second image of a domain: StarGAN v2's second reference)."""

import pytest
import torch

from lossgraph.data import open_dataset
from lossgraph.language.errors import DataError

KINDS = {"x": "image", "x_ref": "image", "x_ref2": "image", "c_t": "label(4)", "c_t2": "label(4)"}
CONFIG = {"builtin": "shapes", "pairing": "unpaired", "styles": {"x": 4, "x_ref": 4, "x_ref2": "x_ref"},
          "labels": {"c_t": "style(x_ref)", "c_t2": "style(x_ref2)"}}


def dataset(**changes):
    return open_dataset({**CONFIG, **changes}, KINDS, image_size=16, seed=0)


def test_a_linked_image_takes_its_partners_style_on_its_own_scenes():
    data = dataset()
    batch = data.batch(3, 16)
    assert torch.equal(batch["c_t"], batch["c_t2"])
    assert len(set(batch["c_t"].tolist())) > 1                 # the domains vary across the batch
    for n in range(16):
        assert not torch.equal(batch["x_ref"][n], batch["x_ref2"][n])  # not a copy
    # each sample is x_ref2's own scene drawn in x_ref's style: drawn again here, and in another style
    scenes, _ = data.train_scenes("x_ref2", data.batch_indices(3, 16)["x_ref2"])
    assert torch.allclose(batch["x_ref2"], data.draw("x_ref2", scenes, batch["c_t"]), atol=1e-6)
    assert not torch.allclose(batch["x_ref2"], data.draw("x_ref2", scenes, (batch["c_t"] + 1) % 4), atol=1e-3)


def test_held_out_links_show_other_scenes_in_the_partners_style():
    held = dataset().held_out(8)
    assert torch.equal(held["c_t"], held["c_t2"])
    for n in range(8):
        assert not torch.equal(held["x_ref"][n], held["x_ref2"][n])


def test_linked_draws_are_fixed_by_seed_and_step():
    first, second = dataset().batch(5, 8), dataset().batch(5, 8)
    assert all(torch.equal(first[key], second[key]) for key in first)


@pytest.mark.parametrize("styles, message", [
    ({"x": 4, "x_ref": 4, "x_ref2": "x_ref2"}, "cannot take its own style"),
    ({"x": "x_ref2", "x_ref": 4, "x_ref2": "x_ref"}, "takes its style from 'x_ref' in turn"),
])
def test_bad_links_are_refused(styles, message):
    with pytest.raises(DataError, match=message):
        dataset(styles=styles)


def test_paired_data_refuses_a_link():
    with pytest.raises(DataError, match="pairing: unpaired"):
        dataset(pairing="paired")
