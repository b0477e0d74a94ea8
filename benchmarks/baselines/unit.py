"""UNIT (arXiv 1703.00848), written by hand: the baseline for specs/unit.yaml.

Coupled VAE-GANs over a shared latent space; the encoders share their last layers and the
decoders their first (build_networks ties them). Weights: GAN 10, KL 0.1, reconstruction 100,
cycle KL 0.1, cycle 100; the latent has unit variance, so the KL is E[mu^2].
min over E1, E2, G1, G2 and max over D1, D2 of V = VAE_1 + GAN_1 + CC_1 + VAE_2 + GAN_2 + CC_2.

G before D, as the spec schedules and the usual scripts run it: encode and translate once with
autograd, the encoders and decoders step with D frozen, then D steps on the real images and the
detached translations, passed through D again. D only changes the
GAN terms, so its step computes only those; G's step leaves out E[log D(x)], constant for G.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .common import adam, fake_loss, floats, prepare, real_loss, set_requires_grad, to_device, unique_parameters

LAMBDA_GAN = 10
LAMBDA_KL = 0.1
LAMBDA_RECONSTRUCTION = 100
LAMBDA_CYCLE_KL = 0.1
LAMBDA_CYCLE = 100


def translate(E1, E2, G1, G2, x1, x2, eps1, eps2):
    mu1, mu2 = E1(x1), E2(x2)
    z1, z2 = mu1 + eps1, mu2 + eps2
    return mu1, mu2, z1, z2, G2(z1), G1(z2)


def generator_terms(E1, E2, G1, G2, batch, mu1, mu2, z1, z2, x12, x21) -> torch.Tensor:
    """Everything in V but the GAN terms: the VAE and cycle-consistency losses of both domains."""
    x1, x2 = batch["x1"], batch["x2"]
    mu12, mu21 = E2(x12), E1(x21)
    x121, x212 = G1(mu12 + batch["eps12"]), G2(mu21 + batch["eps21"])
    vae = (
        LAMBDA_KL * (mu1.pow(2).mean() + mu2.pow(2).mean())
        + LAMBDA_RECONSTRUCTION * (F.l1_loss(G1(z1), x1) + F.l1_loss(G2(z2), x2))
    )
    cycle = (
        LAMBDA_CYCLE_KL * (mu1.pow(2).mean() + mu12.pow(2).mean() + mu2.pow(2).mean() + mu21.pow(2).mean())
        + LAMBDA_CYCLE * (F.l1_loss(x121, x1) + F.l1_loss(x212, x2))
    )
    return vae + cycle


class UNIT:
    name = "unit"
    step_leaves_out_constants = ("G",)

    def __init__(self, nets: Mapping[str, nn.Module], device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.nets = prepare(nets, self.device)
        self.E1, self.E2 = self.nets["E1"], self.nets["E2"]
        self.G1, self.G2 = self.nets["G1"], self.nets["G2"]
        self.D1, self.D2 = self.nets["D1"], self.nets["D2"]
        generator_parameters = unique_parameters(self.E1, self.E2, self.G1, self.G2)
        self.optimizer_G = adam(generator_parameters, lr=1e-4, betas=(0.5, 0.999))
        self.optimizer_D = adam(unique_parameters(self.D1, self.D2), lr=1e-4, betas=(0.5, 0.999))

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        batch = to_device(inputs, self.device)
        x1, x2 = batch["x1"], batch["x2"]
        E1, E2, G1, G2, D1, D2 = self.E1, self.E2, self.G1, self.G2, self.D1, self.D2
        discriminators = [D1, D2]
        mu1, mu2, z1, z2, x12, x21 = translate(E1, E2, G1, G2, x1, x2, batch["eps1"], batch["eps2"])

        set_requires_grad(discriminators, False)
        self.optimizer_G.zero_grad(set_to_none=True)
        # the GAN terms' part that depends on the generators: E[log(1 - D(fake))]
        adversarial = -LAMBDA_GAN * (fake_loss(D1(x21)) + fake_loss(D2(x12)))
        loss_G = adversarial + generator_terms(E1, E2, G1, G2, batch, mu1, mu2, z1, z2, x12, x21)
        loss_G.backward()
        self.optimizer_G.step()

        set_requires_grad(discriminators, True)
        self.optimizer_D.zero_grad(set_to_none=True)
        loss_D = LAMBDA_GAN * (
            real_loss(D1(x1)) + fake_loss(D1(x21.detach()))
            + real_loss(D2(x2)) + fake_loss(D2(x12.detach()))
        )
        loss_D.backward()
        self.optimizer_D.step()
        return floats({"G": loss_G, "D": loss_D})

    @staticmethod
    def losses(nets: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        E1, E2, G1, G2, D1, D2 = (nets[name] for name in ("E1", "E2", "G1", "G2", "D1", "D2"))
        x1, x2 = inputs["x1"], inputs["x2"]
        mu1, mu2, z1, z2, x12, x21 = translate(E1, E2, G1, G2, x1, x2, inputs["eps1"], inputs["eps2"])
        gan = -LAMBDA_GAN * (real_loss(D1(x1)) + fake_loss(D1(x21)) + real_loss(D2(x2)) + fake_loss(D2(x12)))
        value = gan + generator_terms(E1, E2, G1, G2, inputs, mu1, mu2, z1, z2, x12, x21)
        return {"D": -value, "G": value}
