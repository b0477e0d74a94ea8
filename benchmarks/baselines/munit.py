"""MUNIT (arXiv 1804.04732), written by hand from docs/methods.md: the baseline for specs/munit.yaml.

Content encoders Ec1, Ec2, style encoders Es1, Es2, AdaIN decoders G1, G2, and multi-scale
least-squares discriminators D1, D2 whose heads (one logit map per scale) are summed over.
With c1 = Ec1(x1), c2 = Ec2(x2), x12 = G2(c1, s2), x21 = G1(c2, s1), s1, s2 ~ N(0, I):
- D1, D2 minimize, over the heads h, E[(D1.h(x1) - 1)^2] + E[D1.h(x21)^2] + the same for D2 on x2, x12
- Ec1, Ec2, Es1, Es2, G1, G2 minimize, over the heads h, E[(D1.h(x21) - 1)^2] + E[(D2.h(x12) - 1)^2]
  + 10 * (E[l1(G1(c1, Es1(x1)) - x1)] + E[l1(G2(c2, Es2(x2)) - x2)])
  + E[l1(Es1(x21) - s1)] + E[l1(Es2(x12) - s2)]
  + E[l1(Ec2(x12) - c1)] + E[l1(Ec1(x21) - c2)]        (c1 and c2 not detached)
Adam for both, lr 1e-4, betas (0.5, 0.999), weight decay 1e-4.

D before G, as the spec schedules and the authors' loop runs them: encode and translate once
with autograd, D steps on the detached translations, then the encoders and decoders step
through the same translations with D frozen (D's outputs on them taken again, D having moved).
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .common import adam, floats, prepare, set_requires_grad, to_device

LAMBDA_X = 10
LAMBDA_S = 1
LAMBDA_C = 1
WEIGHT_DECAY = 1e-4
GENERATORS = ("Ec1", "Ec2", "Es1", "Es2", "G1", "G2")


def least_squares(heads: tuple[torch.Tensor, ...], target: float) -> torch.Tensor:
    """Summed over the discriminator's scales, as the authors' calc_dis_loss and calc_gen_loss do."""
    return sum(F.mse_loss(head, torch.full_like(head, target)) for head in heads)


def translate(nets: Mapping[str, nn.Module], x1: torch.Tensor, x2: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor):
    c1, c2 = nets["Ec1"](x1), nets["Ec2"](x2)
    return c1, c2, nets["G2"](c1, s2), nets["G1"](c2, s1)


def generator_terms(nets: Mapping[str, nn.Module], batch: Mapping[str, torch.Tensor], c1, c2, x12, x21) -> torch.Tensor:
    """recon_x, recon_s and recon_c with their weights: everything G minimizes but adv."""
    x1, x2 = batch["x1"], batch["x2"]
    recon_x = F.l1_loss(nets["G1"](c1, nets["Es1"](x1)), x1) + F.l1_loss(nets["G2"](c2, nets["Es2"](x2)), x2)
    recon_s = F.l1_loss(nets["Es1"](x21), batch["s1"]) + F.l1_loss(nets["Es2"](x12), batch["s2"])
    recon_c = F.l1_loss(nets["Ec2"](x12), c1) + F.l1_loss(nets["Ec1"](x21), c2)
    return LAMBDA_X * recon_x + LAMBDA_S * recon_s + LAMBDA_C * recon_c


class MUNIT:
    name = "munit"
    step_leaves_out_constants: tuple[str, ...] = ()

    def __init__(self, nets: Mapping[str, nn.Module], device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.nets = prepare(nets, self.device)
        self.D1, self.D2 = self.nets["D1"], self.nets["D2"]
        generator_parameters = [p for name in GENERATORS for p in self.nets[name].parameters()]
        discriminator_parameters = list(self.D1.parameters()) + list(self.D2.parameters())
        self.optimizer_G = adam(generator_parameters, lr=1e-4, betas=(0.5, 0.999), weight_decay=WEIGHT_DECAY)
        self.optimizer_D = adam(discriminator_parameters, lr=1e-4, betas=(0.5, 0.999), weight_decay=WEIGHT_DECAY)

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        batch = to_device(inputs, self.device)
        x1, x2 = batch["x1"], batch["x2"]
        D1, D2 = self.D1, self.D2
        c1, c2, x12, x21 = translate(self.nets, x1, x2, batch["s1"], batch["s2"])

        set_requires_grad([D1, D2], True)
        self.optimizer_D.zero_grad(set_to_none=True)
        loss_D = (least_squares(D1(x1), 1) + least_squares(D1(x21.detach()), 0)
                  + least_squares(D2(x2), 1) + least_squares(D2(x12.detach()), 0))
        loss_D.backward()
        self.optimizer_D.step()

        set_requires_grad([D1, D2], False)
        self.optimizer_G.zero_grad(set_to_none=True)
        adversarial = least_squares(D1(x21), 1) + least_squares(D2(x12), 1)
        loss_G = adversarial + generator_terms(self.nets, batch, c1, c2, x12, x21)
        loss_G.backward()
        self.optimizer_G.step()
        set_requires_grad([D1, D2], True)
        return floats({"D": loss_D, "G": loss_G})

    @staticmethod
    def losses(nets: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x1, x2 = inputs["x1"], inputs["x2"]
        c1, c2, x12, x21 = translate(nets, x1, x2, inputs["s1"], inputs["s2"])
        on_x21, on_x12 = nets["D1"](x21), nets["D2"](x12)
        loss_D = (least_squares(nets["D1"](x1), 1) + least_squares(on_x21, 0)
                  + least_squares(nets["D2"](x2), 1) + least_squares(on_x12, 0))
        loss_G = least_squares(on_x21, 1) + least_squares(on_x12, 1) + generator_terms(nets, inputs, c1, c2, x12, x21)
        return {"D": loss_D, "G": loss_G}
