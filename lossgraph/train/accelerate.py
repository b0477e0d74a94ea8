"""The fast path for the generated steps: each network they call compiled with `torch.compile`,
run under bf16 autocast, and replayed as CUDA graphs. On by default on CUDA, off on the CPU.

Only the networks change; the generated iteration (losses, backward, optimizer steps) is the
same code on every path. Each network is wrapped once (`Accelerated`), so:

- **Precision.** A network runs under `torch.autocast(bfloat16)` and its outputs are cast back to
  fp32 at its boundary: every loss, reconstruction losses included, is computed in fp32 on fp32
  values, and the weights, gradients and optimizer states stay fp32.
- **Compilation.** `torch.compile` per network, not per step: the iteration's backward calls and
  optimizer steps stay eager, so each compiled graph has a fixed autograd structure (no
  `requires_grad` toggling: the steps select parameters with `backward(inputs=...)`).
  A network whose gradient is itself differentiated (a gradient penalty: double backward) is not
  compiled, since compiled backward graphs cannot be differentiated again; it still runs in bf16.
- **CUDA graphs** (`mode="reduce-overhead"`): kernel launches replayed from a recording, which is
  what matters at batch 1. The trainer marks each iteration's start
  (`torch.compiler.cudagraph_mark_step_begin`), since outputs of one graph feed the next.
  torch records one tree of graphs per device, so a new graphed trainer clears it: one graphed
  trainer steps at a time in a process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16")
SETTINGS = ("compile", "precision", "cuda_graphs")
# `Trainer(..., **EAGER)` on any device: the generated steps calling the plain networks in fp32, for
# a trainer that inspects an iteration (hooks, FLOP counts, which parameters get gradients)
EAGER = {"compile": False, "precision": "fp32", "cuda_graphs": False}


def given(source: Any) -> dict[str, Any]:
    """The settings `source` (`lossgraph run`'s or the benchmark's arguments, RunOptions) gives,
    for `Trainer(**given(...))`: a setting left at None takes the device's default there."""
    return {name: getattr(source, name) for name in SETTINGS if getattr(source, name) is not None}


@dataclass(frozen=True)
class Acceleration:
    compile: bool = False
    precision: str = "fp32"
    cuda_graphs: bool = False

    @classmethod
    def for_device(cls, device: torch.device, compile: bool | None = None, precision: str | None = None,
                   cuda_graphs: bool | None = None) -> "Acceleration":
        """The defaults for `device` (CUDA: compiled, bf16, CUDA graphs; CPU: eager fp32), with
        each given setting in their place."""
        cuda = device.type == "cuda"
        precision = precision or ("bf16" if cuda else "fp32")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        compile = cuda if compile is None else compile
        cuda_graphs = (cuda and compile) if cuda_graphs is None else cuda_graphs
        if cuda_graphs and not (cuda and compile):
            raise ValueError("CUDA graphs need a CUDA device and compiled networks (--compile)")
        return cls(compile, precision, cuda_graphs)

    @property
    def active(self) -> bool:
        return self.compile or self.precision != "fp32"

    def describe(self) -> str:
        parts = [self.precision]
        if self.compile:
            parts.append("torch.compile" + (" with CUDA graphs" if self.cuda_graphs else ""))
        else:
            parts.append("eager")
        return ", ".join(parts)

    def wrap(self, nets: Mapping[str, nn.Module], device: torch.device, eager: frozenset[str] = frozenset()) -> dict[str, nn.Module]:
        """`nets` as the generated steps should call them; `eager` names networks never compiled."""
        if not self.active:
            return dict(nets)
        dtype = torch.bfloat16 if self.precision == "bf16" else None
        mode = "reduce-overhead" if self.cuda_graphs else None
        if self.compile:
            # a generator-first step differentiates D's calls on the fakes twice (G's backward keeps
            # their graph for D's, phases.py): compiled backward graphs must not donate buffers
            torch._functorch.config.donated_buffer = False
        return {name: Accelerated(net, device.type, dtype, compile=self.compile and name not in eager, mode=mode)
                for name, net in nets.items()}


class Accelerated(nn.Module):
    """One network as the generated steps call it: compiled and/or autocast, outputs in fp32.

    The network is this module's only child (`net`), so `torch.func.functional_call` with this
    module's named parameters (a term that leaves the network's weights alone) reaches it.
    """

    def __init__(self, net: nn.Module, device_type: str, dtype: torch.dtype | None, compile: bool, mode: str | None):
        super().__init__()
        self.net = net
        self.device_type = device_type
        self.dtype = dtype
        # not a submodule: the compiled wrapper holds `net` itself, whose parameters are ours
        object.__setattr__(self, "call", torch.compile(net, mode=mode, dynamic=False) if compile else net)

    def forward(self, *args: Any) -> Any:
        if self.dtype is None:
            return self.call(*args)
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.call(*args)
        return _to_fp32(out)


def _to_fp32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_to_fp32(item) for item in value)
    return value


def reset_cuda_graphs() -> None:
    """Forget the recorded CUDA graphs of earlier trainers in this process."""
    from torch._inductor import cudagraph_trees

    cudagraph_trees.reset_cudagraph_trees()


def double_backward_networks(graph: Any) -> frozenset[str]:
    """Networks a `grad` differentiates (a gradient penalty: their gradient is differentiated again)."""
    from lossgraph.compiler.graph import differentiated
    from lossgraph.compiler.ops import Ops

    found = set()
    for player in (*graph.players, *graph.judges):
        for node in differentiated(player.loss):
            if node.op in (Ops.APPLY, Ops.FROZEN):
                found.add(node.arg)
    return frozenset(found)
