"""What the run loop needs of a program, a trainer and a dataset.

`train(program, dataset, options)` (run.py) takes any objects with these parts. A compiled
`lossgraph.Program`, the `Trainer` it makes and a `lossgraph.data.Dataset` have all of them;
tests/run/run_fakes.py shows the least a stand-in needs (tests/run/test_protocols.py checks
both). Nothing here is imported by a program or a dataset, and the loop never checks the
required parts.

Optional parts are capabilities the loop uses where an object has them, and only there; each is
a runtime-checkable protocol, tested with `isinstance`:

    Averaging     a trainer keeping moving averages of some networks (the spec's `ema:`): samples
                  and evaluation use them, checkpoints save them as networks `<name>@ema`
    Accelerating  a trainer that says how its steps call the networks (accelerate.py), for a note
    FitsJudges    a trainer that fits the spec's judges before step 1 (a program with `judges`)
    NamesHazards  a program that names what can make each term non-finite, for the error message
    MeasuresDistributions  a program with `fid`, `kid` or `diversity` metrics (metrics/): the images
                  they compare, batch by batch, and the feature network it chose

`DistributedProgram` is what a torchrun run needs beyond a `Program` (distributed.py).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence, runtime_checkable

import torch
from torch import nn

from lossgraph.compiler.graph import Graph
from lossgraph.train.accelerate import Acceleration
from lossgraph.train.ema import EMA

Batch = Mapping[str, torch.Tensor]


@runtime_checkable
class TrainSettings(Protocol):
    """A spec's `train:` section: what the options leave as None comes from here."""

    steps: int
    batch_size: int
    log_every: int
    sample_every: int
    checkpoint_every: int
    eval_every: int


@runtime_checkable
class RunSpec(Protocol):
    name: str
    train: TrainSettings


@runtime_checkable
class Trainer(Protocol):
    def step(self, inputs: Batch) -> Mapping[str, float]:
        """One iteration of the schedule on a batch; each player's loss and its terms (`G/cycle`)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to step on exactly as this one would (torch.save-able)."""

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class Program(Protocol):
    @property
    def spec(self) -> RunSpec: ...

    @property
    def players(self) -> Sequence[str]:
        """Player names in schedule order: the loss columns of metrics.csv come in this order."""

    @property
    def judges(self) -> Sequence[str]:
        """Networks fitted before step 1 by a `FitsJudges` trainer; empty for most specs."""

    def build_networks(self, seed: int = 0) -> dict[str, nn.Module]:
        """Every network on the CPU, initialised from `seed` alone."""

    def trainer(self, nets: Mapping[str, nn.Module], device: str = "cpu", **acceleration: Any) -> Trainer:
        """A trainer of `nets` on `device`; `acceleration` is given only when the options set it."""

    def samples(self, nets: Mapping[str, nn.Module], inputs: Batch) -> list[tuple[str, torch.Tensor]]:
        """Rows of a sample grid: (label, images in [-1, 1]) computed from held-out `inputs`."""

    def evaluate(self, nets: Mapping[str, nn.Module], inputs: Batch) -> Mapping[str, float]:
        """Held-out metrics: the columns of eval.csv."""


@runtime_checkable
class Dataset(Protocol):
    def batch(self, step: int, batch_size: int) -> Batch:
        """The training batch of step `step`: a pure function of (seed, step, batch_size)."""

    def held_out(self, count: int) -> Batch:
        """A fixed batch of up to `count` held-out samples, the same on every call."""


# ----------------------------------------------------------------------------- optional parts


@runtime_checkable
class Averaging(Protocol):
    ema: Mapping[str, EMA]  # by network name: the average and its decay

    def averaged_nets(self) -> dict[str, nn.Module]:
        """Every network, with the moving averages in place of the averaged ones."""

    def state_dict(self, averages: bool = True) -> dict[str, Any]:
        """`averages=False` leaves the averages out, for a caller that saves them as networks."""

    def reset_ema(self, names: Iterable[str] | None = None) -> None:
        """Restart the named averages at the live weights."""


@runtime_checkable
class Accelerating(Protocol):
    acceleration: Acceleration


@runtime_checkable
class FitsJudges(Protocol):
    def fit_judges(self, batch: Callable[[int], Batch]) -> dict[str, float]:
        """Fit every judge on real batches `batch(1)`, `batch(2)`, ...; each judge's last loss."""


@runtime_checkable
class NamesHazards(Protocol):
    hazards: Mapping[str, Sequence[str]]  # by loss key (`G/adv`): what can make it non-finite


@runtime_checkable
class MeasuresDistributions(Protocol):
    distributions: Sequence[Any]  # compiler.graph.DistributionMetric: name, kind, images, draws
    features: Any  # compiler.graph.FeatureChoice, or None without distribution metrics

    def distribution_images(self, nets: Mapping[str, nn.Module], inputs: Batch) -> Mapping[str, torch.Tensor]:
        """The images fid and kid compare on one held-out batch, keyed `<metric>/generated`, `<metric>/real`."""

    def diversity_images(self, nets: Mapping[str, nn.Module], inputs: Batch) -> Mapping[str, torch.Tensor]:
        """One draw of the outputs diversity compares, keyed `<metric>/outputs`."""


@runtime_checkable
class DistributedProgram(Program, Protocol):
    """A program that torchrun processes can train together (distributed.py)."""

    graph: Graph  # the players, and the networks each updates: the ones DDP wraps

    def draw(self, inputs: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """`inputs` with every random variable it lacks drawn, at the batch size of `inputs`."""

    def example_inputs(self, batch_size: int = 4, seed: int = 0) -> dict[str, torch.Tensor]: ...

    @property
    def full_iteration(self) -> int:
        """The first iteration at which no step is idle (a warm-up's end, else 0)."""
