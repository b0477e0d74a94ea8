"""The distances between sets of features: FID and KID through torchmetrics, and diversity.

Each takes features already computed (features.py), so one feature pass serves every metric that
compares the same images, and real features are computed once a run where they cannot change.
torchmetrics' `FrechetInceptionDistance` and `KernelInceptionDistance` accept a feature network
of one's own; they are given `Given`, which passes the features through, so what they compute is
exactly their formula on these features:

    fid        ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½), means and covariances (unbiased) of
               each set, in float64
    kid        the unbiased estimate of MMD² under the kernel k(a, b) = (a·b / d + 1)³, averaged
               over `subsets` random subsets of `subset_size` of each set. Bińkowski et al. take
               100 subsets of 1000; a smaller set takes subsets of all its samples, which are then
               all the same set, so one is computed
    cluster_accuracy  the fraction of samples whose cluster is their class when clusters are matched
               one-to-one to classes so as to make it largest (the Hungarian method on the
               cluster-by-class counts; a cluster left without a class counts as wrong), as
               unsupervised clustering reports it (IIC, TUNIT)
    diversity  for K outputs of each input, the mean over inputs and over the K(K−1)/2 pairs of
               ‖f̂_i − f̂_j‖², f̂ the features scaled to unit length: LPIPS's distance on one layer,
               unweighted (0 when the outputs agree, at most 4)
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import nn

from lossgraph.language.errors import LossgraphError

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


class Given(nn.Module):
    """A 'feature network' for torchmetrics that returns what it is given: the features themselves."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.double()


def _torchmetrics_image():
    try:
        from torchmetrics.image import fid, kid
    except ImportError:
        raise LossgraphError("fid and kid are computed with torchmetrics, which is not installed: "
                             "pip install 'lossgraph[metrics]' (or pip install torchmetrics)") from None
    return fid, kid


def _check(real: torch.Tensor, generated: torch.Tensor, what: str) -> None:
    if real.dim() != 2 or generated.dim() != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(f"{what} compares two sets of features (N, d) of one d, got {tuple(real.shape)} and {tuple(generated.shape)}")
    if min(real.shape[0], generated.shape[0]) < 2:
        raise LossgraphError(f"{what} needs at least 2 samples in each set, got {real.shape[0]} real and "
                             f"{generated.shape[0]} generated (dataset.test_size, or more held-out images)")


def frechet_distance(real: torch.Tensor, generated: torch.Tensor) -> float:
    """FID of two sets of features (N, d), as torchmetrics computes it."""
    _check(real, generated, "fid")
    fid, _ = _torchmetrics_image()
    metric = fid.FrechetInceptionDistance(feature=Given(real.shape[1]), sync_on_compute=False).to(real.device)
    metric.update(real, real=True)
    metric.update(generated, real=False)
    return float(metric.compute())


def kid_subsets(real_count: int, generated_count: int) -> tuple[int, int]:
    """(subsets, subset size) for sets of these sizes: 100 subsets of 1000, or one subset of the
    smaller set's size when a set has fewer than 1000 (all subsets would be the same)."""
    size = min(KID_SUBSET_SIZE, real_count, generated_count)
    alike = size == real_count == generated_count
    return (1 if alike else KID_SUBSETS), size


def kernel_distance(real: torch.Tensor, generated: torch.Tensor) -> float:
    """KID of two sets of features (N, d): the mean over subsets, as torchmetrics computes it
    (subsets drawn from torch's RNG: a run draws them under the evaluation's own seed)."""
    _check(real, generated, "kid")
    _, kid = _torchmetrics_image()
    subsets, size = kid_subsets(real.shape[0], generated.shape[0])
    with warnings.catch_warnings():  # "will save all extracted features in buffer": that is the point here
        warnings.simplefilter("ignore", UserWarning)
        metric = kid.KernelInceptionDistance(feature=Given(real.shape[1]), subsets=subsets, subset_size=size,
                                             sync_on_compute=False).to(real.device)
    metric.update(real, real=True)
    metric.update(generated, real=False)
    mean, _ = metric.compute()
    return float(mean)


