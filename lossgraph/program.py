"""A compiled spec: the public object users, tests and the trainer hold.

`compile(spec)` runs the whole pipeline (spec -> IR -> passes -> shape check -> code) and
executes the generated module once, registering its source with `linecache` so that tracebacks
and debuggers show the generated lines. See DESIGN.md "Public API" for the contract.
"""

from __future__ import annotations

import linecache
import weakref
from pathlib import Path
from typing import Any, Mapping

import torch

from .codegen import emit_module
from .expr import Expr
from .graph import Graph
from .passes import run_pipeline
from .passes.gradients import PlayerPlan, analyse
from .shapes import IMAGE_CHANNELS, NetConfig, infer_shapes
from .spec import Spec, load


class Program:
    def __init__(self, spec: Spec):
        self.spec = spec
        self.written, self.graph, self.notes = run_pipeline(spec)
        shapes = infer_shapes(spec, self.graph)
        self.ranks: dict[Expr, int] = shapes.ranks
        self.network_configs: dict[str, NetConfig] = shapes.networks
        self.plans: dict[str, PlayerPlan] = analyse(self.graph)
        self.code: str = emit_module(self.graph, self.plans, self.ranks, {})
        self._module = _load_module(self.code, f"<lossgraph:{spec.name}>", self)

    # -- public API -------------------------------------------------------------------------

    @property
    def players(self) -> list[str]:
        return [player.name for player in self.graph.players]

    @property
    def name(self) -> str:
        return self.spec.name

    def build_networks(self, seed: int = 0) -> dict[str, torch.nn.Module]:
        """Every network on the CPU, initialised deterministically from `seed`."""
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            return {name: self.network_configs[name].build() for name in sorted(self.network_configs)}
        finally:
            torch.random.set_rng_state(state)

    def example_inputs(self, batch_size: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
        """A batch of every data variable: images uniform in [-1, 1]."""
        generator = torch.Generator().manual_seed(seed)
        size = self.spec.train.image_size
        inputs = {}
        for name, kind in self.spec.data.items():
            if kind == "image":
                inputs[name] = torch.rand(batch_size, IMAGE_CHANNELS, size, size, generator=generator) * 2 - 1
        return inputs

    def losses(self, nets: Mapping[str, torch.nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every player's loss (what its optimizer minimizes) and every term `player/term`."""
        return self._module["losses"](nets, inputs)

    def step_function(self, player: str):
        return self._module[f"step_{player}"]

    def samples(self, nets: Mapping[str, torch.nn.Module], inputs: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        with _eval_mode(nets):
            return list(self._module["samples"](nets, inputs))

    def evaluate(self, nets: Mapping[str, torch.nn.Module], inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        with _eval_mode(nets):
            return {name: float(value) for name, value in self._module["evaluate"](nets, inputs).items()}

    def trainer(self, nets: Mapping[str, torch.nn.Module], device: str | torch.device = "cpu"):
        from .trainer import Trainer

        return Trainer(self, nets, device)

    def __repr__(self) -> str:
        return f"<lossgraph.Program {self.name}: players {self.players}>"


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
