"""PyTorch's own tools work on every shipped spec's generated iteration, as on a hand-written step:
`FlopCounterMode()` as PyTorch ships it (its module tracker included), `torch.profiler.profile()`,
forward and full backward hooks on every network, and `torch.autograd.detect_anomaly()`.

Generator-first iterations cut the fakes from the generator's graph as leaves (phases.py) and take
the gradient at the leaves by `backward(inputs=leaves)`. They took it by `torch.autograd.grad`
before, which FlopCounterMode's module tracker rejects ("A leaf node was passed to
_will_engine_execute_node ..."); `as_before` rewrites the generated module back to that
formulation, and the iteration must compute exactly what it computed.

One exemption: a gradient penalty in D's step takes `torch.autograd.grad` to D's inputs (WGAN-GP's
to its mixed images, R1's to the real images), which the module tracker rejects in a plain PyTorch
step too (test_the_module_tracker_rejects_a_hand_written_gradient_penalty), so stargan-wgan-gp's,
lptn's and stargan-v2's D steps cannot be counted with it.
"""

import functools
import re
import warnings
import weakref

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import lossgraph
from tests.conftest import TRAINABLE_SPECS, count_forwards

NAMES = [spec.stem for spec in TRAINABLE_SPECS]  # conftest.py: the authors' recipes are too big
EXEMPT_FROM_MODULE_TRACKER = {"stargan-wgan-gp", "lptn", "stargan-v2"}  # a gradient penalty in D's step (WGAN-GP, R1; see the docstring)
LEAF_ERROR = "A leaf node was passed to _will_engine_execute_node"
# calls an iteration makes that no gradient passes. stargan-v2: D_ref's S(x_ref) and G(x, sr1) (G
# changes before G_ref's step, so they are not kept); ds's second images G(x, sl2) with M(z2) and
# G(x, sr2), read through stop_gradient only; in G_ref, which updates G only, S(x_ref), S(x_ref2), S(x)
WITHOUT_GRADIENT = {"stargan-v2": {"M": 1, "G": 3, "S": 4}}


@functools.cache
def program_of(name):
    return lossgraph.compile(name)


def fresh(name, code=None):
    """A trainer of `name` on seeded networks (its iteration compiled from `code` if given), a batch of 2."""
    program = program_of(name)
    trainer = program.trainer(program.build_networks(seed=1))
    if code is not None:
        namespace = {}
        exec(compile(code, f"<before:{name}>", "exec"), namespace)  # noqa: S102 - the generated module, rewritten
        trainer.iterate = namespace["iteration"]
    return trainer, program.example_inputs(batch_size=2, seed=3)


def run(trainer, inputs):
    torch.manual_seed(7)  # the same draws (pools, penalties) in every run
    return trainer.step(inputs)


def as_before(code):
    """The generated module as it took the gradient at the cut leaves before: by torch.autograd.grad."""
    code, taken = re.subn(r"torch\.autograd\.backward\((\w+), inputs=\(([\w, ]+?),?\), retain_graph=True\)",
                          lambda m: f"at_leaves = torch.autograd.grad({m[1]}, ({m[2]},), retain_graph=True)", code)
    code, passed = re.subn(r"\(None, \w+\.grad(, \w+\.grad)*\)", "(None, *at_leaves)", code)
    code, released = re.subn(r"\n *(\w+\.grad = )+None(?=\n)", "", code)
    assert taken == passed == released
    return code


CUT = [name for name in NAMES if as_before(program_of(name).code) != program_of(name).code]


def test_the_generator_first_specs_cut():
    assert set(CUT) == {"pix2pix", "bicyclegan", "cogan", "cogan-ns", "pixelda", "discogan", "unit"}
    assert "torch.autograd.grad(" not in "".join(program_of(name).code for name in CUT)
    assert "torch.autograd.grad(" in program_of("stargan-wgan-gp").code  # its penalty's gradient, not a cut


