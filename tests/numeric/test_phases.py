"""The phase plan: each step of the one generated iteration computes the loss the plan defines
(checked by the interpreter, an evaluator independent of the generated code), and `losses()` at
the iteration's starting weights for generator-first schedules, with fewer network forwards."""

import copy

import pytest
import torch

import lossgraph
from lossgraph.compiler.interpret import interpret
from lossgraph.compiler.phases import plan_phases
from tests.conftest import count_forwards

SPECS = ["pix2pix", "bicyclegan", "cogan", "pixelda", "cyclegan", "discogan", "dualgan", "unit", "stargan", "stargan-wgan-gp", "lptn",
         "munit"]
PENALISED = {"stargan-wgan-gp", "lptn"}  # a gradient penalty: its random mixes are drawn in another order by the interpreter
D_FIRST = [name for name in SPECS if lossgraph.load(name).schedule_steps[0][0] == "D"]
G_FIRST = [name for name in SPECS if lossgraph.load(name).schedule_steps == [("G", 1), ("D", 1)]]


def cut_keys(program):
    """Stats of terms the iteration cuts to their live part (and their players' losses)."""
    keys = set()
    for phase in plan_phases(program.graph, program.plans, program.spec.schedule_steps):
        written = {term.name: term for term in program.graph.player(phase.player).terms}
        cut = [term.name for term in phase.live if term.expr != written[term.name].expr]
        keys |= {f"{phase.player}/{name}" for name in cut} | ({phase.player} if cut else set())
    return keys


def oracle_losses(program, nets, inputs, iteration=0, queues=None):
    """Each step's loss as the phase plan defines it, by an independent evaluator: the IR of that
    step's loss interpreted node by node (interpret.py), not the generated code.

    Optimizer pre-step hooks snapshot every network before each step. A step's loss is the
    objective at these weights: the networks it steps (its own, and those of the players it also
    steps) before its last repeat's update; a network an earlier step updated, where this step's
    gradient passes through its calls or the step reads it fresh (`fresh:`), as it is now; where
    the calls are data to this step (the iteration's fakes), as that earlier step's last repeat
    computed them, before its update; any other network's, the iteration's start. `iteration`
    sets the scheduled weights; `queues` the queues' rows (a queue is otherwise started from the
    batch)."""
    snapshots = []  # (player, {network: state}) before each optimizer step
    trainer = program.trainer(nets)
    trainer.iteration = iteration
    if queues is not None:
        trainer.queues.load_state_dict(queues)
    start = {name: copy.deepcopy(net.state_dict()) for name, net in nets.items()}
    for player, optimizer in trainer.optimizers.items():
        optimizer.register_step_pre_hook(lambda *_, player=player: snapshots.append(
            (player, {name: copy.deepcopy(net.state_dict()) for name, net in nets.items()})))
    torch.manual_seed(7)
    stats = trainer.step(inputs)
    batch = program.weigh(program.draw({**inputs, **(queues or {})}), iteration)
    expected = {}
    last_step = {}  # player -> the snapshot before its latest step so far
    for phase in program.phases:
        steps_so_far = sum(p.repeats for p in program.phases[:program.phases.index(phase) + 1] if p.player == phase.player)
        last_step[phase.player] = [state for player, state in snapshots if player == phase.player][steps_so_far - 1]
        at_step = last_step[phase.player]
        player = program.graph.player(phase.player)
        through = {node.arg for node in program.plans[phase.player].grad_nodes if node.op.name in ("APPLY", "FROZEN")}
        weights = {}
        for name, net in nets.items():
            owner = next((p.name for p in program.graph.players if name in p.networks), None)
            if name in player.stepped or (owner in last_step and (name in through or name in player.fresh)):
                state = at_step[name]
            elif owner in last_step:
                state = last_step[owner][name]
            else:
                state = start[name]
            clone = copy.deepcopy(net)
            clone.load_state_dict(state)
            weights[name] = clone
        torch.manual_seed(7)
        loss = interpret([phase.loss], weights, batch)[phase.loss]
        expected[phase.player] = float(loss)
    return stats, expected


