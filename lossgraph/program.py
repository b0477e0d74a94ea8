"""A compiled spec: the public object users, tests and the trainer hold.

`compile(spec)` runs the whole pipeline (spec -> IR -> passes -> shape check -> code) and
executes the generated module once, registering its source with `linecache` so that tracebacks
and debuggers show the generated lines. See docs/architecture.md, "Public API", for the contract.
"""

from __future__ import annotations

import contextlib
import functools
import linecache
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch

import lossgraph.nets as architectures

from lossgraph.compiler.codegen import emit_judge_module, emit_module
from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import DistributionMetric, FeatureChoice, Graph
from lossgraph.compiler.ops import Ops
from lossgraph.compiler.passes.pipeline import run_pipeline
from lossgraph.compiler.passes.domains import hazards
from lossgraph.compiler.passes.gradients import PlayerPlan, analyse
from lossgraph.compiler.phases import Batchable, Phase, plan_phases
from lossgraph.compiler.shape_check import NetConfig, fingerprint, infer_shapes
from lossgraph.data.seeds import derive_seed
from lossgraph.data.views import augmented_view
from lossgraph.language.spec import Spec, load

MAX_BOUND = 16  # sets of modules whose generated code a program keeps (Program.generated)


class Program:
    def __init__(self, spec: Spec):
        self.spec = spec
        ranges = _output_ranges(spec)
        self.written, self.graph, self.notes = run_pipeline(spec, ranges)
        # what can still make each term non-finite in float32: a run that stops names it
        self.hazards: dict[str, list[str]] = hazards(self.graph, ranges)
        shapes = infer_shapes(spec, self.graph)
        _check_average_inputs(spec, shapes.networks)
        self.ranks: dict[Expr, int] = shapes.ranks
        self.network_configs: dict[str, NetConfig] = shapes.networks
        self.like_shapes: dict[str, tuple[int, ...]] = shapes.like
        self.plans: dict[str, PlayerPlan] = analyse(self.graph)
        self.batchable = Batchable(shapes.shapes, shapes.mixing)
        self.fingerprints = shapes.fingerprints
        # the phase plan: each player's step in schedule order, network calls kept across steps
        self.phases: tuple[Phase, ...] = plan_phases(self.graph, self.plans, spec.schedule_steps, self.batchable)
        self.code: str = emit_module(self.graph, self.phases, self.plans, self.ranks)
        self._module = _load_module(self.code, f"<lossgraph:{spec.name}>", self)
        # each judge is fitted by a module of its own, whose one training function is the judge's step
        self.judge_code: dict[str, str] = {judge.name: emit_judge_module(self.graph, judge, self.plans, self.ranks)
                                           for judge in self.graph.judges}
        self._judges = {name: _load_module(code, f"<lossgraph:{spec.name}:judge {name}>", self)
                        for name, code in self.judge_code.items()}
        self._bound: OrderedDict[tuple, tuple[tuple, dict[str, Any]]] = OrderedDict()

    # -- public API -------------------------------------------------------------------------

    @property
    def players(self) -> list[str]:
        return [player.name for player in self.graph.players]

    @property
    def judges(self) -> list[str]:
        """Networks fitted on real data before training (`trainer.fit_judges`); they only evaluate."""
        return [judge.name for judge in self.graph.judges]

    @property
    def name(self) -> str:
        return self.spec.name

    def build_networks(self, seed: int = 0) -> dict[str, torch.nn.Module]:
        """Every network on the CPU, initialised deterministically from `seed` and its name.

        Each network draws from its own stream (seeded by `seed` and a hash of its name), so adding
        a network to a spec, a judge say, leaves the others' initial weights as they were.
        """
        nets = {}
        with torch.random.fork_rng(devices=[]):
            for name in sorted(self.network_configs):
                torch.manual_seed(_stream_seed(seed, name))
                nets[name] = self.network_configs[name].build()
        for name, net in self.spec.networks.items():
            for other, parts in (net.share or {}).items():
                architectures.share(nets[name], nets[other], parts)  # the same modules, so the same parameters
        for name, net in self.spec.networks.items():
            if net.weights is not None and name in nets:
                load_weights(self.spec, name, nets[name])
            if net.fixed and name in nets:
                nets[name].requires_grad_(False)  # no gradient is ever taken for its parameters
        for name, net in self.spec.networks.items():
            if net.average is not None and name in nets:  # starts as its source (averages.py)
                nets[name].load_state_dict(nets[net.average.of].state_dict())
                nets[name].requires_grad_(False)
        return nets

    def example_inputs(self, batch_size: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
        """A batch of every data and random variable: images uniform in [-1, 1], labels
        uniform over their classes, vectors standard normal, random variables drawn."""
        generator = torch.Generator().manual_seed(seed)
        size = self.spec.train.image_size
        inputs: dict[str, torch.Tensor] = {}
        for name, kind in self.graph.data.items():
            if kind.kind == "image":
                inputs[name] = torch.rand(batch_size, kind.size, size, size, generator=generator) * 2 - 1
            elif kind.kind == "label":
                inputs[name] = torch.randint(kind.size, (batch_size,), generator=generator)
            else:
                inputs[name] = torch.randn(batch_size, kind.size, generator=generator)
        for name, (size, _) in self.graph.queues.items():  # a queue's rows, as the trainer would hold them
            inputs[name] = torch.randn(size, *self.like_shapes[name], generator=generator)
        return self.draw(inputs, generator)

    def draw(self, inputs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """`inputs` with every random variable it lacks drawn; a supplied one is kept as given."""
        missing = [name for name in self.graph.random if name not in inputs]
        if not missing:
            return dict(inputs)
        first = next(value for value in inputs.values() if value.dim() > 0)  # not a weight: a batch
        batch, device = first.shape[0], first.device
        out = dict(inputs)
        for name in missing:
            draw = self.graph.random[name]
            shape = (batch, *self.like_shapes[name]) if draw.like is not None else (batch, draw.size)
            if draw.dist == "augmented":  # a second view of each image (data/views.py)
                out[name] = augmented_view(out[draw.of], generator)
            elif draw.dist == "label":
                out[name] = torch.randint(draw.size, (batch,), device=device, generator=generator)
            elif draw.dist == "normal":
                out[name] = torch.randn(shape, device=device, generator=generator)
            else:
                out[name] = torch.rand(shape, device=device, generator=generator) * (draw.high - draw.low) + draw.low
        return out

    def losses(self, nets: Mapping[str, torch.nn.Module], inputs: Mapping[str, torch.Tensor],
               iteration: int = 0) -> dict[str, torch.Tensor]:
        """Every player's loss (what its optimizer minimizes) and every term `player/term`.

        Random variables missing from `inputs` are drawn; those given are used as given. A term
        whose weight has a schedule takes its weight at `iteration` (from 0), unless `inputs`
        gives it (`inputs["weight/G/ds"]`).
        """
        # a gradient inside a loss (grad, gp) needs autograd even where the caller turned it off
        with torch.enable_grad() if self.takes_gradients else contextlib.nullcontext():
            return self.generated(nets)["losses"](nets, self.weigh(self.draw(inputs), iteration))

    @functools.cached_property
    def takes_gradients(self) -> bool:
        """Whether a loss holds a gradient (`grad`, `gp`), which autograd must compute."""
        return any(node.op is Ops.GRAD for player in self.graph.players for node in player.loss.walk())

    def weights(self, iteration: int) -> dict[str, float]:
        """Each scheduled term weight at `iteration` (from 0), by input name: `{"weight/G/ds": 1.96}`."""
        return {name: schedule.at(iteration) for name, schedule in self.graph.weights.items()}

    def weigh(self, inputs: Mapping[str, torch.Tensor], iteration: int,
              weights: Mapping[str, float] | None = None) -> dict[str, torch.Tensor]:
        """`inputs` with each scheduled weight at `iteration` it lacks, as a number tensor on the
        inputs' device and in their floating dtype: data of the step, so the generated code, a
        compiled network or a CUDA graph never changes as the weights do. `weights`: those
        `weights(iteration)` gives, where the caller has them already."""
        out = dict(inputs)
        weights = self.weights(iteration) if weights is None else weights
        missing = {name: value for name, value in weights.items() if name not in out}
        if missing:
            floating = next((value for value in out.values() if value.is_floating_point()), None)
            dtype = floating.dtype if floating is not None else torch.get_default_dtype()
            device = next(iter(out.values())).device if out else torch.device("cpu")
            values = torch.tensor(list(missing.values()), dtype=dtype).to(device, non_blocking=True)
            out.update(zip(missing, values.unbind()))
        return out

    def judge_function(self, judge: str):
        """The generated `iteration(nets, inputs, optimizers, parameters, pools)` of judge `judge`'s
        module: one optimizer step of that judge on a real batch (`Trainer.fit_judges` runs it)."""
        return self._judges[judge]["iteration"]

    def idle_steps(self, iteration: int, weights: Mapping[str, float] | None = None) -> frozenset[str]:
        """The players (steps) that skip their step at `iteration` (from 0): those whose every term
        has a scheduled weight of 0 there (a warm-up), in `weights` where the caller has them
        (`weights(iteration)`, or the weights a step is given). Their optimizer would still move the
        parameters on a zero gradient (Adam's momentum, weight decay), so the step is not taken."""
        weights = self.weights(iteration) if weights is None else weights
        return frozenset(player.name for player in self.graph.players if player.terms and all(
            term.weight_input is not None and weights[term.weight_input] == 0 for term in player.terms))

    @functools.cached_property
    def full_iteration(self) -> int:
        """The first iteration (from 0) at which no step is idle: 0 without a warm-up, the warm-up's
        end with one (TUNIT's 700); the first with the fewest idle steps where every iteration of
        the run leaves some out. Probes and benchmarks measure there (ddp_probe.py, benchmarks/)."""
        best, fewest = 0, None
        for iteration in range(max(int(self.spec.train.steps), 1)):
            idle = len(self.idle_steps(iteration))
            if fewest is None or idle < fewest:
                best, fewest = iteration, idle
            if idle == 0:
                break
        return best

    def idle_iteration(self, idle: frozenset[str], nets: Mapping[str, torch.nn.Module] | None = None):
        """The generated `iteration` of the schedule without the steps of `idle` (`idle_steps`),
        with the decisions `iteration_function(nets)` takes for these modules: generated once per
        set of idle steps and set of modules, as the full schedule is."""
        module = self._module if nets is None else self.generated(nets)
        without = module.setdefault("_without", {})  # lives and is evicted with its module
        if idle not in without:
            batchable, ranks = module.get("_decisions", (self.batchable, self.ranks))
            steps = [(name, count) for name, count in self.spec.schedule_steps if name not in idle]
            without[idle] = self._emit(steps, batchable, ranks, f"without {','.join(sorted(idle))}")["iteration"]
        return without[idle]

    def _emit(self, steps: list[tuple[str, int]], batchable: Batchable, ranks: Mapping[Expr, int], label: str) -> dict[str, Any]:
        """The generated module for `steps` of the schedule under these decisions, loaded."""
        phases = plan_phases(self.graph, self.plans, steps, batchable)
        return _load_module(emit_module(self.graph, phases, self.plans, ranks), f"<lossgraph:{self.spec.name}:{label}>", self)

    def iteration_function(self, nets: Mapping[str, torch.nn.Module] | None = None):
        """The generated `iteration(nets, inputs, optimizers, parameters, pools)`: one iteration of the
        schedule with the phase plan (see phases.py), as compiled for `nets`; `Trainer.step` runs it."""
        return (self._module if nets is None else self.generated(nets))["iteration"]

    def samples(self, nets: Mapping[str, torch.nn.Module], inputs: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        with _eval_mode(nets):
            return list(self.generated(nets)["samples"](nets, self.draw(inputs)))

    def evaluate(self, nets: Mapping[str, torch.nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        with _eval_mode(nets):
            return {name: float(value) for name, value in self.generated(nets)["evaluate"](nets, self.draw(inputs)).items()}

    @property
    def distributions(self) -> tuple[DistributionMetric, ...]:
        """The `fid`, `kid` and `diversity` metrics of `evaluate:`: metrics of the whole held-out set,
        which a run computes (train/metrics/) from the images below."""
        return self.graph.distributions

    @property
    def features(self) -> FeatureChoice | None:
        """The network whose features the distribution metrics compare (None without such metrics)."""
        return self.graph.features

    def distribution_images(self, nets: Mapping[str, torch.nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The images `fid` and `kid` compare on one held-out batch, keyed `<metric>/generated` and
        `<metric>/real`; random variables the inputs lack are drawn."""
        return self._images("distribution_images", nets, inputs)

    def diversity_images(self, nets: Mapping[str, torch.nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One draw of the outputs `diversity` compares, keyed `<metric>/outputs`: each call draws
        the random variables the inputs lack afresh."""
        return self._images("diversity_images", nets, inputs)

    def _images(self, function: str, nets: Mapping[str, torch.nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        generated = self.generated(nets)
        if function not in generated:
            return {}
        with _eval_mode(nets):
            return dict(generated[function](nets, self.draw(inputs)))

    def generated(self, nets: Mapping[str, torch.nn.Module]) -> dict[str, Any]:
        """The generated module's functions, compiled for the modules in `nets`.

        Note [Decisions from the real modules]: the compiler decides things about each network
        (whether two of its calls may be one batched call, the rank of its outputs, its heads) from
        the spec's arch at compile time. A user's own modules may differ (a discriminator with batch
        norm, which must see real and generated images in separate calls), so the first time a set
        of modules arrives it is dry-run on meta tensors (shapes.py) and every decision is read off
        it: where one differs, the code is generated again for these modules; where a module cannot
        serve (wrong channels, a missing head), a located `SpecError` names the network and the spec
        line that applies it. The answer is cached per set of module objects.
        """
        key = tuple(sorted((name, id(module)) for name, module in nets.items()))
        cached = self._bound.get(key)
        if cached is not None and all(ref() is nets.get(name) for name, ref in cached[0]):
            self._bound.move_to_end(key)
            return cached[1]
        if all(name in nets and fingerprint(nets[name]) == known for name, known in self.fingerprints.items()):
            module = self._module  # the spec's own archs: the decisions already made hold
        elif (shapes := infer_shapes(self.spec, self.graph, given=nets)).mixing == self.batchable.mixing and shapes.ranks == self.ranks:
            module = self._module
        else:
            batchable = Batchable(shapes.shapes, shapes.mixing)
            module = self._emit(self.spec.schedule_steps, batchable, shapes.ranks, str(len(self._bound)))
            module["_decisions"] = (batchable, shapes.ranks)  # for its iterations without idle steps
        refs = tuple((name, weakref.ref(module_)) for name, module_ in nets.items())
        self._bound[key] = (refs, module)
        if len(self._bound) > MAX_BOUND:
            self._bound.popitem(last=False)
        return module

    def trainer(self, nets: Mapping[str, torch.nn.Module], device: str | torch.device = "cpu", **acceleration):
        """A `Trainer`; `acceleration`: `compile`, `precision`, `cuda_graphs`, and `steps_per_epoch`
        for a schedule in epochs (see Trainer)."""
        from lossgraph.train.trainer import Trainer

        return Trainer(self, nets, device, **acceleration)

    def __repr__(self) -> str:
        return f"<lossgraph.Program {self.name}: players {self.players}>"


def _output_ranges(spec: Spec) -> dict[str, tuple[float, float] | None]:
    """What each network's module can return, where its arch declares it (a tanh generator's [-1, 1])."""
    return {name: getattr(architectures.ARCHS.get(net.arch), "output_range", None) for name, net in spec.networks.items()}


def load_weights(spec: Spec, name: str, net: torch.nn.Module) -> None:
    """Network `name`'s `weights:` file into `net`: a state dict, from `.safetensors` or from a
    `.pt` read with `torch.load(weights_only=True)` (tensors and plain containers only: a pickle
    that would run code is refused). A file that does not fit the arch is a located error."""
    from lossgraph.language.errors import Problem, SpecError

    path = spec.weights_file(name)
    where = spec.source.origin(("networks", name, "weights"))
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever the reader says, the spec line says where
        detail = str(error).strip().splitlines()[0].split(". ")[0] if str(error).strip() else type(error).__name__
        raise SpecError(Problem(f"cannot read the weights of network '{name}' from {path}: {detail}", where,
                                "save a state dict: torch.save(module.state_dict(), path) or safetensors.torch.save_file; "
                                "a file that would run code when read is refused")) from None
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise SpecError(Problem(f"{path} holds no state dict (a mapping of names to tensors) for network '{name}'", where,
                                "save one: torch.save(module.state_dict(), path)"))
    try:
        net.load_state_dict(state)
    except RuntimeError as error:
        detail = " ".join(str(error).split())
        raise SpecError(Problem(f"the weights in {path} do not fit network '{name}' ({spec.networks[name].arch}): {detail[:300]}", where,
                                "the file must come from the same arch and options")) from None


def _stream_seed(seed: int, name: str) -> int:
    """A seed for network `name`'s initial weights: stable across runs and Python versions (seeds.py)."""
    return derive_seed("network", seed, name)


class _eval_mode:
    """Networks in eval mode for a block, then each back to the mode the caller had set."""

    def __init__(self, nets: Mapping[str, torch.nn.Module]):
        self.nets = nets
        self.modes: dict[str, bool] = {}

    def __enter__(self) -> None:
        for name, net in self.nets.items():
            self.modes[name] = net.training
            net.eval()

    def __exit__(self, *exc: Any) -> None:
        for name, net in self.nets.items():
            net.train(self.modes[name])


def _load_module(source: str, filename: str, owner: object) -> dict[str, Any]:
    """Execute generated source, registered with linecache so tracebacks show its lines."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    weakref.finalize(owner, linecache.cache.pop, filename, None)
    namespace: dict[str, Any] = {"__name__": f"lossgraph.generated.{filename.strip('<>').split(':')[-1]}"}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - lossgraph's own generated code
    return namespace


def compile_spec(spec: Spec | str | Path) -> Program:
    if isinstance(spec, Program):
        return spec
    return Program(load(spec))


def _check_average_inputs(spec: Spec, configs: Mapping[str, NetConfig]) -> None:
    """A moving average is its source's module: the spec must apply both to inputs of the same
    channels, or the average could not hold the source's weights."""
    from lossgraph.language.errors import Problem, SpecError

    problems = []
    for name, net in spec.networks.items():
        if net.average is None or name not in configs or net.average.of not in configs:
            continue
        mine, theirs = configs[name], configs[net.average.of]
        if (mine.in_channels, mine.out_channels) != (theirs.in_channels, theirs.out_channels):
            problems.append(Problem(
                f"network '{name}' is the moving average of '{net.average.of}', so it is applied to what "
                f"{net.average.of} is applied to, but it takes {mine.in_channels} input channels and "
                f"{net.average.of} {theirs.in_channels}", spec.source.origin(("networks", name, "average"), at_key=True),
                f"apply {name} to values shaped as {net.average.of}'s inputs"))
    if problems:
        raise SpecError(problems)
