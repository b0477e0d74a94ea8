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


def info_nce(query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor, tau) -> torch.Tensor:
    """InfoNCE per sample: the cross-entropy of [q·k, q·Q_1, ..., q·Q_M] / tau against class 0
    (MoCo's loss, as TUNIT's code takes it: nothing normalised). The key and the negatives are
    constants: no gradient reaches them. Values of more than one dimension per sample are flattened."""
    query, key = query.flatten(1), key.detach().flatten(1)
    negatives = negatives.detach().flatten(1)
    logits = torch.cat([(query * key).sum(1, keepdim=True), query @ negatives.T], dim=1) / tau
    return torch.nn.functional.cross_entropy(logits, logits.new_zeros(len(logits), dtype=torch.long), reduction="none")


def mutual_information(p: torch.Tensor, p2: torch.Tensor, lamb: float = 1.0) -> torch.Tensor:
    """IIC's mutual information of a batch of paired class probabilities (Ji et al., arXiv
    1807.06653, as TUNIT's code computes it): the joint J = sum_n p_n p2_n^T made symmetric and
    normalised, its marginals, each entry clamped below at 1e-10; one scalar for the batch.
    `lamb` weighs the marginals' log terms (IIC's code's `lamb`): above 1 it adds (lamb - 1) times
    their entropy, favouring clusters of equal size."""
    joint = p.unsqueeze(2) * p2.unsqueeze(1)
    joint = joint.sum(0)
    joint = (joint + joint.T) / 2
    joint = joint / joint.sum()
    rows = joint.sum(1, keepdim=True).clamp_min(1e-10)
    columns = joint.sum(0, keepdim=True).clamp_min(1e-10)
    joint = joint.clamp_min(1e-10)
    return (joint * (joint.log() - lamb * rows.log() - lamb * columns.log())).sum()
