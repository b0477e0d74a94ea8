"""DiscoGAN (arXiv 1703.05192), written by hand: the baseline for specs/discogan.yaml.

- D_X, D_Y maximize E[log D_Y(y)] + E[log(1 - D_Y(G_XY(x)))] + E[log D_X(x)] + E[log(1 - D_X(G_YX(y)))]
- G_XY, G_YX minimize -E[log D_Y(G_XY(x))] - E[log D_X(G_YX(y))]
  + E[l2sq(G_YX(G_XY(x)) - x)] + E[l2sq(G_XY(G_YX(y)) - y)]

G before D, as the spec schedules and the usual scripts run it: translate once with autograd,
G steps through them with both discriminators frozen, then D steps on the real images and on the
detached translations, which it passes through the discriminators again (`fake.detach()`).
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .common import adam, fake_loss, floats, prepare, real_loss, set_requires_grad, to_device


class DiscoGAN:
    name = "discogan"
    step_leaves_out_constants: tuple[str, ...] = ()

    def __init__(self, nets: Mapping[str, nn.Module], device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.nets = prepare(nets, self.device)
        self.G_XY, self.G_YX = self.nets["G_XY"], self.nets["G_YX"]
        self.D_X, self.D_Y = self.nets["D_X"], self.nets["D_Y"]
        generator_parameters = list(self.G_XY.parameters()) + list(self.G_YX.parameters())
        discriminator_parameters = list(self.D_X.parameters()) + list(self.D_Y.parameters())
        self.optimizer_G = adam(generator_parameters, lr=2e-4, betas=(0.5, 0.999))
        self.optimizer_D = adam(discriminator_parameters, lr=2e-4, betas=(0.5, 0.999))

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        batch = to_device(inputs, self.device)
        x, y = batch["x"], batch["y"]
        discriminators = [self.D_X, self.D_Y]
        fake_y, fake_x = self.G_XY(x), self.G_YX(y)

        set_requires_grad(discriminators, False)
        self.optimizer_G.zero_grad(set_to_none=True)
        adversarial = real_loss(self.D_Y(fake_y)) + real_loss(self.D_X(fake_x))
        reconstruction = F.mse_loss(self.G_YX(fake_y), x) + F.mse_loss(self.G_XY(fake_x), y)
        loss_G = adversarial + reconstruction
        loss_G.backward()
        self.optimizer_G.step()

        set_requires_grad(discriminators, True)
        self.optimizer_D.zero_grad(set_to_none=True)
        loss_D = (
            real_loss(self.D_Y(y)) + fake_loss(self.D_Y(fake_y.detach()))
            + real_loss(self.D_X(x)) + fake_loss(self.D_X(fake_x.detach()))
        )
        loss_D.backward()
        self.optimizer_D.step()
        return floats({"G": loss_G, "D": loss_D})

    @staticmethod
    def losses(nets: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        G_XY, G_YX, D_X, D_Y = nets["G_XY"], nets["G_YX"], nets["D_X"], nets["D_Y"]
        x, y = inputs["x"], inputs["y"]
        fake_y, fake_x = G_XY(x), G_YX(y)
        pred_fake_y, pred_fake_x = D_Y(fake_y), D_X(fake_x)
        loss_D = real_loss(D_Y(y)) + fake_loss(pred_fake_y) + real_loss(D_X(x)) + fake_loss(pred_fake_x)
        reconstruction = F.mse_loss(G_YX(fake_y), x) + F.mse_loss(G_XY(fake_x), y)
        loss_G = real_loss(pred_fake_y) + real_loss(pred_fake_x) + reconstruction
        return {"D": loss_D, "G": loss_G}