def naive_forwards(program) -> int:
    """Network forwards if every step computed its own loss from scratch: each distinct call of
    each step's loss, every repeat, nothing kept or batched."""
    count = 0
    for phase in program.phases:
        calls = {node for node in phase.loss.walk() if node.op.name in ("APPLY", "FROZEN")}  # a grad's calls are APPLY too
        count += phase.repeats * len(calls)
    return count


def test_both_orders_are_shipped():
    assert set(G_FIRST) == {"pix2pix", "bicyclegan", "pixelda", "discogan", "unit"}  # cogan: [{G: 3}, D]
    assert set(D_FIRST) == {"cyclegan", "dualgan", "stargan", "stargan-wgan-gp", "lptn", "munit"}


@pytest.mark.parametrize("name", [name for name in SPECS if name not in PENALISED])
def test_each_step_of_an_iteration_is_the_plans_loss_by_an_independent_evaluator(name):
    """The generated iteration against the interpreter (the gradient penalty's random mixes are
    drawn in another order there: stargan-wgan-gp and lptn are checked without it below)."""
    program = lossgraph.compile(name)
    inputs = program.example_inputs(batch_size=2, seed=3)
    stats, expected = oracle_losses(program, program.build_networks(seed=1), inputs)
    for player, value in expected.items():
        assert stats[player] == pytest.approx(value, rel=1e-5, abs=1e-6), player


def test_repeated_critic_steps_against_the_independent_evaluator():
    program = lossgraph.compile("stargan-wgan-gp", ["players.D.minimize.adv=E[D.src(fake)] - E[D.src(x)]"])
    stats, expected = oracle_losses(program, program.build_networks(seed=1), program.example_inputs(batch_size=2, seed=3))
    assert program.spec.schedule_steps[0] == ("D", 5)
    for player, value in expected.items():
        assert stats[player] == pytest.approx(value, rel=1e-5, abs=1e-6), player


def test_a_critic_first_penalised_spec_without_its_penalty_against_the_independent_evaluator():
    program = lossgraph.compile("lptn", ["players.D.minimize.gp=null"])
    stats, expected = oracle_losses(program, program.build_networks(seed=1), program.example_inputs(batch_size=2, seed=3))
    assert program.spec.schedule_steps == [("D", 1), ("G", 1)]
    for player, value in expected.items():
        assert stats[player] == pytest.approx(value, rel=1e-5, abs=1e-6), player


@pytest.mark.parametrize("name", SPECS)
def test_an_iteration_runs_fewer_forwards_than_steps_computed_from_scratch(name):
    program = lossgraph.compile(name)
    nets = program.build_networks(seed=1)
    counts = count_forwards(nets)
    program.trainer(nets).step(program.example_inputs(batch_size=2, seed=3))
    judges = set(program.judges)
    assert sum(count for net, count in counts.items() if net not in judges) < naive_forwards(program)


@pytest.mark.parametrize("name", G_FIRST)
def test_a_generator_first_iteration_is_the_objective_at_its_starting_weights(name):
    """G steps on losses()["G"]; D then steps on losses()["D"] at the same weights (D's own are
    unchanged, and the fakes are the iteration's), values and gradients alike."""
    program = lossgraph.compile(name)
    inputs = program.example_inputs(batch_size=2, seed=3)
    nets = program.build_networks(seed=1)
    reference = program.build_networks(seed=1)
    got = program.trainer(nets).step(inputs)
    want = program.losses(reference, inputs)
    # a step reports what it computes: a cut term its live part, and no dead term (cogan's real)
    dead = {player for player in program.players if program.plans[player].dead_terms}
    for key in (want.keys() & got.keys()) - cut_keys(program) - dead:
        assert got[key] == pytest.approx(float(want[key]), rel=1e-5, abs=1e-6), key
    d_parameters = [p for name in program.graph.player("D").networks for p in reference[name].parameters()]
    expected = torch.autograd.grad(want["D"], d_parameters)
    actual = [p.grad for name in program.graph.player("D").networks for p in nets[name].parameters()]
    for a, b in zip(actual, expected):
        assert float((a - b).abs().max()) <= 1e-4 * float(b.abs().max()) + 1e-8


