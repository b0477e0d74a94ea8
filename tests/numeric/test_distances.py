"""FID, KID and diversity on features (lossgraph/train/metrics/distances.py), against closed forms
and against the formulas written out independently here (scipy's matrix square root, the MMD²
double sums)."""

from __future__ import annotations

import math

import numpy
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lossgraph.language.errors import LossgraphError
from lossgraph.train.metrics.distances import Diversity, frechet_distance, kernel_distance, kid_subsets


def features(count: int, size: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, size, generator=generator, dtype=torch.float64) * scale


def fid_by_hand(real: numpy.ndarray, generated: numpy.ndarray) -> float:
    mean_real, mean_generated = real.mean(0), generated.mean(0)
    cov_real = numpy.atleast_2d(numpy.cov(real, rowvar=False))
    cov_generated = numpy.atleast_2d(numpy.cov(generated, rowvar=False))
    root = scipy.linalg.sqrtm(cov_real @ cov_generated).real
    return float(((mean_real - mean_generated) ** 2).sum() + numpy.trace(cov_real + cov_generated - 2 * root))


def mmd_by_hand(real: numpy.ndarray, generated: numpy.ndarray) -> float:
    """The unbiased MMD² with k(a, b) = (a·b / d + 1)³ (Bińkowski et al., eq. for KID)."""
    count, size = real.shape

    def kernel(a, b):
        return (a @ b / size + 1.0) ** 3

    within_real = sum(kernel(real[i], real[j]) for i in range(count) for j in range(count) if i != j)
    within_generated = sum(kernel(generated[i], generated[j]) for i in range(count) for j in range(count) if i != j)
    across = sum(kernel(real[i], generated[j]) for i in range(count) for j in range(count))
    return within_real / (count * (count - 1)) + within_generated / (count * (count - 1)) - 2 * across / count ** 2


def test_identical_sets_have_fid_zero():
    real = features(200, 8, seed=0)
    assert frechet_distance(real, real.clone()) == pytest.approx(0.0, abs=1e-8)


@settings(max_examples=25, deadline=None)
@given(count=st.integers(3, 60), size=st.integers(1, 6), seed=st.integers(0, 10_000),
       shift=st.lists(st.floats(-5, 5), min_size=6, max_size=6))
def test_a_shifted_copy_has_fid_the_squared_shift(count, size, seed, shift):
    # the same covariance exactly, means apart by `shift`: FID = |shift|²
    real = features(count, size, seed)
    delta = torch.tensor(shift[:size], dtype=torch.float64)
    assert frechet_distance(real, real + delta) == pytest.approx(float(delta.square().sum()), rel=1e-6, abs=1e-7)


def test_gaussians_shifted_by_a_known_mean_have_the_known_fid():
    # samples of N(0, I) and N(mu, I): FID -> |mu|² (sampling error of order size² / count)
    mean = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    real = features(40_000, 4, seed=1)
    generated = features(40_000, 4, seed=2) + mean
    assert frechet_distance(real, generated) == pytest.approx(float(mean.square().sum()), abs=0.02)


@settings(max_examples=15, deadline=None)
@given(count=st.integers(8, 40), size=st.integers(1, 5), seed=st.integers(0, 10_000), scale=st.floats(0.2, 3))
def test_fid_matches_the_formula_with_scipys_matrix_square_root(count, size, seed, scale):
    real = features(count, size, seed)
    generated = features(count + 3, size, seed + 1, scale) + 0.3
    expected = fid_by_hand(real.numpy(), generated.numpy())
    assert frechet_distance(real, generated) == pytest.approx(expected, rel=1e-6, abs=1e-8)


@settings(max_examples=10, deadline=None)
@given(count=st.integers(2, 9), size=st.integers(1, 4), seed=st.integers(0, 10_000), shift=st.floats(-2, 2))
def test_kid_of_small_sets_is_the_unbiased_mmd_of_the_whole_sets(count, size, seed, shift):
    # fewer than 1000 samples: one subset, all of each set, so the MMD² of the sets themselves
    real = features(count, size, seed)
    generated = features(count, size, seed + 1) + shift
    expected = mmd_by_hand(real.numpy(), generated.numpy())
    assert kernel_distance(real, generated) == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_kid_of_identical_sets_is_near_zero_and_far_below_a_shifted_set():
    # the unbiased estimate of a set against itself is 2(S - mT) / (m²(m - 1)) for kernel sum S and
    # trace T: at most 2 mean k(x, x) / (m - 1) below zero, vanishing as the set grows
    real = features(300, 16, seed=3)
    diagonal = ((real * real).sum(1) / 16 + 1) ** 3
    same = kernel_distance(real, real.clone())
    shifted = kernel_distance(real, real + 1.0)
    assert -2 * float(diagonal.mean()) / 299 <= same <= 0
    assert shifted > 100 * abs(same)


def test_kid_subset_size_adapts_to_small_sets():
    assert kid_subsets(2000, 3000) == (100, 1000)  # Bińkowski et al.'s 100 subsets of 1000
    assert kid_subsets(64, 64) == (1, 64)  # every subset would be the whole set
    assert kid_subsets(50, 80) == (100, 50)
    real, generated = features(5, 3, seed=4), features(7, 3, seed=5)
    torch.manual_seed(0)
    assert math.isfinite(kernel_distance(real, generated))  # no error for sets below 1000


def test_fewer_than_two_samples_is_an_error_that_says_what_to_give():
    with pytest.raises(LossgraphError, match="at least 2 samples.*test_size"):
        frechet_distance(features(1, 3, seed=0), features(5, 3, seed=1))
    with pytest.raises(LossgraphError, match="at least 2 samples"):
        kernel_distance(features(4, 3, seed=0), features(1, 3, seed=1))


def test_diversity_is_the_mean_squared_distance_of_unit_features_over_pairs():
    base = features(6, 5, seed=6)
    same = Diversity()
    same.add([base, base * 3.0])  # one direction, any length: no diversity
    assert same.value() == pytest.approx(0.0, abs=1e-12)
    opposite = Diversity()
    opposite.add([base, -base])
    assert opposite.value() == pytest.approx(4.0)
    unit = torch.eye(3, dtype=torch.float64)
    three = Diversity()
    three.add([unit[[0]], unit[[1]], unit[[2]]])  # pairwise orthogonal: each pair 2
    assert three.value() == pytest.approx(2.0)


@settings(max_examples=20, deadline=None)
@given(draws=st.integers(2, 5), count=st.integers(1, 6), seed=st.integers(0, 1000))
def test_diversity_over_batches_matches_the_mean_over_every_input_and_pair(draws, count, seed):
    outputs = [features(count * 2, 4, seed + index) for index in range(draws)]
    whole = Diversity()
    whole.add(outputs)
    split = Diversity()
    split.add([output[:count] for output in outputs])
    split.add([output[count:] for output in outputs])
    unit = [(output / output.norm(dim=1, keepdim=True)).numpy() for output in outputs]
    expected = numpy.mean([((unit[i][n] - unit[j][n]) ** 2).sum() for n in range(count * 2)
                           for i in range(draws) for j in range(i + 1, draws)])
    assert whole.value() == pytest.approx(expected) and split.value() == pytest.approx(expected)
