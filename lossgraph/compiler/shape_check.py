"""Shape checking before any training: a dry run of the objective on meta tensors.

Meta tensors have shapes and no data, so the whole objective "runs" in milliseconds without
allocating images. Each network is built on the meta device the first time it is applied, with
its input channels taken from what it is applied to (`D(x, y)` on two images gets 6), so the
same pass infers the configuration `build_networks` later uses. A failure is reported at the
formula node that failed: a network applied to a value of the wrong kind or shape, operands
that do not broadcast, a term that does not reduce to a scalar.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import torch

import lossgraph.nets as architectures

from lossgraph.language.errors import Origin, Problem, Problems, SpecError, did_you_mean
from lossgraph.compiler.distributions import check_images
from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph
from lossgraph.compiler.class_counts import check_classes, label_classes
from lossgraph.compiler.interpret import evaluate_node
from lossgraph.compiler.op_shapes import shape_problem
from lossgraph.compiler.ops import Ops
from lossgraph.compiler.printing import formula_text
from lossgraph.language.kinds import Draw, Kind
from lossgraph.language.spec import Spec

IMAGE_CHANNELS = 3
META_BATCH = 2


@dataclass(frozen=True)
class NetConfig:
    name: str
    arch: str
    in_channels: int
    out_channels: int
    image_size: int
    options: tuple[tuple[str, Any], ...]

    def build(self) -> torch.nn.Module:
        return architectures.build(
            self.arch,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            image_size=self.image_size,
            **dict(self.options),
        )


@dataclass(frozen=True)
class Shapes:
    ranks: dict[Expr, int]
    shapes: dict[Expr, tuple[int, ...]]
    networks: dict[str, NetConfig]
    like: dict[str, tuple[int, ...]]  # per-sample shape of each draw shaped like a value, and each queue's row shape
    mixing: frozenset[str] = frozenset()  # networks with a layer that mixes the samples of a batch
    fingerprints: Mapping[str, tuple] = field(default_factory=dict)  # each network's `fingerprint`


def empty_input(kind: Kind | Draw, batch: int, image_size: int, device: str = "meta") -> torch.Tensor:
    """A tensor of the shape and dtype a data kind or a (non-`_like`) draw has."""
    if isinstance(kind, Kind) and kind.kind == "image":
        return torch.empty(batch, kind.size, image_size, image_size, device=device)
    if (kind.kind if isinstance(kind, Kind) else kind.dist) == "label":
        return torch.empty(batch, dtype=torch.long, device=device)
    return torch.empty(batch, kind.size, device=device)


def meta_inputs(spec: Spec, batch: int = META_BATCH) -> dict[str, torch.Tensor]:
    size = spec.train.image_size
    inputs = {name: empty_input(kind, batch, size) for name, kind in spec.kinds.items()}
    inputs.update({name: empty_input(spec.kinds[draw.of] if draw.of else draw, batch, size)  # a view: its image's shape
                   for name, draw in spec.draws.items() if draw.like is None})
    return inputs


def image_channels(spec: Spec) -> int:
    """Channels of a generated image: those of the spec's first image variable."""
    return next((kind.size for kind in spec.kinds.values() if kind.kind == "image"), IMAGE_CHANNELS)


def _call_signature(node: Expr, args: list[Any]) -> tuple | None:
    """What a network call's output shape depends on: the network and its inputs' shapes."""
    if node.op not in (Ops.APPLY, Ops.FROZEN) or not all(isinstance(a, torch.Tensor) for a in args):
        return None
    return (node.arg, tuple((tuple(a.shape), a.dtype) for a in args))


def check_networks(spec: Spec) -> None:
    """Archs exist and options are known, each located at its key."""
    problems = Problems()
    source = spec.source
    for name, net in spec.networks.items():
        try:
            found = architectures.find_arch(net.arch)
        except architectures.ArchLoadError as error:
            problems.add(str(error), source.origin(("networks", name, "arch")))
            continue
        if found is None:
            problems.add(f"unknown arch '{net.arch}'", source.origin(("networks", name, "arch")), did_you_mean(net.arch, architectures.ARCHS))
            continue
        valid = architectures.options_of(net.arch)
        for option in net.options:
            if not architectures.accepts_option(net.arch, option):
                problems.add(
                    f"unknown option '{option}' for arch {net.arch}",
                    source.origin(("networks", name, option), at_key=True),
                    did_you_mean(option, list(valid) + ["arch", "output", "out_channels"]),
                )
    problems.raise_if_any()


