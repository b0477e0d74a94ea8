"""CoGAN (arXiv 1606.07536), written by hand: the baseline for specs/cogan.yaml.

min over G1, G2 and max over D1, D2 of
    V = E[log D1(x1)] + E[log(1 - D1(G1(z)))] + E[log D2(x2)] + E[log(1 - D2(G2(z)))]
with one draw of z feeding both generators. The generators share their trunk and the
discriminators theirs (build_networks ties them), so each optimizer holds the union of its two
networks' parameters, each once. G minimizes V as written (the saturating minimax form); its
step leaves out E[log D(x)], which is constant for the generators, as any hand-written step would.
G before D, three generator steps per discriminator step, as the spec schedules; D's step passes
the last detached fakes through the discriminators again.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from .common import adam, fake_loss, floats, prepare, real_loss, set_requires_grad, to_device, unique_parameters


G_STEPS = 3  # generator steps per discriminator step (specs/cogan.yaml's schedule)


class CoGAN:
    name = "cogan"
    step_leaves_out_constants = ("G",)

    def __init__(self, nets: Mapping[str, nn.Module], device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.nets = prepare(nets, self.device)
        self.G1, self.G2 = self.nets["G1"], self.nets["G2"]
        self.D1, self.D2 = self.nets["D1"], self.nets["D2"]
        self.optimizer_G = adam(unique_parameters(self.G1, self.G2), lr=2e-4, betas=(0.5, 0.999))
        self.optimizer_D = adam(unique_parameters(self.D1, self.D2), lr=2e-4, betas=(0.5, 0.999))

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        batch = to_device(inputs, self.device)
        x1, x2, z = batch["x1"], batch["x2"], batch["z"]
        discriminators = [self.D1, self.D2]

        set_requires_grad(discriminators, False)
        for _ in range(G_STEPS):
            fake1, fake2 = self.G1(z), self.G2(z)
            self.optimizer_G.zero_grad(set_to_none=True)
            # E[log(1 - D(fake))] = -BCE(D(fake), fake)
            loss_G = -fake_loss(self.D1(fake1)) - fake_loss(self.D2(fake2))
            loss_G.backward()
            self.optimizer_G.step()

        set_requires_grad(discriminators, True)
        self.optimizer_D.zero_grad(set_to_none=True)
        loss_D = (
            real_loss(self.D1(x1)) + real_loss(self.D2(x2))
            + fake_loss(self.D1(fake1.detach())) + fake_loss(self.D2(fake2.detach()))
        )
        loss_D.backward()
        self.optimizer_D.step()
        return floats({"G": loss_G, "D": loss_D})

    @staticmethod
    def losses(nets: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        G1, G2, D1, D2 = nets["G1"], nets["G2"], nets["D1"], nets["D2"]
        z = inputs["z"]
        value = (
            -real_loss(D1(inputs["x1"])) - fake_loss(D1(G1(z)))
            - real_loss(D2(inputs["x2"])) - fake_loss(D2(G2(z)))
        )
        return {"D": -value, "G": value}
