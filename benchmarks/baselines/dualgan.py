"""DualGAN (arXiv 1704.02510), written by hand: the baseline for specs/dualgan.yaml.

Wasserstein critics with raw output, RMSprop at 5e-5, 5 critic steps per generator step, every
critic weight clipped to [-0.01, 0.01] after each critic step, lambda = 500:
- D_X, D_Y maximize E[D_Y(y)] - E[D_Y(G_XY(x))] + E[D_X(x)] - E[D_X(G_YX(y))]
- G_XY, G_YX minimize -E[D_Y(G_XY(x))] - E[D_X(G_YX(y))]
  + 500 * (E[l1(G_YX(G_XY(x)) - x)] + E[l1(G_XY(G_YX(y)) - y)])

As in lossgraph's trainer, the 5 critic steps of one iteration use the iteration's batch. The
generators do not change during them, so the translations are computed once, with autograd, and
serve all 5 critic steps (detached) and then the generator step.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .common import floats, prepare, rmsprop, set_requires_grad, to_device

CRITIC_STEPS = 5
CLIP = 0.01
LAMBDA_RECONSTRUCTION = 500


class DualGAN:
    name = "dualgan"
    step_leaves_out_constants: tuple[str, ...] = ()

    def __init__(self, nets: Mapping[str, nn.Module], device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.nets = prepare(nets, self.device)
        self.G_XY, self.G_YX = self.nets["G_XY"], self.nets["G_YX"]
        self.D_X, self.D_Y = self.nets["D_X"], self.nets["D_Y"]
        self.critic_parameters = list(self.D_X.parameters()) + list(self.D_Y.parameters())
        self.optimizer_G = rmsprop(list(self.G_XY.parameters()) + list(self.G_YX.parameters()), lr=5e-5)
        self.optimizer_D = rmsprop(self.critic_parameters, lr=5e-5)

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        batch = to_device(inputs, self.device)
        x, y = batch["x"], batch["y"]
        critics = [self.D_X, self.D_Y]
        fake_y, fake_x = self.G_XY(x), self.G_YX(y)
        detached_y, detached_x = fake_y.detach(), fake_x.detach()

        set_requires_grad(critics, True)
        for _ in range(CRITIC_STEPS):
            self.optimizer_D.zero_grad(set_to_none=True)
            loss_D = (
                self.D_Y(detached_y).mean() - self.D_Y(y).mean()
                + self.D_X(detached_x).mean() - self.D_X(x).mean()
            )
            loss_D.backward()
            self.optimizer_D.step()
            with torch.no_grad():
                for parameter in self.critic_parameters:
                    parameter.clamp_(-CLIP, CLIP)

        set_requires_grad(critics, False)
        self.optimizer_G.zero_grad(set_to_none=True)
        adversarial = -self.D_Y(fake_y).mean() - self.D_X(fake_x).mean()
        reconstruction = F.l1_loss(self.G_YX(fake_y), x) + F.l1_loss(self.G_XY(fake_x), y)
        loss_G = adversarial + LAMBDA_RECONSTRUCTION * reconstruction
        loss_G.backward()
        self.optimizer_G.step()
        set_requires_grad(critics, True)
        return floats({"D": loss_D, "G": loss_G})

    @staticmethod
    def losses(nets: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        G_XY, G_YX, D_X, D_Y = nets["G_XY"], nets["G_YX"], nets["D_X"], nets["D_Y"]
        x, y = inputs["x"], inputs["y"]
        fake_y, fake_x = G_XY(x), G_YX(y)
        critic_fake_y, critic_fake_x = D_Y(fake_y).mean(), D_X(fake_x).mean()
        loss_D = critic_fake_y - D_Y(y).mean() + critic_fake_x - D_X(x).mean()
        reconstruction = F.l1_loss(G_YX(fake_y), x) + F.l1_loss(G_XY(fake_x), y)
        loss_G = -critic_fake_y - critic_fake_x + LAMBDA_RECONSTRUCTION * reconstruction
        return {"D": loss_D, "G": loss_G}
