"""What a run's checkpoint holds, how it is saved, and how a resumed run gets it back.

Each checkpoint (checkpoint.py writes it atomically) holds:

    nets.safetensors   every trained network, and each moving average (ema.py) as network `<name>@ema`
    state.pt           trainer: the trainer's state without its averages (they are networks above);
                       step, seconds (training wall time so far), skipped (non-finite steps so far),
                       seed, batch_size, spec (its name), rng (rng.py); best (with train.keep_best:
                       the best evaluation as of this step, best.py); under torchrun also
                       world_size and what differs per process (distributed.py)

A checkpoint is the state after its step, so a resumed run goes on at the next step. Networks with
a NaN or infinite tensor are never saved: saving raises `NonFiniteError` instead (nonfinite.py).
An average the checkpoint lacks (`ema:` added on resume) starts at the resumed weights; one the
spec no longer asks for is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from torch import nn

from lossgraph.language.errors import LossgraphError
from lossgraph.train import nonfinite
from lossgraph.train.checkpoint import latest_checkpoint, load_network_tensors, save_checkpoint, stored_networks
from lossgraph.train.ema import EMA, ema_name, is_ema_name
from lossgraph.train.options import Plan
from lossgraph.train.protocols import Averaging, Trainer
from lossgraph.train.resume import Resumed
from lossgraph.train.rng import rng_state

if TYPE_CHECKING:
    from lossgraph.train.distributed import Distributed


@dataclass(frozen=True)
class RunNetworks:
    """A run's networks: the trained modules (never DDP or compiled wrappers), and the moving
    averages its trainer keeps of some of them (none unless the trainer is `Averaging`)."""

    trained: dict[str, nn.Module]
    averages: dict[str, EMA]  # by network name
    shown: dict[str, nn.Module]  # what samples and evaluation see: the averages in place where kept

    @classmethod
    def of(cls, nets: Mapping[str, nn.Module], trainer: Trainer) -> RunNetworks:
        if isinstance(trainer, Averaging):
            return cls(dict(nets), dict(trainer.ema), {**nets, **trainer.averaged_nets()})
        return cls(dict(nets), {}, dict(nets))

    @property
    def saved(self) -> dict[str, nn.Module]:
        """What a checkpoint stores, by its name there."""
        return {**self.trained, **{ema_name(name): average.module for name, average in self.averages.items()}}

    def describe_averages(self) -> str | None:
        if not self.averages:
            return None
        decays = ", ".join(f"{name} (decay {average.decay:g}{f', from iteration {average.start}' if average.start else ''})"
                           for name, average in self.averages.items())
        return f"samples and evaluation use the moving averages (EMA) of {decays}"


def trainer_state(trainer: Trainer) -> dict[str, Any]:
    """The trainer's part of state.pt: its state without the averages, which are saved as networks."""
    return trainer.state_dict(averages=False) if isinstance(trainer, Averaging) else trainer.state_dict()


class Checkpoints:
    """The checkpoints of one run (RUN/checkpoints): saving its state, restoring a resumed one."""

    def __init__(self, plan: Plan, networks: RunNetworks, trainer: Trainer, group: Distributed | None = None):
        self.folder = plan.out_dir / "checkpoints"
        self.plan = plan
        self.networks = networks
        self.trainer = trainer
        self.group = group

    def latest(self) -> Path | None:
        return latest_checkpoint(self.folder)

    def save(self, step: int, seconds: float, skipped: int, best: dict | None = None) -> Path | None:
        """Save the state after `step`; its folder, or None on a torchrun process other than rank 0
        (every process takes part: the ranks compare their networks and gather their pools).
        `best`: the best evaluation as of `step`, with `train.keep_best` (best.py)."""
        saved = self.networks.saved
        poisoned = nonfinite.nonfinite_network(saved)  # a poisoned state is never saved
        if poisoned is not None:
            raise nonfinite.NonFiniteError(step, poisoned, self.latest())
        options = self.plan.options
        extra = {"spec": self.plan.name, "rng": rng_state(), "seconds": seconds, "seed": options.seed,
                 "batch_size": self.plan.batch_size, "skipped": skipped}
        if best is not None:
            extra["best"] = best
        if self.group is not None:
            self.group.check_in_sync(self.networks.trained)
            extra.update(self.group.checkpoint_extra(self.trainer))
            if not self.group.is_main:
                return None
        return save_checkpoint(self.folder, step, saved, trainer_state(self.trainer), extra,
                               keep=options.keep_checkpoints)

    def restore(self, resumed: Resumed) -> list[str]:
        """Load `resumed`'s networks, averages and trainer state; notes for the user.

        The RNG streams are not restored here: the run does that last before its first step, so
        that nothing it does before can draw from them (rng.restore_rng).
        """
        notes = []
        stored = stored_networks(resumed.path)
        averages = {name: average.module for name, average in self.networks.averages.items()}
        found = {ema_name(name): module for name, module in averages.items() if ema_name(name) in stored}
        load_network_tensors(resumed.path, {**self.networks.trained, **found},
                             resumed.state.get("network_extra_states", {}),
                             ignore=[name for name in stored if is_ema_name(name)])
        try:
            self.trainer.load_state_dict(resumed.state["trainer"])
        except (KeyError, ValueError, RuntimeError) as error:
            raise LossgraphError(f"checkpoint {resumed.path} does not fit this spec's trainer: {error}") from error
        missing = [name for name in averages if ema_name(name) not in stored]
        # `ema:` added on resume (--allow-spec-change): each missing average starts at the resumed weights
        if missing and isinstance(self.trainer, Averaging):
            self.trainer.reset_ema(missing)
            notes.append(f"{resumed.path} has no moving average of {', '.join(missing)}: "
                         "starting it at the resumed weights")
        notes.append(f"resuming {self.plan.name} from {resumed.path} (step {resumed.step})")
        return notes
