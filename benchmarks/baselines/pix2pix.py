"""Pix2Pix (arXiv 1611.07004), written by hand: the baseline for specs/pix2pix.yaml.

- D maximizes E[log D(x, y)] + E[log(1 - D(x, G(x)))]
- G minimizes -E[log D(x, G(x))] + 100 * E[l1(y - G(x))]

G before D, as the spec schedules and the usual scripts run it: G(x) once with autograd, G's
step through D(x, G(x)) with D frozen, then D's step on D(x, y) and on the detached fake, which
it passes through D again (the scripts' `fake.detach()`).
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .common import adam, fake_loss, floats, prepare, real_loss, set_requires_grad, to_device

LAMBDA_L1 = 100


class Pix2Pix:
    name = "pix2pix"
    step_leaves_out_constants: tuple[str, ...] = ()

    def __init__(self, nets: Mapping[str, nn.Module], device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.nets = prepare(nets, self.device)
        self.G, self.D = self.nets["G"], self.nets["D"]
        self.optimizer_G = adam(list(self.G.parameters()), lr=2e-4, betas=(0.5, 0.999))
        self.optimizer_D = adam(list(self.D.parameters()), lr=2e-4, betas=(0.5, 0.999))

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        batch = to_device(inputs, self.device)
        x, y = batch["x"], batch["y"]
        fake = self.G(x)

        set_requires_grad([self.D], False)
        self.optimizer_G.zero_grad(set_to_none=True)
        loss_G = real_loss(self.D(x, fake)) + LAMBDA_L1 * F.l1_loss(fake, y)
        loss_G.backward()
        self.optimizer_G.step()

        set_requires_grad([self.D], True)
        self.optimizer_D.zero_grad(set_to_none=True)
        loss_D = real_loss(self.D(x, y)) + fake_loss(self.D(x, fake.detach()))
        loss_D.backward()
        self.optimizer_D.step()
        return floats({"G": loss_G, "D": loss_D})

    @staticmethod
    def losses(nets: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        G, D = nets["G"], nets["D"]
        x, y = inputs["x"], inputs["y"]
        fake = G(x)
        pred_fake = D(x, fake)
        return {
            "D": real_loss(D(x, y)) + fake_loss(pred_fake),
            "G": real_loss(pred_fake) + LAMBDA_L1 * F.l1_loss(fake, y),
        }
