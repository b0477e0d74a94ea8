"""Helpers the generated code calls where one expression cannot say it: kept few and small."""

from __future__ import annotations

import torch


def interpolate(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """a real + (1 - a) fake, a ~ U(0, 1) drawn per sample: a random point between each pair (WGAN-GP)."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    if real.device.type == "meta":  # the shape check: no numbers, and no draw from the generator
        return torch.empty(shape, device="meta") * real + fake
    # drawn from the CPU generator, as every other draw: a CUDA run mixes what a CPU run mixes
    alpha = torch.rand(shape, dtype=real.dtype).to(real.device, non_blocking=True)
    return alpha * real + (1 - alpha) * fake


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
