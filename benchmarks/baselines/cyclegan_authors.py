"""CycleGAN's training step as its authors' released code takes it, written by hand: the baseline
for specs/cyclegan-authors.yaml.

From github.com/junyanz/pytorch-CycleGAN-and-pix2pix, models/cycle_gan_model.py (its
`optimize_parameters`, read for the order of operations; nothing taken from it). The code's names:
G_A maps domain A to B (lossgraph's G_XY), G_B maps B to A (G_YX), D_A judges domain B (D_Y),
D_B judges domain A (D_X). One iteration:

1. forward: fake_B = G_A(A), rec_A = G_B(fake_B), fake_A = G_B(B), rec_B = G_A(fake_A);
2. the generators' step, both discriminators frozen:
   loss_G = lsgan(D_A(fake_B), real) + lsgan(D_B(fake_A), real)
          + 10 * (L1(rec_A, A) + L1(rec_B, B)) + 0.5 * 10 * (L1(G_A(B), B) + L1(G_B(A), A));
3. the discriminators' step, one optimizer for both, on the fakes of step 1 through 50-image pools:
   loss_D_A = 0.5 * (lsgan(D_A(B), real) + lsgan(D_A(pool_B(fake_B)), fake)), loss_D_B likewise.

Adam with lr 2e-4 and betas (0.5, 0.999) for each optimizer, as the code builds them.
Nothing here imports lossgraph.
"""

from __future__ import annotations

import itertools
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .released_parts import HistoryPool, gan_loss

LAMBDA_A = LAMBDA_B = 10.0
LAMBDA_IDENTITY = 0.5
POOL_SIZE = 50
LR, BETAS = 2e-4, (0.5, 0.999)


def set_requires_grad(networks: list[nn.Module], flag: bool) -> None:
    for network in networks:
        for parameter in network.parameters():
            parameter.requires_grad = flag


class CycleGANAuthors:
    """`nets`: G_A, G_B, D_A, D_B (the code's names, see the module docstring)."""

    def __init__(self, nets: Mapping[str, nn.Module]):
        self.G_A, self.G_B, self.D_A, self.D_B = (nets[name].train() for name in ("G_A", "G_B", "D_A", "D_B"))
        self.optimizer_G = torch.optim.Adam(itertools.chain(self.G_A.parameters(), self.G_B.parameters()), lr=LR, betas=BETAS)
        self.optimizer_D = torch.optim.Adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), lr=LR, betas=BETAS)
        self.fake_A_pool, self.fake_B_pool = HistoryPool(POOL_SIZE), HistoryPool(POOL_SIZE)

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration; every loss the code reports, and the totals G and D, detached."""
        fake_B = self.G_A(real_A)
        rec_A = self.G_B(fake_B)
        fake_A = self.G_B(real_B)
        rec_B = self.G_A(fake_A)

        set_requires_grad([self.D_A, self.D_B], False)
        self.optimizer_G.zero_grad()
        loss_idt_A = F.l1_loss(self.G_A(real_B), real_B) * LAMBDA_B * LAMBDA_IDENTITY
        loss_idt_B = F.l1_loss(self.G_B(real_A), real_A) * LAMBDA_A * LAMBDA_IDENTITY
        loss_G_A = gan_loss(self.D_A(fake_B), True, "lsgan")
        loss_G_B = gan_loss(self.D_B(fake_A), True, "lsgan")
        loss_cycle_A = F.l1_loss(rec_A, real_A) * LAMBDA_A
        loss_cycle_B = F.l1_loss(rec_B, real_B) * LAMBDA_B
        loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B
        loss_G.backward()
        self.optimizer_G.step()

        set_requires_grad([self.D_A, self.D_B], True)
        self.optimizer_D.zero_grad()
        loss_D_A = self._discriminator_loss(self.D_A, real_B, self.fake_B_pool.query(fake_B))
        loss_D_A.backward()
        loss_D_B = self._discriminator_loss(self.D_B, real_A, self.fake_A_pool.query(fake_A))
        loss_D_B.backward()
        self.optimizer_D.step()

        losses = {"D_A": loss_D_A, "G_A": loss_G_A, "cycle_A": loss_cycle_A, "idt_A": loss_idt_A,
                  "D_B": loss_D_B, "G_B": loss_G_B, "cycle_B": loss_cycle_B, "idt_B": loss_idt_B,
                  "G": loss_G, "D": loss_D_A + loss_D_B}
        return {name: value.detach() for name, value in losses.items()}

    @staticmethod
    def _discriminator_loss(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss_real = gan_loss(discriminator(real), True, "lsgan")
        loss_fake = gan_loss(discriminator(fake.detach()), False, "lsgan")
        return (loss_real + loss_fake) * 0.5
