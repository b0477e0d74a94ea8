"""`cluster_accuracy(clusters, classes)` in `evaluate:`: the best one-to-one matching of clusters to
classes (the Hungarian method, against every matching tried here by brute force), over the whole
held-out set of a run, with no feature network; its mistakes located before training."""

from __future__ import annotations

import csv
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lossgraph
from lossgraph.data import open_dataset
from lossgraph.language.errors import LossgraphError, SpecError
from lossgraph.train.checkpoint import latest_checkpoint, load_checkpoint
from lossgraph.train.metrics.distances import best_matching, cluster_accuracy
from lossgraph.train.run import RunOptions, train


def by_brute_force(clusters: list[int], classes: list[int]) -> float:
    """The largest count of samples whose cluster maps to their class, over every one-to-one map."""
    found = sorted(set(clusters))
    labels = sorted(set(classes))
    best = 0
    for chosen in itertools.permutations(labels + [None] * len(found), len(found)):
        mapping = dict(zip(found, chosen))
        best = max(best, sum(mapping[c] == k for c, k in zip(clusters, classes)))
    return best / len(clusters)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=30))
def test_cluster_accuracy_is_the_best_one_to_one_matching(cluster_count, class_count, pairs):
    clusters = [c % cluster_count for c, _ in pairs]
    classes = [k % class_count for _, k in pairs]
    got = cluster_accuracy(torch.tensor(clusters), torch.tensor(classes))
    assert got == pytest.approx(by_brute_force(clusters, classes))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 7), st.integers(1, 7), st.integers(0, 2**16))
def test_best_matching_uses_each_column_once_and_is_optimal(rows, columns, seed):
    generator = torch.Generator().manual_seed(seed)
    table = torch.randint(0, 20, (rows, columns), generator=generator).tolist()
    matched = best_matching(table)
    used = [column for column in matched if column >= 0]
    assert len(used) == len(set(used)) == min(rows, columns)
    best = max(sum(table[r][c] for r, c in zip(range(rows), chosen) if c is not None)
               for chosen in itertools.permutations(list(range(columns)) + [None] * rows, rows))
    assert sum(table[r][c] for r, c in enumerate(matched) if c >= 0) == best


def test_known_values():
    classes = torch.tensor([0, 0, 1, 1, 2, 2])
    assert cluster_accuracy(torch.tensor([2, 2, 0, 0, 1, 1]), classes) == 1.0  # renamed clusters
    assert cluster_accuracy(torch.tensor([0, 0, 0, 0, 0, 0]), classes) == pytest.approx(2 / 6)  # one cluster
    assert cluster_accuracy(torch.tensor([0, 1, 2, 3, 4, 5]), classes) == pytest.approx(3 / 6)  # a cluster each
    with pytest.raises(LossgraphError, match="one cluster with one class per sample"):
        cluster_accuracy(torch.tensor([0, 1]), torch.tensor([0, 1, 2]))


SPEC = """\
name: clustered
data: {x: image, c: label(3)}
dataset: {builtin: shapes, styles: {x: 2}, size: 32, test_size: 12, labels: {c: shape(x)}}
networks:
  C: {arch: classifier, classes: 3, width: 4, depth: 2, norm: none}
players:
  C: {networks: [C], minimize: {fit: "E[ce(C(x), c)]"}}
train: {steps: 4, batch_size: 4, image_size: 8, log_every: 2, eval_every: 2, checkpoint_every: 2, sample_every: 100}
evaluate:
  clusters: cluster_accuracy(argmax(C(x)), c)
  accuracy: E[argmax(C(x)) == c]
"""


def compile_text(text: str):
    return lossgraph.compile(lossgraph.loads(text, "clustered.yaml"))


def test_a_run_writes_it_over_the_whole_held_out_set_without_a_feature_network(tmp_path):
    program = compile_text(SPEC)
    assert program.features is None
    dataset = open_dataset(program.spec.dataset, program.spec.kinds, 8, seed=0)
    train(program, dataset, RunOptions(out_dir=tmp_path, device="cpu", progress=False))
    rows = list(csv.DictReader(open(tmp_path / "eval.csv")))
    assert [row["step"] for row in rows] == ["2", "4"]
    nets = program.build_networks(seed=0)
    load_checkpoint(latest_checkpoint(tmp_path / "checkpoints"), nets)
    held_out = dataset.held_out(dataset.held_out_size)
    assert len(held_out["c"]) == 12
    with torch.no_grad():
        nets["C"].eval()
        clusters = nets["C"](held_out["x"]).argmax(1)
    assert float(rows[-1]["clusters"]) == pytest.approx(by_brute_force(clusters.tolist(), held_out["c"].tolist()))
    # never below plain accuracy, which is the identity matching
    assert float(rows[-1]["clusters"]) >= float(rows[-1]["accuracy"]) - 1e-6


@pytest.mark.parametrize("metric, message", [
    ("cluster_accuracy(C(x), c)", "cluster_accuracy's clusters are labels, one integer per sample, but this is of shape (2, 3)"),
    ("cluster_accuracy(argmax(C(x)), x)", "cluster_accuracy's classes are labels, one integer per sample, but this is of shape (2, 3, 8, 8)"),
    ("cluster_accuracy(argmax(C(x)))", "cluster_accuracy takes 2 arguments, got 1"),
])
def test_mistakes_are_located_before_training(metric, message):
    with pytest.raises(SpecError) as error:
        compile_text(SPEC.replace("cluster_accuracy(argmax(C(x)), c)", metric))
    assert message in str(error.value)
    assert "clustered.yaml:10:" in str(error.value)
