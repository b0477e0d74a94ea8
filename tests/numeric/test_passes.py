"""Every pass of the pipeline, on every shipped spec, by one helper (`check_pass`):

- the structural change the pass is for (or none, for the checks);
- `changed` is True exactly when the graph differs;
- idempotence: a second run changes nothing;
- numerical equality: each player's loss (and each term) evaluates to the same value before and
  after, by the interpreter on float64 networks, a probability network read as the sigmoid of
  its logits where the sigmoids are not yet written into the IR.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lossgraph
from tests.conftest import TRAINABLE_SPECS
from lossgraph.compiler.graph import Graph
from lossgraph.compiler.interpret import interpret
from lossgraph.compiler.ops import Ops
from lossgraph.compiler.passes.lower import lower
from lossgraph.compiler.passes.pipeline import passes

ROOT = Path(__file__).resolve().parents[2]
SPECS = [path.stem for path in TRAINABLE_SPECS]  # conftest.py: the authors' recipes are too big to evaluate


class AsProbability(torch.nn.Module):
    """A probability network as a formula reads it before `insert_sigmoids`: sigmoid of its logits."""

    def __init__(self, net, heads):
        super().__init__()
        self.net = net
        self.heads = heads  # per head: read as a probability?

    def forward(self, *args):
        out = self.net(*args)
        if isinstance(out, tuple):
            return tuple(torch.sigmoid(o) if p else o for o, p in zip(out, self.heads))
        return torch.sigmoid(out)


def values(graph: Graph, nets, inputs) -> dict[str, torch.Tensor]:
    """Every player's loss and term, interpreted (the gradient penalty's mixes from seed 0)."""
    read = dict(nets)
    if not graph.sigmoids_explicit:
        for name, network in graph.networks.items():
            if network.heads and "probability" in dict(network.heads).values():
                read[name] = AsProbability(nets[name], [kind == "probability" for _, kind in network.heads])
            elif not network.heads and network.output == "probability":
                read[name] = AsProbability(nets[name], [])
    out = {}
    for player in graph.players:
        torch.manual_seed(0)
        found = interpret([player.loss, *(term.value for term in player.terms)], read, inputs)
        out[player.name] = found[player.loss]
        out.update({f"{player.name}/{term.name}": found[term.value] for term in player.terms})
    return out


def check_pass(step, graph: Graph, nets, inputs, expect=None) -> Graph:
    """The four properties of a pass (module docstring); returns the graph after it."""
    result = step(graph)
    assert result.changed == (result.graph != graph), "changed says otherwise than the graph"
    if expect is not None:
        expect(graph, result.graph)
    again = step(result.graph)
    assert not again.changed and again.graph == result.graph, "a second run changed the graph"
    before, after = values(graph, nets, inputs), values(result.graph, nets, inputs)
    assert before.keys() == after.keys()
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=1e-9, atol=1e-9, msg=key)
    return result.graph


def count(graph: Graph, op: Ops) -> int:
    return sum(1 for node in graph.nodes() if node.op is op)


def sigmoids_written(before: Graph, after: Graph) -> None:
    probability_calls = sum(
        1 for node in before.nodes()
        if (node.op in (Ops.APPLY, Ops.FROZEN) and not before.networks[node.arg].heads and before.networks[node.arg].output == "probability")
        or (node.op is Ops.HEAD and before.networks[node.args[0].arg].reads_probability(node.arg[0])))
    assert count(after, Ops.SIGMOID) == count(before, Ops.SIGMOID) + probability_calls
    assert after.sigmoids_explicit


def logs_of_sigmoids_gone(before: Graph, after: Graph) -> None:
    assert not any(node.op is Ops.LOG and node.args[0].op is Ops.SIGMOID for node in after.nodes())
    assert not any(node.op is Ops.MEAN and node.args[0].op in (Ops.L1, Ops.L2SQ) for node in after.nodes())


def unchanged(before: Graph, after: Graph) -> None:
    assert after is before


EXPECTED = {"check_domains": unchanged, "insert_sigmoids": sigmoids_written, "stabilize": logs_of_sigmoids_gone,
            "check_updates": unchanged}


@pytest.mark.parametrize("name", SPECS)
def test_every_pass_on_every_spec(name):
    program = lossgraph.compile(name)
    nets = {key: net.double() for key, net in program.build_networks(seed=0).items()}
    inputs = {key: (value.double() if value.is_floating_point() else value)
              for key, value in program.example_inputs(batch_size=2, seed=0).items()}
    # scheduled term weights are inputs of the step too, all of them on at iteration 1000 (past
    # tunit's warm-up of 700, stargan-v2's ds still decaying from 2)
    inputs = program.weigh(inputs, 1000)
    graph = lower(program.spec)
    changed = set()
    for pass_name, step in passes():
        after = check_pass(step, graph, nets, inputs, EXPECTED[pass_name])
        if after != graph:
            changed.add(pass_name)
        graph = after
    assert graph == program.graph  # the pipeline as Program runs it
    assert "stabilize" in changed


def test_the_helper_catches_a_pass_that_changes_a_loss():
    """A pass that is not an identity fails numerical equality: the helper can fail."""
    from dataclasses import replace

    from lossgraph.compiler.expr import const
    from lossgraph.compiler.passes.result import PassResult

    program = lossgraph.compile("cyclegan")
    nets = {key: net.double() for key, net in program.build_networks(seed=0).items()}
    inputs = {key: value.double() for key, value in program.example_inputs(batch_size=2, seed=0).items()}

    def doubling(graph: Graph) -> PassResult:  # (D_Y(y) - 1)^2 becomes (D_Y(y) - 2)^2
        if graph.name.endswith("!"):
            return PassResult(graph, False)
        doubled = graph.map_exprs(lambda node: const(2.0) if node.op is Ops.CONST and node.arg == 1.0 else None)
        return PassResult(replace(doubled, name=graph.name + "!"), True)

    with pytest.raises(AssertionError):
        check_pass(doubling, program.graph, nets, inputs)
