"""Helpers the hand-written baselines share: the few lines every per-method GAN script repeats.

The baselines are eager PyTorch written the way the usual per-method training scripts are
(pix2pix/CycleGAN reference style): a discriminator is frozen with `requires_grad_(False)` while
the generator steps, the discriminator steps on detached fakes, and the losses are the ordinary
`torch.nn.functional` ones. Nothing here imports lossgraph.

Note [Optimizers as scripts build them]
    The optimizers are built as the per-method scripts build them: `torch.optim.Adam(params,
    lr=..., betas=...)`, leaving the implementation to torch's per-device default (a loop over the
    parameters on the CPU, foreach kernels on CUDA). lossgraph's trainer picks fused Adam instead;
    that choice is part of what the benchmark measures. On the 2-core CPU it saves 0.3 to 0.7 ms
    an iteration for Pix2Pix, CycleGAN and DiscoGAN (Adam steps over their networks: 0.42 / 0.88
    / 0.80 ms as scripts build it, 0.12 / 0.23 / 0.23 ms fused).
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn


def unique_parameters(*modules: nn.Module) -> list[nn.Parameter]:
    """The parameters of `modules`, each once: shared layers (CoGAN, UNIT) must step once."""
    seen: dict[int, nn.Parameter] = {}
    for module in modules:
        for parameter in module.parameters():
            seen.setdefault(id(parameter), parameter)
    return list(seen.values())


def adam(parameters: list[nn.Parameter], lr: float, betas: tuple[float, float], weight_decay: float = 0.0) -> torch.optim.Adam:
    # see Note [Optimizers as scripts build them]
    return torch.optim.Adam(parameters, lr=lr, betas=betas, weight_decay=weight_decay)


def rmsprop(parameters: list[nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.RMSprop:
    # see Note [Optimizers as scripts build them]
    return torch.optim.RMSprop(parameters, lr=lr, weight_decay=weight_decay)


def set_requires_grad(modules: Iterable[nn.Module], flag: bool) -> None:
    """Freeze (or unfreeze) whole networks, as the reference scripts do around the G step."""
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(flag)


def pick(values: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Each sample's row of its label (a domain, a pseudo-domain): (N, K, ...) -> (N, ...)."""
    return values[torch.arange(values.shape[0], device=values.device), label]


def picked_with_r1(D: nn.Module, x: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pick(D(x), label) from one forward of D on x as a leaf, and R1 on it: the batch mean of each
    sample's squared gradient norm, differentiable again (StarGAN v2's and TUNIT's real term)."""
    leaf = x.detach().requires_grad_(True)
    real = pick(D(leaf), label)
    (slope,) = torch.autograd.grad(real.sum(), leaf, create_graph=True)
    return real, slope.pow(2).flatten(1).sum(1).mean()


def real_loss(logits: torch.Tensor) -> torch.Tensor:
    """-E[log sigmoid(logits)]: BCE against 'real', stable for any logit."""
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def fake_loss(logits: torch.Tensor) -> torch.Tensor:
    """-E[log(1 - sigmoid(logits))]: BCE against 'fake', stable for any logit."""
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(N(mu, exp(logvar)) || N(0, I)), summed over the latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)


class HistoryPool:
    """A history of up to `capacity` generated images (Shrivastava et al., arXiv 1612.07828; CycleGAN).

    Until the pool is full every image passes through and is stored. After that each image is,
    with probability one half, swapped for a stored one (which it replaces) and otherwise passed
    through. The coin flips and slots are drawn on the CPU from torch's global RNG, so a CUDA
    run does not wait on the device for them.
    """

    def __init__(self, capacity: int = 50):
        self.capacity = capacity
        self.stored: torch.Tensor | None = None
        self.count = 0

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        images = images.detach()
        if self.capacity == 0:
            return images
        if self.stored is None:
            self.stored = images.new_empty((self.capacity, *images.shape[1:]))
        out = images.clone()
        batch = images.shape[0]
        if self.count + batch > self.capacity:  # draws only once the pool fills
            swaps = torch.rand(batch).lt(0.5).tolist()
            slots = torch.randint(self.capacity, (batch,)).tolist()
        for index in range(batch):
            if self.count < self.capacity:
                self.stored[self.count] = images[index]
                self.count += 1
            elif swaps[index]:
                out[index] = self.stored[slots[index]]
                self.stored[slots[index]] = images[index]
        return out


def floats(values: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """One device-to-host copy for all the reported numbers."""
    numbers = torch.stack([value.detach().float() for value in values.values()]).tolist()
    return dict(zip(values, numbers))


def to_device(inputs: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {name: value.to(device, non_blocking=True) for name, value in inputs.items()}


def prepare(nets: Mapping[str, nn.Module], device: torch.device) -> dict[str, nn.Module]:
    """The networks on `device`, in training mode (moving a shared part twice is harmless)."""
    return {name: net.to(device).train() for name, net in nets.items()}
