"""A step that reads another network as the iteration's earlier steps left it (`fresh:`): TUNIT's
D and G steps take their pseudo-labels from C after C's own step. Without `fresh:` the phase plan
keeps a call computed before that network's update for a later step whose gradient does not pass
through it (phases.py); with it the step computes the call again, after the update, and a call
computed after the last update is still kept. The generated iteration and the independent
evaluator agree, with or without batch norm; mistakes are located.
"""

import copy

import pytest
import torch

import lossgraph
from tests.conftest import count_forwards
from tests.numeric.test_phases import oracle_losses

SPEC = """
name: fresh
data: {x: image, y: image}
networks:
  T: {arch: unet, width: 4, depth: 1, norm: none}
  D: {arch: patchgan, width: 4, layers: 1, norm: none}
players:
  T:
    networks: [T]
    minimize: {rec: "E[l1(T(x) - y)]"}
  D:
    networks: [D]
    fresh: [T]
    minimize: {adv: "E[D(T(x))] - E[D(y)]"}
schedule: [T, D]
optim:
  T: {sgd: {lr: 0.5}}
  D: {sgd: {lr: 0.1}}
train: {image_size: 8}
"""


def compile_text(text=SPEC, overrides=()):
    return lossgraph.compile(lossgraph.loads(text, "fresh.yaml", list(overrides)))


def d_loss_at(program, nets, inputs, T, D):
    """`losses()["D"]` with T's and D's weights taken from the given modules."""
    weights = {**nets, "T": T, "D": D}
    with torch.no_grad():
        return float(program.losses(weights, inputs)["D"])


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_a_fresh_network_is_read_after_the_earlier_steps_update(norm):
    """D's loss is D's objective with T as T's step left it; without fresh:, with T as the
    iteration found it (the call kept from T's step): two different numbers."""
    results = {}
    for fresh in (True, False):
        overrides = [f"networks.T.norm={norm}"] + ([] if fresh else ["players.D.fresh=[]"])
        program = compile_text(overrides=overrides)
        nets = program.build_networks(seed=0)
        start = copy.deepcopy(nets)
        inputs = program.example_inputs(batch_size=3, seed=1)
        stats = program.trainer(nets).step(inputs)
        T = nets["T"] if fresh else start["T"]  # T after its update, or before it
        results[fresh] = stats["D"]
        assert stats["D"] == pytest.approx(d_loss_at(program, nets, inputs, T, start["D"]), rel=1e-5), fresh
    assert results[True] != pytest.approx(results[False], rel=0.1), results


def test_a_call_computed_after_the_last_update_is_kept():
    """D and a second step of D (`step_of`) both read T fresh: T(x) is computed again once, in
    D's step, and D_ref reads that one, since T did not change in between."""
    text = SPEC.replace("schedule: [T, D]", """  D_ref:
    step_of: D
    fresh: [T]
    minimize: {adv: "E[D(T(x))] - E[D(y)] + E[D(x)^2]"}
schedule: [T, D, D_ref]""")
    program = compile_text(text)
    plan = lossgraph.compile(lossgraph.loads(text, "fresh.yaml")).phases
    calls = [{node.arg for node in phase.computed if node.op.name == "APPLY"} for phase in plan]
    assert "T" in calls[1] and "T" not in calls[2]
    nets = program.build_networks(seed=0)
    counts = count_forwards(nets)
    program.trainer(nets).step(program.example_inputs(batch_size=2, seed=1))
    assert counts["T"] == 2  # T's step, then once more after its update


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_the_iteration_is_the_plans_loss_by_the_independent_evaluator(norm):
    program = compile_text(overrides=[f"networks.T.norm={norm}"])
    stats, expected = oracle_losses(program, program.build_networks(seed=1), program.example_inputs(batch_size=3, seed=3))
    for player, value in expected.items():
        assert stats[player] == pytest.approx(value, rel=1e-5, abs=1e-6), player


def test_the_plan_says_which_calls_are_computed_again():
    program = compile_text()
    from lossgraph.compiler.phases import describe_plan

    text = describe_plan(program.phases, program.graph)
    assert "2. D: minimize adv; reads T as the earlier steps left it" in text
    assert "computes T(x) (without autograd; again: step 1 computed it before T changed)" in text


@pytest.mark.parametrize(("overrides", "message"), [
    (["players.D.fresh=[Tx]"], "unknown network 'Tx' in fresh (did you mean 'T'?)"),
    (["players.D.fresh=[D]"], "'D' is updated by this step, whose calls of it are always current"),
])
def test_fresh_mistakes_are_located(overrides, message):
    with pytest.raises(lossgraph.SpecError) as error:
        compile_text(overrides=overrides)
    text = str(error.value)
    assert message in text and "<override 1>:1:" in text, text


def test_a_mistake_in_the_file_names_its_line_and_column():
    with pytest.raises(lossgraph.SpecError) as error:
        compile_text(SPEC.replace("fresh: [T]", "fresh: [Tx]"))
    line = SPEC.splitlines().index("    fresh: [T]") + 1
    assert f"fresh.yaml:{line}:13: players.D.fresh[0]: unknown network 'Tx' in fresh" in str(error.value), str(error.value)
