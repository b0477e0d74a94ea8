"""The released pix2pix/CycleGAN code's training parts besides the networks, written out.

From github.com/junyanz/pytorch-CycleGAN-and-pix2pix (models/networks.py, util/image_pool.py,
train.py; read for facts, nothing taken from it):

- `gan_loss(prediction, real, mode)`: its `GANLoss`, the prediction against a target of 1 (real)
  or 0 (fake) filled to its shape: mean squared error for `lsgan`, binary cross-entropy with
  logits for `vanilla`;
- `HistoryPool`: its image pool of generated images, drawing from Python's `random` module as it
  does (so a test seeds `random`, not torch, to repeat it);
- `linear_policy`: its `linear` learning-rate rule for a `LambdaLR`, and `epoch_rates`, the rate
  each epoch trains at when the scheduler is stepped at the start of every epoch (train.py since
  2020) or at the end (before).

Nothing here imports lossgraph.
"""

from __future__ import annotations

import random
from typing import Callable

import torch
import torch.nn.functional as F


def gan_loss(prediction: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    target = torch.full_like(prediction, 1.0 if real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(prediction, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(prediction, target)
    raise ValueError(f"gan mode must be lsgan or vanilla, got {mode!r}")


class HistoryPool:
    """Up to `size` earlier fakes. An image passes through (and is kept) until the pool is full;
    after that, with probability one half it is swapped for a kept one, which it replaces."""

    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        returned = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                returned.append(image)
            elif random.uniform(0, 1) > 0.5:
                slot = random.randint(0, self.size - 1)
                returned.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                returned.append(image)
        return torch.cat(returned, 0)


def linear_policy(n_epochs: int, n_epochs_decay: int, epoch_count: int = 1) -> Callable[[int], float]:
    """The `LambdaLR` factor after `stepped` scheduler steps: 1 for `n_epochs`, then down by
    1 / (n_epochs_decay + 1) per step."""

    def rule(stepped: int) -> float:
        return 1.0 - max(0, stepped + epoch_count - n_epochs) / float(n_epochs_decay + 1)

    return rule


def epoch_rates(lr: float, n_epochs: int, n_epochs_decay: int, stepped_at: str) -> list[float]:
    """The learning rate of each epoch 1 .. n_epochs + n_epochs_decay, as a torch `LambdaLR` with
    `linear_policy` gives it when train.py steps it at the "start" or the "end" of every epoch."""
    parameter = torch.nn.Parameter(torch.zeros(()))
    optimizer = torch.optim.SGD([parameter], lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=linear_policy(n_epochs, n_epochs_decay))
    rates = []
    for _ in range(n_epochs + n_epochs_decay):
        if stepped_at == "start":
            scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if stepped_at == "end":
            scheduler.step()
    return rates
