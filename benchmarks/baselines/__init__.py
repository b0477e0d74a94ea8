"""One hand-written training iteration per shipped method, for the benchmark to compare against.

Each baseline is a class built from the networks `program.build_networks(seed)` returns and a
device. It holds its own optimizers, with the spec's hyper-parameters written out by hand, and has
`step(inputs) -> {"D": float, "G": float}` (one iteration, like `Trainer.step`) and the static
`losses(nets, inputs) -> {"D": tensor, "G": tensor}` (each player's whole objective as written,
negated for a maximizing player: the conventions of `program.losses`). None of them calls lossgraph.

A baseline whose weights change with the iteration (StarGAN v2's lambda_ds, TUNIT's warm-up)
counts its iterations in `iteration`, which the benchmark and the tests may set; TUNIT's `losses`
also takes the iteration, and its steps are C, D and G (D and G skipped through the warm-up).

A step reports the loss its optimizer minimized. Where a hand-written step leaves out terms that
are constant for the player (E[log D(x)] in a generator's step), the player is listed in the
class's `step_leaves_out_constants`.
"""

from __future__ import annotations

from .bicyclegan import BicycleGAN
from .cogan import CoGAN
from .cyclegan import CycleGAN
from .discogan import DiscoGAN
from .dualgan import DualGAN
from .lptn import LPTN
from .munit import MUNIT
from .pix2pix import Pix2Pix
from .pixelda import PixelDA
from .stargan import StarGAN
from .stargan_v2 import StarGANv2
from .tunit import TUNIT
from .unit import UNIT

BASELINES = {
    baseline.name: baseline
    for baseline in (Pix2Pix, BicycleGAN, CoGAN, PixelDA, CycleGAN, DiscoGAN, DualGAN, UNIT, StarGAN, LPTN, MUNIT, StarGANv2, TUNIT)
}

__all__ = ["BASELINES", "LPTN", "MUNIT", "BicycleGAN", "CoGAN", "CycleGAN", "DiscoGAN", "DualGAN", "Pix2Pix", "PixelDA", "StarGAN", "StarGANv2", "TUNIT", "UNIT"]