@pytest.mark.parametrize("name", CUT)
def test_the_iteration_computes_what_the_autograd_grad_formulation_did(name):
    new, inputs = fresh(name)
    old, _ = fresh(name, as_before(program_of(name).code))
    assert run(new, inputs) == run(old, inputs)  # every loss and term, as floats
    for net in new.nets:
        for (key, a), b in zip(new.nets[net].named_parameters(), old.nets[net].parameters()):
            assert torch.equal(a, b), f"{net}.{key}"
            assert (a.grad is None) == (b.grad is None) and (a.grad is None or torch.equal(a.grad, b.grad)), f"{net}.{key}.grad"


@pytest.mark.parametrize("name", CUT)
def test_the_cut_leaves_gradient_is_released_once_used(name):
    # every network call after G's update finds the leaves D's calls took without a .grad
    trainer, inputs = fresh(name)
    leaves = []

    def check(module, args):
        assert all(leaf() is None or leaf().grad is None for leaf in leaves)
        leaves.extend(weakref.ref(a) for a in args if isinstance(a, torch.Tensor) and a.is_leaf and a.requires_grad)

    for net in trainer.nets.values():
        net.register_forward_pre_hook(check)
    run(trainer, inputs)
    assert leaves


def count_flops_total_only(trainer, inputs):
    """FLOPs as the benchmark counted them before: FlopCounterMode without its module tracker."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoTracker()
    with counter:
        run(trainer, inputs)
    return counter.get_total_flops()


class _NoTracker:
    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


@pytest.mark.parametrize("name", NAMES)
def test_flop_counter(name):
    trainer, inputs = fresh(name)
    if name in EXEMPT_FROM_MODULE_TRACKER:
        with pytest.raises(RuntimeError, match=LEAF_ERROR), FlopCounterMode(display=False):
            run(trainer, inputs)
        # its generator's step alone counts: the spec with G's step only
        program = lossgraph.compile(lossgraph.load(name, overrides=["schedule=[G]"]))
        alone = program.trainer(program.build_networks(seed=1))
        with FlopCounterMode(display=False) as counter:
            run(alone, inputs)
        assert counter.get_total_flops() > 0
        return
    with FlopCounterMode(display=False) as counter:
        run(trainer, inputs)
    flops = counter.get_total_flops()
    assert flops > 0
    # the same iteration in the formulation before, counted as the benchmark counted it then
    code = as_before(program_of(name).code) if name in CUT else None
    assert flops == count_flops_total_only(*fresh(name, code))


def test_the_module_tracker_rejects_a_hand_written_gradient_penalty():
    """A WGAN-GP critic step in plain PyTorch, as the usual scripts write it: FlopCounterMode's
    module tracker rejects its `autograd.grad` to the mixed images, so the exemption above is
    PyTorch's, not lossgraph's. Without the penalty the same step counts."""
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.LeakyReLU(0.2), torch.nn.Flatten(), torch.nn.LazyLinear(1))
    real, fake = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    critic(real)  # materialize the lazy layer

    def step(penalty):
        loss = critic(fake).mean() - critic(real).mean()
        if penalty:
            alpha = torch.rand(2, 1, 1, 1)
            mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
            loss = loss + 10 * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        loss.backward()

    with FlopCounterMode(display=False) as counter:
        step(penalty=False)
    assert counter.get_total_flops() > 0
    with pytest.raises(RuntimeError, match=LEAF_ERROR), FlopCounterMode(display=False):
        step(penalty=True)


@pytest.mark.parametrize("name", NAMES)
def test_profiler(name):
    trainer, inputs = fresh(name)
    with torch.profiler.profile() as profiler:
        run(trainer, inputs)
    names = [event.name for event in profiler.events()]
    assert "aten::convolution" in names
    assert "autograd::engine::evaluate_function: ConvolutionBackward0" in names
    idle = trainer.program.idle_steps(0)  # steps a warm-up leaves out (tunit's D and G)
    # a step steps its optimizer and those of the players it also steps (tunit's G steps C's too)
    graph = trainer.program.graph
    steps = sum(repeats * len(graph.player(player).optimizers) for player, repeats in trainer.schedule if player not in idle)
    assert sum(event.startswith("Optimizer.step#") for event in names) == steps


@pytest.mark.parametrize("name", NAMES)
def test_forward_and_full_backward_hooks(name):
    trainer, inputs = fresh(name)
    plain, _ = fresh(name)
    expected = count_forwards(plain.nets)
    want = run(plain, inputs)
    forwards, backwards = dict.fromkeys(trainer.nets, 0), dict.fromkeys(trainer.nets, 0)
    differentiable = dict.fromkeys(trainer.nets, 0)  # calls whose output autograd records

    def forward_hook(module, args, out, n):
        forwards[n] += 1
        differentiable[n] += any(t.requires_grad for t in (out if isinstance(out, tuple) else (out,)))

    for net_name, net in trainer.nets.items():
        net.register_forward_hook(functools.partial(forward_hook, n=net_name))
        net.register_full_backward_hook(lambda module, grad_in, grad_out, n=net_name: backwards.__setitem__(n, backwards[n] + 1))
    with warnings.catch_warnings():
        # a network whose inputs take no gradient (a generator on data), in a hand-written step too
        warnings.filterwarnings("ignore", "Full backward hook is firing when gradients are computed with respect to module outputs")
        got = run(trainer, inputs)
    assert got == want
    assert forwards == expected and any(expected.values())
    # each call's backward is seen once: a call D's step reuses was seen in G's backward; a call
    # no gradient passes runs without autograd and has none, as has a moving average read by a
    # loss (tunit's C_ema)
    averages = {n for n, net in trainer.program.spec.networks.items() if net.average is not None}
    assert backwards == differentiable
    assert differentiable == {net: 0 if net in averages else count - WITHOUT_GRADIENT.get(name, {}).get(net, 0)
                              for net, count in expected.items()}


@pytest.mark.parametrize("name", NAMES)
def test_detect_anomaly(name):
    trainer, inputs = fresh(name)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Anomaly Detection has been enabled")
        with torch.autograd.detect_anomaly():
            stats = run(trainer, inputs)
    assert all(map(torch.isfinite, torch.tensor(list(stats.values()))))


def test_tunit_past_its_warm_up_under_the_profiler_hooks_and_anomaly_detection():
    """TUNIT's steps after the warm-up: D's reads C fresh (its calls of C computed again after C's
    step), G's one backward also steps C with C's optimizer: four optimizer steps, each call's
    backward seen once, no anomaly."""
    trainer, inputs = fresh("tunit")
    trainer.iteration = 1000
    backwards, differentiable = dict.fromkeys(trainer.nets, 0), dict.fromkeys(trainer.nets, 0)
    for net_name, net in trainer.nets.items():
        net.register_forward_hook(lambda module, args, out, n=net_name: differentiable.__setitem__(
            n, differentiable[n] + any(t.requires_grad for t in (out if isinstance(out, tuple) else (out,)))))
        net.register_full_backward_hook(lambda module, grad_in, grad_out, n=net_name: backwards.__setitem__(n, backwards[n] + 1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Full backward hook is firing when gradients are computed with respect to module outputs")
        warnings.filterwarnings("ignore", "Anomaly Detection has been enabled")
        with torch.profiler.profile() as profiler, torch.autograd.detect_anomaly():
            stats = run(trainer, inputs)
    names = [event.name for event in profiler.events()]
    assert sum(event.startswith("Optimizer.step#") for event in names) == 4  # C; D; G and C in G's step
    assert {"C", "D", "G"} <= set(stats) and all(map(torch.isfinite, torch.tensor(list(stats.values()))))
    assert backwards == differentiable and differentiable["C"] > 0
