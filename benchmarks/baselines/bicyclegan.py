"""BicycleGAN (arXiv 1711.11586), written by hand: the baseline for specs/bicyclegan.yaml.

cVAE-GAN and cLR-GAN in one iteration, with lambda = 10, lambda_KL = 0.01, lambda_latent = 0.5:
- D_VAE, D_LR maximize E[log D_VAE(y)] + E[log(1 - D_VAE(fake_vae))] + E[log D_LR(y)] + E[log(1 - D_LR(fake_lr))]
- G, E minimize -E[log D_VAE(fake_vae)] - E[log D_LR(fake_lr)] + 10 E[l1(y - fake_vae)]
  + 0.01 E[kl(mu, logvar)] + 0.5 E[l1(z - E.mu(fake_lr))], the last term updating G only.

G before D, as the spec schedules and the usual scripts run it: encode and generate once with
autograd, G's and E's step through the fakes with both discriminators frozen, then D's step on the
real images and the detached fakes, passed through the discriminators again. The latent
regression re-encodes fake_lr with E frozen, so its gradient reaches G through E but not E.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .common import adam, fake_loss, floats, kl_to_standard_normal, prepare, real_loss, set_requires_grad, to_device

LAMBDA_L1 = 10
LAMBDA_KL = 0.01
LAMBDA_LATENT = 0.5


def encode_and_generate(G: nn.Module, E: nn.Module, x, y, z, eps):
    mu, logvar = E(y)
    z_enc = mu + torch.exp(logvar / 2) * eps
    return mu, logvar, G(x, z_enc), G(x, z)


def discriminator_loss(D_VAE: nn.Module, D_LR: nn.Module, y, fake_vae, fake_lr) -> torch.Tensor:
    return real_loss(D_VAE(y)) + fake_loss(D_VAE(fake_vae)) + real_loss(D_LR(y)) + fake_loss(D_LR(fake_lr))


class BicycleGAN:
    name = "bicyclegan"
    step_leaves_out_constants: tuple[str, ...] = ()

    def __init__(self, nets: Mapping[str, nn.Module], device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.nets = prepare(nets, self.device)
        self.G, self.E = self.nets["G"], self.nets["E"]
        self.D_VAE, self.D_LR = self.nets["D_VAE"], self.nets["D_LR"]
        generator_parameters = list(self.G.parameters()) + list(self.E.parameters())
        discriminator_parameters = list(self.D_VAE.parameters()) + list(self.D_LR.parameters())
        self.optimizer_G = adam(generator_parameters, lr=2e-4, betas=(0.5, 0.999))
        self.optimizer_D = adam(discriminator_parameters, lr=2e-4, betas=(0.5, 0.999))

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        batch = to_device(inputs, self.device)
        x, y, z, eps = batch["x"], batch["y"], batch["z"], batch["eps"]
        discriminators = [self.D_VAE, self.D_LR]
        mu, logvar, fake_vae, fake_lr = encode_and_generate(self.G, self.E, x, y, z, eps)

        set_requires_grad(discriminators, False)
        self.optimizer_G.zero_grad(set_to_none=True)
        adversarial = real_loss(self.D_VAE(fake_vae)) + real_loss(self.D_LR(fake_lr))
        reconstruction = LAMBDA_L1 * F.l1_loss(fake_vae, y)
        kl = LAMBDA_KL * kl_to_standard_normal(mu, logvar).mean()
        set_requires_grad([self.E], False)
        mu_lr, _ = self.E(fake_lr)
        set_requires_grad([self.E], True)
        latent = LAMBDA_LATENT * F.l1_loss(mu_lr, z)
        loss_G = adversarial + reconstruction + kl + latent
        loss_G.backward()
        self.optimizer_G.step()

        set_requires_grad(discriminators, True)
        self.optimizer_D.zero_grad(set_to_none=True)
        loss_D = discriminator_loss(self.D_VAE, self.D_LR, y, fake_vae.detach(), fake_lr.detach())
        loss_D.backward()
        self.optimizer_D.step()
        return floats({"G": loss_G, "D": loss_D})

    @staticmethod
    def losses(nets: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        G, E, D_VAE, D_LR = nets["G"], nets["E"], nets["D_VAE"], nets["D_LR"]
        x, y, z, eps = inputs["x"], inputs["y"], inputs["z"], inputs["eps"]
        mu, logvar, fake_vae, fake_lr = encode_and_generate(G, E, x, y, z, eps)
        pred_vae, pred_lr = D_VAE(fake_vae), D_LR(fake_lr)
        loss_D = real_loss(D_VAE(y)) + fake_loss(pred_vae) + real_loss(D_LR(y)) + fake_loss(pred_lr)
        mu_lr, _ = E(fake_lr)
        loss_G = (
            real_loss(pred_vae)
            + real_loss(pred_lr)
            + LAMBDA_L1 * F.l1_loss(fake_vae, y)
            + LAMBDA_KL * kl_to_standard_normal(mu, logvar).mean()
            + LAMBDA_LATENT * F.l1_loss(mu_lr, z)
        )
        return {"D": loss_D, "G": loss_G}
