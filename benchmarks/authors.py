"""The realistic scale (`--scale realistic`): the authors' recipes at 256x256, batch 1, against
their released training steps written by hand (baselines/cyclegan_authors.py and
baselines/pix2pix_authors.py), each on lossgraph's own networks of the spec, as the other
baselines are: CycleGAN's 9-block ResNet generators of width 64 and 70x70 PatchGANs, pix2pix's
U-Net 256 of width 64 with batch norm and dropout and its 70x70 PatchGAN. The networks match the
released ones layer for layer (tests/benchmarks/test_authors_recipes.py), so only the steps differ.

Each class here has the interface of `baselines.BASELINES`: built from `nets` and a device, with
`nets` and `step(inputs)`.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from .baselines.common import floats, prepare
from .baselines.cyclegan_authors import CycleGANAuthors
from .baselines.pix2pix_authors import Pix2PixAuthors

# the released code's name of each lossgraph network (cyclegan_authors.py's docstring)
CYCLEGAN_NAMES = {"G_XY": "G_A", "G_YX": "G_B", "D_Y": "D_A", "D_X": "D_B"}
STEPS_PER_EPOCH = 400  # the trainer needs one for the recipes' schedules in epochs; any will do for one step


class CycleGANAuthorsStep:
    name = "cyclegan-authors"

    def __init__(self, nets: Mapping[str, nn.Module], device: str | torch.device = "cpu"):
        self.nets = prepare(nets, torch.device(device))
        self.released = CycleGANAuthors({theirs: self.nets[ours] for ours, theirs in CYCLEGAN_NAMES.items()})

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        # domain A is lossgraph's x, B its y
        losses = self.released.step(inputs["x"], inputs["y"])
        return floats({"G": losses["G"], "D": losses["D"]})


class Pix2PixAuthorsStep:
    name = "pix2pix-authors"

    def __init__(self, nets: Mapping[str, nn.Module], device: str | torch.device = "cpu"):
        # lossgraph's D(x, image) concatenates its inputs on channels; the released step passes
        # them concatenated already, which the module takes as one 6-channel image
        self.nets = prepare(nets, torch.device(device))
        self.released = Pix2PixAuthors(self.nets)

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        losses = self.released.step(inputs["x"], inputs["y"])
        return floats({"G": losses["G"], "D": losses["D"]})


AUTHORS = {baseline.name: baseline for baseline in (CycleGANAuthorsStep, Pix2PixAuthorsStep)}
