"""pix2pix's training step as its authors' released code takes it, written by hand: the baseline
for specs/pix2pix-authors.yaml.

From github.com/junyanz/pytorch-CycleGAN-and-pix2pix, models/pix2pix_model.py (its
`optimize_parameters`, read for the order of operations; nothing taken from it). G maps A to B
(lossgraph's G, x to y); D sees A and a B image concatenated on channels. One iteration:

1. forward: fake_B = G(A), once, so its dropout masks serve both steps;
2. the discriminator's step, on the detached fake first, then the real pair:
   loss_D = 0.5 * (bce(D(A, fake_B), fake) + bce(D(A, B), real));
3. the generator's step, D frozen as its step left it, through the same fake_B:
   loss_G = bce(D(A, fake_B), real) + 100 * L1(fake_B, B).

bce is binary cross-entropy with logits (`--gan_mode vanilla`); every D call is a forward of its
own, in that order, which batch norm's statistics depend on. Adam with lr 2e-4 and betas
(0.5, 0.999) for each optimizer. Nothing here imports lossgraph.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .cyclegan_authors import BETAS, LR, set_requires_grad
from .released_parts import gan_loss

LAMBDA_L1 = 100.0


class Pix2PixAuthors:
    """`nets`: G and D (the released code's netG and netD)."""

    def __init__(self, nets: Mapping[str, nn.Module]):
        self.G, self.D = nets["G"].train(), nets["D"].train()
        self.optimizer_G = torch.optim.Adam(self.G.parameters(), lr=LR, betas=BETAS)
        self.optimizer_D = torch.optim.Adam(self.D.parameters(), lr=LR, betas=BETAS)

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration; every loss the code reports, and the totals G and D, detached."""
        fake_B = self.G(real_A)

        set_requires_grad([self.D], True)
        self.optimizer_D.zero_grad()
        fake_AB = torch.cat((real_A, fake_B), 1)
        loss_D_fake = gan_loss(self.D(fake_AB.detach()), False, "vanilla")
        loss_D_real = gan_loss(self.D(torch.cat((real_A, real_B), 1)), True, "vanilla")
        loss_D = (loss_D_fake + loss_D_real) * 0.5
        loss_D.backward()
        self.optimizer_D.step()

        set_requires_grad([self.D], False)
        self.optimizer_G.zero_grad()
        loss_G_GAN = gan_loss(self.D(fake_AB), True, "vanilla")
        loss_G_L1 = F.l1_loss(fake_B, real_B) * LAMBDA_L1
        loss_G = loss_G_GAN + loss_G_L1
        loss_G.backward()
        self.optimizer_G.step()

        losses = {"G_GAN": loss_G_GAN, "G_L1": loss_G_L1, "D_real": loss_D_real, "D_fake": loss_D_fake,
                  "G": loss_G, "D": loss_D}
        return {name: value.detach() for name, value in losses.items()}
