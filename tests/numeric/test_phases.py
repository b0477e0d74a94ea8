"""The phase plan: one generated iteration equals the players' steps run one after another
(discriminator-first schedules), or `losses()` at the iteration's starting weights
(generator-first ones, where D's step reads the iteration's fakes), with fewer network forwards."""

import pytest
import torch

import lossgraph
from lossgraph.compiler.phases import plan_phases
from tests.conftest import count_forwards

SPECS = ["pix2pix", "bicyclegan", "cogan", "pixelda", "cyclegan", "discogan", "dualgan", "unit", "stargan", "stargan-wgan-gp"]
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


def one_iteration_by_steps(trainer, inputs):
    """What Trainer.step did before the phase plan: each player's own step, in schedule order."""
    batch = trainer.program.draw(inputs)
    stats = {}
    for player, repeats in trainer.schedule:
        for _ in range(repeats):
            stats.update({key: float(value) for key, value in trainer.step_player(player, batch).items()})
    return stats


def test_both_orders_are_shipped():
    assert set(G_FIRST) == {"pix2pix", "bicyclegan", "pixelda", "discogan", "unit"}  # cogan: [{G: 3}, D]
    assert set(D_FIRST) == {"cyclegan", "dualgan", "stargan", "stargan-wgan-gp"}


@pytest.mark.parametrize("name", D_FIRST)
def test_an_iteration_equals_the_steps_one_after_another(name):
    program = lossgraph.compile(name)
    inputs = program.example_inputs(batch_size=2, seed=3)
    planned = program.trainer(program.build_networks(seed=1))
    stepped = program.trainer(program.build_networks(seed=1))
    torch.manual_seed(7)  # the same draws for pools and penalties in both
    got = planned.step(inputs)
    torch.manual_seed(7)
    want = one_iteration_by_steps(stepped, inputs)
    assert got.keys() == want.keys()
    for key in want.keys() - cut_keys(program):
        assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), key
    # the gradients of each player's step agree (over more iterations, Adam turns the rounding of
    # gradients near zero, summed in another order, into steps of size lr: not a fair comparison)
    for net in planned.nets:
        for a, b in zip(planned.nets[net].parameters(), stepped.nets[net].parameters()):
            if a.grad is None or b.grad is None:
                assert a.grad is None and b.grad is None, f"{name} {net}"
                continue
            scale = float(b.grad.abs().max())
            assert float((a.grad - b.grad).abs().max()) <= 1e-4 * scale + 1e-8, f"{name} {net}"


@pytest.mark.parametrize("name", SPECS)
def test_an_iteration_runs_no_more_forwards_than_the_steps(name):
    program = lossgraph.compile(name)
    inputs = program.example_inputs(batch_size=2, seed=3)
    planned_nets, stepped_nets = program.build_networks(seed=1), program.build_networks(seed=1)
    planned, stepped = program.trainer(planned_nets), program.trainer(stepped_nets)
    planned_counts, stepped_counts = count_forwards(planned_nets), count_forwards(stepped_nets)
    planned.step(inputs)
    one_iteration_by_steps(stepped, inputs)
    assert sum(planned_counts.values()) <= sum(stepped_counts.values())
    assert all(planned_counts[net] <= stepped_counts[net] for net in planned_counts)


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
    assert stats["G/adv"] < 0 and "softplus(D_src_fake_2).mean()" in program.code.split("# G:")[-1]


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