def infer_shapes(spec: Spec, graph: Graph, given: Mapping[str, torch.nn.Module] | None = None) -> Shapes:
    """The dry run. With `given` (the modules a trainer or `losses` was handed, a user's own say)
    each network call runs that module instead of the spec's arch, so what the compiler decides
    (batching, ranks, heads) is read off the modules actually trained (Note [Decisions from the
    real modules])."""
    if given is None:
        check_networks(spec)
    inputs = meta_inputs(spec)
    inputs.update({name: empty_input(kind, META_BATCH, spec.train.image_size) for name, kind in graph.held_out.items()})
    inputs.update({name: torch.empty((), device="meta") for name in graph.weights})  # scheduled weights: numbers
    configs: dict[str, NetConfig] = {}
    modules: dict[str, torch.nn.Module] = {}
    values: dict[Expr, Any] = {}
    outputs: dict[tuple, Any] = {}  # (network, input shapes) -> its output: each runs once per shape
    problems = Problems()

    def fail(node: Expr, message: str, hint: str | None = None, key: str = "") -> None:
        problems.items.append(Problem(message, _origin_under(graph, node, key), hint))

    def build(node: Expr, args: list[Any]) -> torch.nn.Module | None:
        name = node.arg
        channels = 0
        classes: int | None = None
        # every application is checked, not only the one that builds the module
        for arg, value in zip(node.args, args):
            count = label_classes(spec, graph, arg)
            if count == 0:
                fail(node, f"held-out label '{arg.arg}' has a class count known only when the data opens, so network '{name}' cannot take it",
                     f"declare it under random: as label(K); held-out data replaces the draw at evaluation")
                return None
            if count is not None:
                if classes is not None and classes != count:
                    fail(node, f"network '{name}' applied to labels of {classes} and of {count} classes")
                    return None
                classes = count
                channels += count  # one-hot, broadcast over height and width
                continue
            if not isinstance(value, torch.Tensor) or value.dim() not in (2, 4):
                what = f"of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else "(a number)"
                fail(node, f"network '{name}' applied to {formula_text(arg)} {what}; networks take images (N, C, H, W) or vectors (N, k)")
                return None
            channels += value.shape[1]
        if name in modules:
            return modules[name]
        if given is not None:
            if not isinstance(given.get(name), torch.nn.Module):
                fail(node, f"no module for network '{name}' among the networks given", f"pass a module for each of {', '.join(spec.networks)}")
                return None
            modules[name] = OnMeta(given[name])
            return modules[name]
        net = spec.networks[name]
        out = net.out_channels or architectures.default_out_channels(net.arch, image_channels(spec))
        if out is None:
            problems.add(f"arch '{net.arch}' has no role and its builder no default out_channels, so network '{name}''s output channels are unknown",
                         spec.source.origin(("networks", name), at_key=True),
                         "give out_channels: in the spec, or register the arch with a role")
            return None
        options = dict(net.options)
        if classes is not None and architectures.accepts_option(net.arch, "num_classes"):
            options.setdefault("num_classes", classes)
        config = NetConfig(name, net.arch, channels, out, spec.train.image_size, tuple(sorted(options.items())))
        try:
            with torch.device("meta"):
                modules[name] = config.build()
        except (ValueError, TypeError) as error:
            problems.add(f"cannot build network '{name}': {error}", spec.source.origin(("networks", name)))
            return None
        configs[name] = config
        return modules[name]

    def check_output(node: Expr) -> None:
        heads = graph.networks[node.arg].heads
        value = values[node]
        if heads and not (isinstance(value, tuple) and len(value) == len(heads)):
            got = f"a tuple of {len(value)}" if isinstance(value, tuple) else "one tensor"
            fail(node, f"network '{node.arg}' declares {len(heads)} heads but its module returns {got}")
            del values[node]
        elif not heads and not isinstance(value, torch.Tensor):
            fail(node, f"network '{node.arg}' returns several outputs: declare them as heads", "heads: {name: raw, ...}")
            del values[node]

    # draws shaped like a value come first: other formulas read them
    # and the queues' push formulas, whose rows give each queue's shape
    like_roots = list(graph.random_like.values()) + [push for _, push in graph.queues.values()]
    for root in like_roots + [None] + graph.roots():
        if root is None:
            for name, expr in graph.random_like.items():
                if expr in values:
                    inputs[name] = torch.empty(values[expr].shape, device="meta")
            for name, (size, push) in graph.queues.items():
                rows = values.get(push)
                if isinstance(rows, torch.Tensor) and rows.dim() >= 2:
                    inputs[name] = torch.empty((size, *rows.shape[1:]), device="meta")
                elif push in values:
                    fail(push, f"queue '{name}' holds one row per sample, so its push formula gives a batch of "
                               f"values, shape (N, ...); it gives {_shape_text(rows)}", key="")
            continue
        for node in root.walk():
            if node in values:
                continue
            if any(arg not in values for arg in node.args):
                continue  # an argument already failed
            args = [values[arg] for arg in node.args]
            if node.op in (Ops.APPLY, Ops.FROZEN) and build(node, args) is None:
                continue
            if node.op is Ops.PICK and not (isinstance(args[0], torch.Tensor) and args[0].dim() >= 2):
                shape = tuple(args[0].shape) if isinstance(args[0], torch.Tensor) else "a number"
                fail(node, f"pick(v, c) needs v with one output per class in dimension 1, shape (N, K, ...); "
                           f"{formula_text(node.args[0], graph.names)} has shape {shape}")
                continue
            problem = shape_problem(node.op, args)
            if problem is not None:
                fail(node, problem)
                continue
            if node.op is Ops.GRAD:
                # the gradient has the shape of its variable; the dry run shares calls by shape, so
                # the meta graph need not reach the leaf, and autograd is not run on it
                out, wrt = args
                if not (isinstance(out, torch.Tensor) and out.is_floating_point() and isinstance(wrt, torch.Tensor)):
                    fail(node, f"grad(out, v) differentiates a real-valued out with respect to a real-valued v: {formula_text(node)}")
                    continue
                values[node] = torch.empty_like(wrt)
                continue
            signature = _call_signature(node, args)
            if signature in outputs:
                values[node] = outputs[signature]  # this network on inputs of these shapes ran already
                continue
            try:
                values[node] = evaluate_node(node, args, modules, inputs)
                if node.op in (Ops.APPLY, Ops.FROZEN):
                    check_output(node)
                    if node in values and signature is not None:
                        outputs[signature] = values[node]
            except Exception as error:  # noqa: BLE001 - any torch failure is a shape problem here
                detail = str(error).splitlines()[0] if str(error) else type(error).__name__
                shapes = ", ".join(str(tuple(a.shape)) for a in args if isinstance(a, torch.Tensor))
                what = f"network '{node.arg}'" if node.op is Ops.APPLY else formula_text(node)
                if given is not None and node.op in (Ops.APPLY, Ops.FROZEN):
                    what += f" (the {type(given[node.arg]).__name__} module given for it)"
                fail(node, f"{what} fails on inputs of shape {shapes}: {detail}")
        if problems:
            break
    problems.raise_if_any(SpecError)

    for name in spec.networks if given is None else ():
        if name not in configs:
            problems.add(f"network '{name}' is declared but never applied", spec.source.origin(("networks", name), at_key=True), "apply it in a term or remove it")
    for player in (*graph.players, *graph.judges):
        for term in player.terms:
            value = values[term.expr]
            if isinstance(value, torch.Tensor) and value.dim() != 0:
                fail(term.expr, f"term '{term.name}' is not a scalar: its value has shape {tuple(value.shape)}", "take the expectation E[...] of per-sample values", term.key)
    check_classes(spec, graph, values, fail)
    # a sample shows as the spec's images do: with the channel count of one of its image variables
    channels = sorted({kind.size for kind in spec.kinds.values() if kind.kind == "image"}) or [IMAGE_CHANNELS]
    for index, (label, expr) in enumerate(graph.samples):
        value = values[expr]
        if not (isinstance(value, torch.Tensor) and value.dim() == 4 and value.shape[1] in channels):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else "a number"
            wanted = " or ".join(str(count) for count in channels)
            fail(expr, f"sample '{label}' is not an image batch (N, {wanted}, H, W): shape {shape}", None, f"samples[{index}]")
    for name, expr in graph.evaluate:
        value = values[expr]
        if isinstance(value, torch.Tensor) and value.dim() != 0:
            fail(expr, f"metric '{name}' is not a scalar: shape {tuple(value.shape)}", "take the expectation E[...]", f"evaluate.{name}")
    check_images(graph.distributions, graph.features, values, {name: c.in_channels for name, c in configs.items()}, fail)
    problems.raise_if_any(SpecError)

    for name, net in spec.networks.items() if given is None else ():
        for other, parts in (net.share or {}).items():
            if name in modules and other in modules:
                try:
                    architectures.share(modules[name], modules[other], parts)
                except ValueError as error:
                    problems.add(f"cannot share {parts} of '{other}' with '{name}': {error}", spec.source.origin(("networks", name, "share", other)))
    problems.raise_if_any(SpecError)

    ranks = {node: (v.dim() if isinstance(v, torch.Tensor) else 0) for node, v in values.items()}
    shapes = {node: tuple(v.shape) for node, v in values.items() if isinstance(v, torch.Tensor)}
    like = {name: tuple(values[expr].shape[1:]) for name, expr in graph.random_like.items()}
    like |= {name: tuple(values[push].shape[1:]) for name, (_, push) in graph.queues.items()}  # a queue's rows
    real = modules if given is None else {name: given[name] for name in modules}
    mixing = frozenset(name for name, module in real.items() if architectures.mixes_batch(module))
    prints = {name: fingerprint(module) for name, module in real.items()}
    return Shapes(ranks, shapes, configs, like, mixing, prints)


