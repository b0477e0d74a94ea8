"""StarGAN (arXiv 1711.09020), written by hand: the baseline for specs/stargan.yaml.

D has two heads: `src` (PatchGAN logits, read as a probability) and `cls` (domain logits).
With adv = E[log D.src(x)] + E[log(1 - D.src(G(x, c_t)))], lambda_cls = 1, lambda_rec = 10:
- D minimizes -adv + E[ce(D.cls(x), c_s)]
- G minimizes adv + E[ce(D.cls(G(x, c_t)), c_t)] + 10 * E[l1(x - G(G(x, c_t), c_s))]

D before G, as the spec schedules: translate once with autograd, D steps on the detached
translation, G steps through the same one with D frozen. G's step leaves out E[log D.src(x)],
constant for G.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .common import adam, fake_loss, floats, prepare, real_loss, set_requires_grad, to_device

LAMBDA_CLS = 1
LAMBDA_REC = 10


class StarGAN:
    name = "stargan"
    step_leaves_out_constants = ("G",)

    def __init__(self, nets: Mapping[str, nn.Module], device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.nets = prepare(nets, self.device)
        self.G, self.D = self.nets["G"], self.nets["D"]
        self.optimizer_G = adam(list(self.G.parameters()), lr=1e-4, betas=(0.5, 0.999))
        self.optimizer_D = adam(list(self.D.parameters()), lr=1e-4, betas=(0.5, 0.999))

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        batch = to_device(inputs, self.device)
        x, c_s, c_t = batch["x"], batch["c_s"], batch["c_t"]
        fake = self.G(x, c_t)

        set_requires_grad([self.D], True)
        self.optimizer_D.zero_grad(set_to_none=True)
        src_real, cls_real = self.D(x)
        src_fake, _ = self.D(fake.detach())
        loss_D = real_loss(src_real) + fake_loss(src_fake) + LAMBDA_CLS * F.cross_entropy(cls_real, c_s)
        loss_D.backward()
        self.optimizer_D.step()

        set_requires_grad([self.D], False)
        self.optimizer_G.zero_grad(set_to_none=True)
        src_fake, cls_fake = self.D(fake)
        # E[log(1 - D.src(fake))] = -BCE(src, fake): the part of adv that depends on G
        loss_G = (
            -fake_loss(src_fake)
            + LAMBDA_CLS * F.cross_entropy(cls_fake, c_t)
            + LAMBDA_REC * F.l1_loss(self.G(fake, c_s), x)
        )
        loss_G.backward()
        self.optimizer_G.step()
        set_requires_grad([self.D], True)
        return floats({"D": loss_D, "G": loss_G})

    @staticmethod
    def losses(nets: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        G, D = nets["G"], nets["D"]
        x, c_s, c_t = inputs["x"], inputs["c_s"], inputs["c_t"]
        fake = G(x, c_t)
        (src_real, cls_real), (src_fake, cls_fake) = D(x), D(fake)
        adv = -real_loss(src_real) - fake_loss(src_fake)
        return {
            "D": -adv + LAMBDA_CLS * F.cross_entropy(cls_real, c_s),
            "G": adv + LAMBDA_CLS * F.cross_entropy(cls_fake, c_t) + LAMBDA_REC * F.l1_loss(G(fake, c_s), x),
        }