def test_a_generator_first_schedule_shares_the_discriminator_outputs_on_fakes():
    program = lossgraph.compile("discogan")
    nets = program.build_networks(seed=0)
    counts = count_forwards(nets)
    program.trainer(nets).step(program.example_inputs(batch_size=2))
    # D_Y(fake_y) in G's step serves D's too; D's step adds D_Y(y) alone
    assert counts["D_Y"] == 2 and counts["D_X"] == 2
    assert counts["G_XY"] == 2 and counts["G_YX"] == 2
    g, d = plan_phases(program.graph, program.plans, program.spec.schedule_steps)
    # G's backward keeps the graph of D's calls on the fakes, which D's backward goes through
    assert {node.arg for node in g.kept_graph if node.op.name == "APPLY"} == {"D_X", "D_Y"} and not d.kept_graph
    assert "torch.autograd.backward(loss_G, inputs=(fake_y_in, fake_x_in), retain_graph=True)" in program.code
    assert {node.arg for node in d.reused if node.op.name == "APPLY"} == {"D_X", "D_Y", "G_XY", "G_YX"}


def test_a_repeated_step_frees_the_previous_repeats_kept_graph():
    # cogan: three G steps, then D's step reuses D's calls on the last repeat's fakes; the graphs
    # of the earlier repeats' D calls must be gone when the next repeat starts
    import weakref

    program = lossgraph.compile("cogan")
    nets = program.build_networks(seed=0)
    live, in_d, seen = set(), [False], []

    class Saved:
        def __init__(self, tensor):
            self.tensor = tensor

    def pack(tensor):  # saved tensors of D's calls, tracked while they live
        saved = Saved(tensor)
        if in_d[0]:
            live.add(id(saved))
            weakref.finalize(saved, live.discard, id(saved))
        return saved

    for name in ("D1", "D2"):
        nets[name].register_forward_pre_hook(lambda *_: in_d.__setitem__(0, True))
        nets[name].register_forward_hook(lambda *_: in_d.__setitem__(0, False))
    nets["G1"].register_forward_pre_hook(lambda *_: seen.append(len(live)))
    trainer = program.trainer(nets)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda saved: saved.tensor):
        trainer.step(program.example_inputs(batch_size=2))
    assert seen == [0, 0, 0]  # G1's forward in each repeat: no earlier repeat's D graph alive


def test_a_repeated_phase_reuses_no_call_of_its_own_networks():
    # with five critic steps after G's, D(fake) must be computed again in each
    program = lossgraph.compile(lossgraph.load("dualgan", overrides=["schedule=[G, {D: 5}]"]))
    nets = program.build_networks(seed=0)
    counts = count_forwards(nets)
    program.trainer(nets).step(program.example_inputs(batch_size=2))
    assert counts["D_Y"] == 1 + 5 and counts["G_XY"] == 2  # each critic step: D_Y(y) and D_Y(fake) batched


def test_a_discriminator_first_schedule_runs_each_generator_once():
    program = lossgraph.compile(lossgraph.load("discogan", overrides=["schedule=[D, G]"]))
    nets = program.build_networks(seed=0)
    counts = count_forwards(nets)
    program.trainer(nets).step(program.example_inputs(batch_size=2))
    # G_XY(x), G_YX(y) once each for both steps, then G_YX(G_XY(x)), G_XY(G_YX(y)) in G's step
    assert counts["G_XY"] == 2 and counts["G_YX"] == 2
    # D_Y(y) and D_Y(fake) in D's step, as one batched call; D_Y(fake) again in G's, since D_Y changed
    assert counts["D_Y"] == 2 and counts["D_X"] == 2


