"""PixelDA (arXiv 1612.05424), written by hand: the baseline for specs/pixelda.yaml.

- D maximizes E[log D(x_t)] + E[log(1 - D(G(x_s, z)))]
- G and T minimize -E[log D(G(x_s, z))] + 0.1 * (E[ce(T(G(x_s, z)), c_s)] + E[ce(T(x_s), c_s)])

G before D, as the spec schedules and the usual scripts run it: the adapted image is generated
once with autograd, G and T step through it with D frozen, then D steps on the target images and
on the adapted one detached, passed through D again.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .common import adam, fake_loss, floats, prepare, real_loss, set_requires_grad, to_device

LAMBDA_TASK = 0.1


class PixelDA:
    name = "pixelda"
    step_leaves_out_constants: tuple[str, ...] = ()

    def __init__(self, nets: Mapping[str, nn.Module], device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.nets = prepare(nets, self.device)
        self.G, self.D, self.T = self.nets["G"], self.nets["D"], self.nets["T"]
        generator_parameters = list(self.G.parameters()) + list(self.T.parameters())
        self.optimizer_G = adam(generator_parameters, lr=2e-4, betas=(0.5, 0.999))
        self.optimizer_D = adam(list(self.D.parameters()), lr=2e-4, betas=(0.5, 0.999))

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        batch = to_device(inputs, self.device)
        x_s, c_s, x_t, z = batch["x_s"], batch["c_s"], batch["x_t"], batch["z"]
        fake = self.G(x_s, z)

        set_requires_grad([self.D], False)
        self.optimizer_G.zero_grad(set_to_none=True)
        task = F.cross_entropy(self.T(fake), c_s) + F.cross_entropy(self.T(x_s), c_s)
        loss_G = real_loss(self.D(fake)) + LAMBDA_TASK * task
        loss_G.backward()
        self.optimizer_G.step()

        set_requires_grad([self.D], True)
        self.optimizer_D.zero_grad(set_to_none=True)
        loss_D = real_loss(self.D(x_t)) + fake_loss(self.D(fake.detach()))
        loss_D.backward()
        self.optimizer_D.step()
        return floats({"G": loss_G, "D": loss_D})

    @staticmethod
    def losses(nets: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        G, D, T = nets["G"], nets["D"], nets["T"]
        x_s, c_s = inputs["x_s"], inputs["c_s"]
        fake = G(x_s, inputs["z"])
        pred_fake = D(fake)
        task = F.cross_entropy(T(fake), c_s) + F.cross_entropy(T(x_s), c_s)
        return {
            "D": real_loss(D(inputs["x_t"])) + fake_loss(pred_fake),
            "G": real_loss(pred_fake) + LAMBDA_TASK * task,
        }
