"""StarGAN v2 (arXiv 1912.01865), written by hand from docs/methods.md: the baseline for
specs/stargan-v2.yaml.

G(x, s) translates x into the style s of a target domain; the mapping network M draws styles from
latents (pick(M(z), c_t): the target domain's row), the style encoder S reads them off a reference
image, and D gives one logit per domain. Four steps an iteration on one batch and one draw, as the
released code's loop (core/solver.py) takes them, with real = pick(D(x), c_s):
- D latent, D reference: -log sigmoid(real) - log(1 - sigmoid(pick(D(fake), c_t))) + 0.5 * R1,
  R1 = E[||grad_x pick(D(x), c_s)||^2], fake = G(x, s) from s = pick(M(z1), c_t), then pick(S(x_ref), c_t)
- G latent (G, M, S step), G reference (G alone steps):
  -log sigmoid(pick(D(fake), c_t)) + E[l1(pick(S(fake), c_t) - s)] - lambda_ds * E[l1(fake - G(x, s2))]
  + E[l1(G(fake, pick(S(x), c_s)) - x)], G(x, s2) detached, lambda_ds = 2 decaying linearly to 0
  over 2000 iterations
Adam, betas (0, 0.99), weight decay 1e-4, lr 1e-4, M at 1e-6 (a parameter group of G's optimizer:
Adam is per parameter, so this is the code's one Adam per network); averages of G, M and S with
decay 0.999 once an iteration, after the four steps.

As a careful script writes it: the latent fake is made once with autograd in D's first step and
G's first step backpropagates through it (G, M have not moved in between); D is frozen while G
steps, and S while the reference step updates G alone.
"""

from __future__ import annotations

import copy
from typing import Mapping

import torch
from torch import nn

from .common import adam, fake_loss, floats, pick, picked_with_r1, prepare, real_loss, set_requires_grad, to_device

LAMBDA_R1 = 0.5     # gamma / 2
LAMBDA_DS = 2.0     # AFHQ's, at iteration 0
DS_ITERATIONS = 2000  # the spec's run length, over which lambda_ds decays to 0
EMA_DECAY = 0.999
AVERAGED = ("G", "M", "S")


def lambda_ds(iteration: int) -> float:
    return LAMBDA_DS * max(0.0, 1.0 - iteration / DS_ITERATIONS)


def d_loss(D: nn.Module, x: torch.Tensor, c_s: torch.Tensor, fake: torch.Tensor, c_t: torch.Tensor) -> torch.Tensor:
    """D's objective on one fake: the real term and R1 from one forward of D on x as a leaf."""
    real, r1 = picked_with_r1(D, x, c_s)
    return real_loss(real) + fake_loss(pick(D(fake), c_t)) + LAMBDA_R1 * r1


def g_loss(nets: Mapping[str, nn.Module], batch: Mapping[str, torch.Tensor], fake: torch.Tensor, s: torch.Tensor,
           s2: torch.Tensor, weight_ds: float) -> torch.Tensor:
    """G's objective for one style and its partner s2: adv, sty, ds (its second image detached), cyc."""
    G, S, D = nets["G"], nets["S"], nets["D"]
    x, c_s, c_t = batch["x"], batch["c_s"], batch["c_t"]
    with torch.no_grad():
        fake2 = G(x, s2)
    adv = real_loss(pick(D(fake), c_t))
    sty = (pick(S(fake), c_t) - s).abs().mean()
    ds = (fake - fake2).abs().mean()
    cyc = (G(fake, pick(S(x), c_s)) - x).abs().mean()
    return adv + sty - weight_ds * ds + cyc


class StarGANv2:
    name = "stargan-v2"
    step_leaves_out_constants: tuple[str, ...] = ()

    def __init__(self, nets: Mapping[str, nn.Module], device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.nets = prepare(nets, self.device)
        self.G, self.M, self.S, self.D = (self.nets[name] for name in ("G", "M", "S", "D"))
        settings = dict(betas=(0.0, 0.99), weight_decay=1e-4)
        self.optimizer_D = adam(list(self.D.parameters()), lr=1e-4, **settings)
        groups = [{"params": list(self.G.parameters()) + list(self.S.parameters())},
                  {"params": list(self.M.parameters()), "lr": 1e-6}]
        self.optimizer_G = adam(groups, lr=1e-4, **settings)
        self.averages = {name: copy.deepcopy(self.nets[name]).requires_grad_(False).eval() for name in AVERAGED}
        self.iteration = 0

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        batch = to_device(inputs, self.device)
        x, x_ref, x_ref2, c_s, c_t = (batch[name] for name in ("x", "x_ref", "x_ref2", "c_s", "c_t"))
        G, M, S, D = self.G, self.M, self.S, self.D
        weight_ds = lambda_ds(self.iteration)
        s_latent = pick(M(batch["z1"]), c_t)
        fake_latent = G(x, s_latent)  # made once: D's first step reads it detached, G's first step through it

        set_requires_grad([D], True)
        self.optimizer_D.zero_grad(set_to_none=True)
        loss_D = d_loss(D, x, c_s, fake_latent.detach(), c_t)
        loss_D.backward()
        self.optimizer_D.step()

        self.optimizer_D.zero_grad(set_to_none=True)
        with torch.no_grad():
            fake_reference = G(x, pick(S(x_ref), c_t))
        loss_D_ref = d_loss(D, x, c_s, fake_reference, c_t)
        loss_D_ref.backward()
        self.optimizer_D.step()

        set_requires_grad([D], False)
        self.optimizer_G.zero_grad(set_to_none=True)
        with torch.no_grad():
            s_latent2 = pick(M(batch["z2"]), c_t)  # for ds's second image only, which is detached
        loss_G = g_loss(self.nets, batch, fake_latent, s_latent, s_latent2, weight_ds)
        loss_G.backward()
        self.optimizer_G.step()

        set_requires_grad([S], False)  # the reference step updates G alone
        self.optimizer_G.zero_grad(set_to_none=True)
        s_reference = pick(S(x_ref), c_t)
        with torch.no_grad():
            s_reference2 = pick(S(x_ref2), c_t)
        loss_G_ref = g_loss(self.nets, batch, G(x, s_reference), s_reference, s_reference2, weight_ds)
        loss_G_ref.backward()
        self.optimizer_G.step()
        set_requires_grad([D, S], True)

        with torch.no_grad():
            for name, average in self.averages.items():
                for shadow, live in zip(average.parameters(), self.nets[name].parameters()):
                    shadow.lerp_(live, 1.0 - EMA_DECAY)
        self.iteration += 1
        return floats({"D": loss_D, "D_ref": loss_D_ref, "G": loss_G, "G_ref": loss_G_ref})

    @staticmethod
    def losses(nets: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The four steps' objectives at iteration 0, as written (G_ref's with S and M not frozen:
        a value is the same either way)."""
        G, M, S, D = (nets[name] for name in ("G", "M", "S", "D"))
        x, c_s, c_t = inputs["x"], inputs["c_s"], inputs["c_t"]
        out = {}
        styles = {"": (pick(M(inputs["z1"]), c_t), pick(M(inputs["z2"]), c_t)),
                  "_ref": (pick(S(inputs["x_ref"]), c_t), pick(S(inputs["x_ref2"]), c_t))}
        for suffix, (s, s2) in styles.items():
            fake = G(x, s)
            out["D" + suffix] = d_loss(D, x, c_s, fake, c_t)
            out["G" + suffix] = g_loss(nets, inputs, fake, s, s2, lambda_ds(0))
        return out
