"""LPTN (arXiv 2105.09188), written by hand from docs/methods.md: the baseline for specs/lptn.yaml.

The official code's objective: D a critic with raw output, lambda_gp = 100, lambda_pix = 1000:
- D minimizes E[D(fake)] - E[D(y)] + 100 * E[(||grad D(a y + (1 - a) fake)||_2 - 1)^2], a ~ U(0, 1)
- G minimizes -E[D(fake)] + 1000 * E[l2sq(fake - x)] (mean squared error against the *input*)
with fake = G(x); Adam at 1e-4, betas (0.9, 0.99), for both.

D before G, as the spec schedules: translate once with autograd; D steps on the detached fake,
the real batch and the random mixes (the penalty's gradient taken with create_graph, as WGAN-GP
scripts do); G then steps through the same fake with D frozen. The mixing weights are drawn on
the CPU from torch's global RNG in the images' dtype, as lossgraph draws them, so the same seed
gives the same mixes.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .common import adam, floats, prepare, set_requires_grad, to_device

LAMBDA_GP = 100
LAMBDA_PIX = 1000


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    alpha = torch.rand((real.shape[0], 1, 1, 1), dtype=real.dtype).to(real.device)
    mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
    (slope,) = torch.autograd.grad(D(mixed).sum(), mixed, create_graph=True)
    return ((slope.flatten(1).norm(dim=1) - 1) ** 2).mean()


class LPTN:
    name = "lptn"
    step_leaves_out_constants = ()

    def __init__(self, nets: Mapping[str, nn.Module], device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.nets = prepare(nets, self.device)
        self.G, self.D = self.nets["G"], self.nets["D"]
        self.optimizer_G = adam(list(self.G.parameters()), lr=1e-4, betas=(0.9, 0.99))
        self.optimizer_D = adam(list(self.D.parameters()), lr=1e-4, betas=(0.9, 0.99))

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        batch = to_device(inputs, self.device)
        x, y = batch["x"], batch["y"]
        fake = self.G(x)

        set_requires_grad([self.D], True)
        self.optimizer_D.zero_grad(set_to_none=True)
        detached = fake.detach()
        loss_D = self.D(detached).mean() - self.D(y).mean() + LAMBDA_GP * gradient_penalty(self.D, y, detached)
        loss_D.backward()
        self.optimizer_D.step()

        set_requires_grad([self.D], False)
        self.optimizer_G.zero_grad(set_to_none=True)
        loss_G = -self.D(fake).mean() + LAMBDA_PIX * F.mse_loss(fake, x)
        loss_G.backward()
        self.optimizer_G.step()
        set_requires_grad([self.D], True)
        return floats({"D": loss_D, "G": loss_G})

    @staticmethod
    def losses(nets: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        G, D = nets["G"], nets["D"]
        x, y = inputs["x"], inputs["y"]
        fake = G(x)
        critic_fake = D(fake).mean()
        return {
            "D": critic_fake - D(y).mean() + LAMBDA_GP * gradient_penalty(D, y, fake),
            "G": -critic_fake + LAMBDA_PIX * F.mse_loss(fake, x),
        }