class Diversity:
    """The running sum of pairwise distances behind `diversity`, over batches of inputs."""

    def __init__(self):
        self.total = 0.0
        self.pairs = 0

    def add(self, draws: Sequence[torch.Tensor]) -> None:
        """K >= 2 draws of features for the same inputs, each (N, d)."""
        if len(draws) < 2:
            raise ValueError("diversity compares at least 2 draws")
        unit = [features / features.norm(dim=1, keepdim=True).clamp_min(1e-12) for features in draws]
        for first in range(len(unit)):
            for second in range(first + 1, len(unit)):
                self.total += float((unit[first] - unit[second]).square().sum())
                self.pairs += unit[first].shape[0]

    def value(self) -> float:
        return self.total / self.pairs if self.pairs else float("nan")


def best_matching(counts: list[list[float]]) -> list[int]:
    """For a rows x columns table of counts, the column matched to each row (-1 for none) that makes
    the matched counts' sum largest, each column used once: the Hungarian method (Kuhn-Munkres with
    potentials), O(n^3) on the table padded to a square n x n."""
    rows, columns = len(counts), len(counts[0]) if counts else 0
    n = max(rows, columns)
    top = max((value for row in counts for value in row), default=0)
    cost = [[top - (counts[i][j] if i < rows and j < columns else 0) for j in range(n)] for i in range(n)]
    u, v = [0.0] * (n + 1), [0.0] * (n + 1)
    owner, way = [0] * (n + 1), [0] * (n + 1)  # owner[j]: the row (1-based) column j is matched to
    for i in range(1, n + 1):
        owner[0], column = i, 0
        least, used = [float("inf")] * (n + 1), [False] * (n + 1)
        while owner[column]:
            used[column] = True
            row, delta, nearest = owner[column], float("inf"), 0
            for j in range(1, n + 1):
                if not used[j]:
                    reduced = cost[row - 1][j - 1] - u[row] - v[j]
                    if reduced < least[j]:
                        least[j], way[j] = reduced, column
                    if least[j] < delta:
                        delta, nearest = least[j], j
            for j in range(n + 1):
                if used[j]:
                    u[owner[j]] += delta
                    v[j] -= delta
                else:
                    least[j] -= delta
            column = nearest
        while column:
            previous = way[column]
            owner[column] = owner[previous]
            column = previous
    matched = [-1] * rows
    for j in range(1, n + 1):
        if owner[j] and owner[j] <= rows and j <= columns:
            matched[owner[j] - 1] = j - 1
    return matched


def cluster_accuracy(clusters: torch.Tensor, classes: torch.Tensor) -> float:
    """The fraction of samples whose cluster, matched one-to-one to a class (`best_matching`), is
    their class. Labels are integers >= 0 of one length."""
    clusters, classes = clusters.long().cpu(), classes.long().cpu()
    if clusters.shape != classes.shape or clusters.dim() != 1:
        raise LossgraphError(f"cluster_accuracy pairs one cluster with one class per sample; got shapes "
                             f"{tuple(clusters.shape)} and {tuple(classes.shape)}")
    if len(clusters) == 0:
        return float("nan")
    if int(clusters.min()) < 0 or int(classes.min()) < 0:
        raise LossgraphError("cluster_accuracy takes labels 0, 1, 2, ...; got a negative one")
    counts = torch.zeros(int(clusters.max()) + 1, int(classes.max()) + 1, dtype=torch.long)
    counts.index_put_((clusters, classes), torch.ones_like(clusters), accumulate=True)
    table = counts.tolist()
    matched = best_matching(table)
    return sum(table[row][column] for row, column in enumerate(matched) if column >= 0) / len(clusters)
