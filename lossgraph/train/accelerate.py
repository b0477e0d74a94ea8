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
  On the CPU a network whose graph two steps differentiate is not compiled either (Note [Graphs
  differentiated twice on the CPU]), and compiled graphs run a pass that keeps boolean masks out
  of the saved tensors (Note [Boolean masks on the CPU] in cpu_masks.py). On the CPU a network
  runs compiled only where its first call measures that faster (Note [Compiled only where faster
  on the CPU] in measured.py).
- **CUDA graphs** (`mode="reduce-overhead"`): kernel launches replayed from a recording, which is
  what matters at batch 1. The trainer marks each iteration's start
  (`torch.compiler.cudagraph_mark_step_begin`), since outputs of one graph feed the next.
  torch records one tree of graphs per device, so a new graphed trainer clears it: one graphed
  trainer steps at a time in a process.

Note [Graphs differentiated twice on the CPU]
    In a generator-first schedule D's calls on the fakes are differentiated by G's backward (to
    the fakes) and again by D's (to D's weights): their graph outlives G's step (phases.py's
    `kept_graph`). Eager autograd computes in each pass only the gradients it is asked for: the
    input gradients in G's, the weight gradients (and the activation gradients they need) in
    D's. A compiled network's backward is one graph that computes all its gradients whenever it
    runs, so compiled, D's whole backward runs twice, one D forward's work more than eager. On
    the CPU a compiled PatchGAN saves less than that (0.90 to 1.07 of eager forward and backward,
    where the ResNet generators take 0.76 to 0.83): measured side by side in thread time on one
    thread, pix2pix's compiled iteration took 1.02 of eager with D compiled and 0.99 with D
    eager, discogan's 1.02 and 0.99. So on the CPU those networks run eager in a compiled step.
    On CUDA, where compiling and CUDA graphs save far more per call, they stay compiled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from lossgraph.train.measured import Choice, Measured

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

    def caveat(self, device: torch.device) -> str | None:
        """A note for the run's log where these settings are slower than they look: bf16 on a CPU
        whose oneDNN has no native bf16 (AVX512-BF16 or AMX) runs emulated, slower than fp32."""
        if self.precision == "bf16" and device.type == "cpu" and not native_cpu_bf16():
            return ("this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 is emulated here and runs "
                    "slower than fp32 (--precision fp32)")
        return None

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
        # networks that share weights or buffers run all compiled or all eager (Note [Tied networks
        # choose together] in measured.py): one left eager makes the whole group eager, and on the
        # CPU the group's first call measures for all of them
        groups = tied_groups(nets)
        eager = frozenset(eager).union(*(group for group in groups if group & eager))
        choices: dict[str, Choice] = {}
        for group in groups:
            choices.update(dict.fromkeys(group, Choice()))
        return {name: Accelerated(net, device.type, dtype, compile=self.compile and name not in eager, mode=mode,
                                  choice=choices.get(name))
                for name, net in nets.items()}


def tied_groups(nets: Mapping[str, nn.Module]) -> list[frozenset[str]]:
    """The networks that hold a common parameter or buffer (a shared trunk), grouped transitively;
    networks that share nothing are left out."""
    owner: dict[int, str] = {}
    parent = {name: name for name in nets}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    for name, net in nets.items():
        for tensor in [*net.parameters(), *net.buffers()]:
            other = owner.setdefault(id(tensor), name)
            if other != name:
                parent[root(name)] = root(other)
    groups: dict[str, set[str]] = {}
    for name in nets:
        groups.setdefault(root(name), set()).add(name)
    return sorted((frozenset(group) for group in groups.values() if len(group) > 1), key=sorted)


def native_cpu_bf16() -> bool:
    """Whether oneDNN computes bf16 natively on this CPU (AVX512-BF16 or AMX): where it does, bf16
    is the fastest CPU path (the README's bf16 table); where not, it is emulated and slower."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None and torch.backends.mkldnn.is_available() else False


class Accelerated(nn.Module):
    """One network as the generated steps call it: compiled and/or autocast, outputs in fp32.

    The network is this module's only child (`net`), so `torch.func.functional_call` with this
    module's named parameters (a term that leaves the network's weights alone) reaches it.
    """

    def __init__(self, net: nn.Module, device_type: str, dtype: torch.dtype | None, compile: bool, mode: str | None,
                 choice: "Choice | None" = None):
        super().__init__()
        self.net = net
        self.device_type = device_type
        self.dtype = dtype
        # not a submodule: the compiled wrapper holds `net` itself, whose parameters are ours
        call = compiled(net, device_type, mode) if compile else net
        if compile and device_type == "cpu":
            # compiled only where its first call measures it faster (Note in measured.py)
            call = Measured(net, call, on_choice=lambda chosen: object.__setattr__(self, "call", chosen),
                            choice=choice or Choice())
        object.__setattr__(self, "call", call)
        object.__setattr__(self, "chooser", call if isinstance(call, Measured) else None)

    @property
    def runs_compiled(self) -> bool | None:
        """Whether calls run the compiled graph; None on the CPU before the first call chose."""
        if isinstance(self.call, Measured):
            return None
        return self.call is not self.net

    def forward(self, *args: Any) -> Any:
        if self.dtype is None:
            return self.call(*args)
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.call(*args)
        return _to_fp32(out)


def compiled(net: nn.Module, device_type: str, mode: str | None = None) -> nn.Module:
    """`torch.compile(net)` as the steps call it: static shapes; on the CPU with the pass that keeps
    boolean masks out of the saved tensors (Note [Boolean masks on the CPU] in cpu_masks.py)."""
    options = None
    if device_type == "cpu":
        from lossgraph.train.cpu_masks import MASKS_FROM_OUTPUTS

        options = {"joint_custom_post_pass": MASKS_FROM_OUTPUTS}
    return torch.compile(net, mode=mode, dynamic=False, options=options)


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


def uncompiled_networks(program: Any, device: torch.device) -> frozenset[str]:
    """The networks a compiled step calls uncompiled: those a gradient penalty differentiates
    and, on the CPU, those whose graph two steps differentiate (Note [Graphs differentiated twice
    on the CPU])."""
    found = double_backward_networks(program.graph)
    if device.type == "cpu":
        found |= twice_differentiated_networks(program.phases)
    return found


def twice_differentiated_networks(phases: Any) -> frozenset[str]:
    """Networks whose call's graph one step keeps for a later step to differentiate again."""
    from lossgraph.compiler.ops import Ops

    found = set()
    for phase in phases:
        for node in phase.kept_graph:
            while node.op is Ops.HEAD:
                node = node.args[0]
            found.add(node.arg)
    return frozenset(found)


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