class OnMeta(torch.nn.Module):
    """A given module run on meta tensors: its parameters and buffers replaced by meta tensors of
    the same shapes, the module itself untouched (no copy of its weights). A module that cannot
    run on meta tensors (a tensor kept as a plain attribute, an op without a meta kernel) runs for
    real instead, once per input shape, in eval mode without autograd, on zeros of those shapes."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        object.__setattr__(self, "inner", module)  # not a submodule: its parameters stay out of ours
        self.state = {name: torch.empty_like(tensor, device="meta") for name, tensor in
                      [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]}
        # the dry run's inputs are float32; a module in another precision (float64) gets its own
        self.dtype = next((t.dtype for t in self.state.values() if t.is_floating_point()), None)

    def forward(self, *args: Any) -> Any:
        if self.dtype is not None:
            args = tuple(a.to(self.dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
        with _hooks_off(self.inner):  # a user's hooks (a forward counter, a profiler) see training only
            try:
                return torch.func.functional_call(self.inner, self.state, args, strict=False, tie_weights=True)
            except Exception:  # noqa: BLE001 - any failure: the real module tells whether it is a shape problem
                return self._run_for_real(args)

    def _run_for_real(self, args: tuple) -> Any:
        parameter = next(iter(self.inner.parameters()), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        real = [torch.zeros(arg.shape, dtype=arg.dtype, device=device) if isinstance(arg, torch.Tensor) else arg for arg in args]
        training = self.inner.training
        self.inner.eval()
        try:
            with torch.no_grad():
                out = self.inner(*real)
        finally:
            self.inner.train(training)
        return _to_meta(out)


_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


@contextlib.contextmanager
def _hooks_off(module: torch.nn.Module) -> Iterator[None]:
    """The hooks registered on `module` and its submodules, set aside for the block."""
    saved = [(sub, name, getattr(sub, name)) for sub in module.modules() for name in _HOOKS if getattr(sub, name, None)]
    for sub, name, _ in saved:
        setattr(sub, name, OrderedDict())
    try:
        yield
    finally:
        for sub, name, hooks in saved:
            setattr(sub, name, hooks)


def fingerprint(module: torch.nn.Module) -> tuple:
    """What the compiler's decisions about a module depend on, short of running it: its layers'
    types and its parameters' and buffers' shapes. Equal fingerprints: the same decisions."""
    layers = tuple((name, type(sub).__module__, type(sub).__qualname__) for name, sub in module.named_modules(remove_duplicate=False))
    tensors = tuple((name, tuple(tensor.shape)) for name, tensor in module.state_dict(keep_vars=True).items())
    return layers, tensors


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.empty_like(value, device="meta")
    if isinstance(value, (tuple, list)):
        return type(value)(_to_meta(item) for item in value)
    return value


def _origin_under(graph: Graph, node: Expr, key: str) -> Origin | None:
    """Where `node` is written under the spec key `key`, else where it is first written.

    An interned node may be written in several places (`D_Y(fake_y)` as D's term and as G's);
    a problem of G's term belongs at G's term, not at the first place the node appears.
    """
    for origin in graph.origins.get(node, ()):
        if key and (origin.key == key or origin.key.startswith(key + ".")):
            return origin
    return graph.origin(node)


def _shape_text(value: Any) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else "a number"
