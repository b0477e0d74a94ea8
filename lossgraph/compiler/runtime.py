"""Helpers the generated code calls where one expression cannot say it: kept few and small.

`gradient_penalty` is the WGAN-GP penalty (Gulrajani et al., arXiv 1704.00028): it needs a
backward pass inside the forward (`create_graph=True`), so the critic's step differentiates
through it a second time (double backward).
"""

from __future__ import annotations

import torch


@torch.enable_grad()  # the penalty is a gradient: it needs autograd even in a no_grad block
def gradient_penalty(network, real: torch.Tensor, fake: torch.Tensor, head: int | None = None) -> torch.Tensor:
    """E[(||grad_mix network(mix)||_2 - 1)^2] with mix = a real + (1 - a) fake, a ~ U(0, 1) per sample."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    # drawn from the CPU generator, as every other draw: a CUDA run mixes what a CPU run mixes
    alpha = torch.rand(shape, dtype=real.dtype).to(real.device, non_blocking=True)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = network(mixed)
    if head is not None:
        out = out[head]
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def batched(network, first: tuple, second: tuple):
    """`network(*first), network(*second)` as one call on the two batches concatenated (phases.py:
    a network that treats each sample alone, on inputs of the same per-sample shapes)."""
    size = first[0].shape[0]
    out = network(*(torch.cat([a, b]) for a, b in zip(first, second)))
    if isinstance(out, tuple):  # a network with heads
        return tuple(head[:size] for head in out), tuple(head[size:] for head in out)
    return out[:size], out[size:]


def frozen(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The network's parameters, detached: `functional_call` with them passes gradient to the
    inputs only (a term that must not update this network)."""
    return {name: parameter.detach() for name, parameter in network.named_parameters()}
