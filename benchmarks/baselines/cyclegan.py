"""CycleGAN (arXiv 1703.10593), written by hand: the baseline for specs/cyclegan.yaml.

Least-squares adversarial losses on raw PatchGAN outputs and an L1 cycle loss, lambda = 10:
- D_X, D_Y minimize E[(D_Y(y) - 1)^2] + E[D_Y(G_XY(x))^2] + E[(D_X(x) - 1)^2] + E[D_X(G_YX(y))^2]
- G_XY, G_YX minimize E[(D_Y(G_XY(x)) - 1)^2] + E[(D_X(G_YX(y)) - 1)^2]
  + 10 * (E[l1(G_YX(G_XY(x)) - x)] + E[l1(G_XY(G_YX(y)) - y)])

Training feeds each discriminator from a 50-image history pool of fakes (the paper's). The spec
schedules D before G, so one iteration translates once with autograd, steps D on pooled
detached fakes, then steps G through the same translations with both discriminators frozen.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .common import HistoryPool, adam, floats, prepare, set_requires_grad, to_device

LAMBDA_CYCLE = 10
POOL_SIZE = 50


def least_squares(prediction: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(prediction, torch.full_like(prediction, target))


class CycleGAN:
    name = "cyclegan"
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
        self.pool_y = HistoryPool(POOL_SIZE)
        self.pool_x = HistoryPool(POOL_SIZE)

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        batch = to_device(inputs, self.device)
        x, y = batch["x"], batch["y"]
        discriminators = [self.D_X, self.D_Y]
        fake_y, fake_x = self.G_XY(x), self.G_YX(y)

        set_requires_grad(discriminators, True)
        self.optimizer_D.zero_grad(set_to_none=True)
        pooled_y, pooled_x = self.pool_y.query(fake_y), self.pool_x.query(fake_x)
        loss_D = (
            least_squares(self.D_Y(y), 1) + least_squares(self.D_Y(pooled_y), 0)
            + least_squares(self.D_X(x), 1) + least_squares(self.D_X(pooled_x), 0)
        )
        loss_D.backward()
        self.optimizer_D.step()

        set_requires_grad(discriminators, False)
        self.optimizer_G.zero_grad(set_to_none=True)
        adversarial = least_squares(self.D_Y(fake_y), 1) + least_squares(self.D_X(fake_x), 1)
        cycle = F.l1_loss(self.G_YX(fake_y), x) + F.l1_loss(self.G_XY(fake_x), y)
        loss_G = adversarial + LAMBDA_CYCLE * cycle
        loss_G.backward()
        self.optimizer_G.step()
        set_requires_grad(discriminators, True)
        return floats({"D": loss_D, "G": loss_G})

    @staticmethod
    def losses(nets: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        G_XY, G_YX, D_X, D_Y = nets["G_XY"], nets["G_YX"], nets["D_X"], nets["D_Y"]
        x, y = inputs["x"], inputs["y"]
        fake_y, fake_x = G_XY(x), G_YX(y)
        pred_fake_y, pred_fake_x = D_Y(fake_y), D_X(fake_x)
        loss_D = (
            least_squares(D_Y(y), 1) + least_squares(pred_fake_y, 0)
            + least_squares(D_X(x), 1) + least_squares(pred_fake_x, 0)
        )
        cycle = F.l1_loss(G_YX(fake_y), x) + F.l1_loss(G_XY(fake_x), y)
        loss_G = least_squares(pred_fake_y, 1) + least_squares(pred_fake_x, 1) + LAMBDA_CYCLE * cycle
        return {"D": loss_D, "G": loss_G}