def test_repeated_critic_steps_compute_the_fakes_once():
    program = lossgraph.compile("dualgan")
    nets = program.build_networks(seed=0)
    counts = count_forwards(nets)
    program.trainer(nets).step(program.example_inputs(batch_size=2))
    assert counts["G_XY"] == 2  # G_XY(x) for all five critic steps and G's, then G_XY(G_YX(y))
    assert counts["D_Y"] == 5 + 1  # D_Y(y) and D_Y(fake) batched in each critic step


def test_the_plan_keeps_a_call_until_a_network_under_it_changes():
    program = lossgraph.compile("cyclegan")
    d, g = plan_phases(program.graph, program.plans, program.spec.schedule_steps)
    assert {node.arg for node in g.reused} == {"G_XY", "G_YX"}  # the fakes; D_Y(fake_y) again after D's update
    generators = {node.arg for node in d.with_grad if node.op.name == "APPLY" and node.arg.startswith("G")}
    assert generators == {"G_XY", "G_YX"}  # computed with autograd in D's step, for G's
    # the pool replaces the fakes only in D's step: the calls that see pooled images are its own
    assert {node.arg for node in d.local if node.op.name == "APPLY"} == {"D_X", "D_Y"}


def test_constant_parts_of_a_term_are_not_computed():
    # G's adv in StarGAN is E[log D.src(x)] + E[log(1 - D.src(fake))]: only the second moves G
    program = lossgraph.compile("stargan")
    assert cut_keys(program) == {"G", "G/adv"}
    nets = program.build_networks(seed=0)
    counts = count_forwards(nets)
    inputs = program.example_inputs(batch_size=2)
    stats = program.trainer(nets).step(inputs)
    # D(x) and D(fake) for D's step (not batched: D reads D.cls(x) alone, whose backward would
    # cover both halves), D(fake) again for G's: not D(x) again
    assert counts["D"] == 3
    assert counts["G"] == 2
    assert stats["G/adv"] < 0 and "adv_G = -F.softplus(D_src_fake).mean()" in program.code.split("# G:")[-1]


def test_a_discriminator_step_batches_real_and_generated_images():
    program = lossgraph.compile("cyclegan")
    d, g = plan_phases(program.graph, program.plans, program.spec.schedule_steps, program.batchable)
    assert sorted(first.arg for first, _ in d.batched) == ["D_X", "D_Y"] and not g.batched
    assert "D_Y_y, D_Y_fake_y_pool = batched(D_Y, (y,), (fake_y_pool.detach(),))" in program.code
    # the batched outputs are the two calls', up to rounding
    nets = program.build_networks(seed=0)
    inputs = program.example_inputs(batch_size=3, seed=0)
    from lossgraph.compiler.runtime import batched

    with torch.no_grad():
        real, fake = batched(nets["D_Y"], (inputs["y"],), (inputs["x"],))
        torch.testing.assert_close(real, nets["D_Y"](inputs["y"]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(fake, nets["D_Y"](inputs["x"]), rtol=1e-5, atol=1e-6)


def test_networks_that_mix_the_batch_are_never_batched():
    # CoGAN's DCGAN discriminators have batch norm: real and fake must stay separate calls
    program = lossgraph.compile(lossgraph.load("cogan", overrides=["schedule=[D, G]"]))
    assert {"D1", "D2"} <= program.batchable.mixing
    assert all(not phase.batched for phase in plan_phases(program.graph, program.plans, program.spec.schedule_steps, program.batchable))
    assert " = batched(" not in program.code


def test_a_gradient_into_the_inputs_prevents_batching():
    # two D calls in G's step, each differentiated with respect to its input: kept apart, since a
    # batched backward would compute the input gradient of both halves for each
    adv = "E[log(1 - D.src(fake))] + E[log(1 - D.src(G(fake, c_s)))]"
    program = lossgraph.compile(lossgraph.load("stargan", overrides=[f"players.G.minimize.adv={adv}"]))
    _, g = plan_phases(program.graph, program.plans, program.spec.schedule_steps, program.batchable)
    calls = [node for node in g.computed if node.op.name == "APPLY" and node.arg == "D"]
    assert len(calls) == 2 and program.batchable(*calls) and not g.batched
