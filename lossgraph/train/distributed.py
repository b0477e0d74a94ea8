"""Data-parallel training on several processes: `torchrun --nproc_per_node N -m lossgraph run SPEC`.

`run.train` asks `setup()` whether it runs under torchrun (RANK, WORLD_SIZE, LOCAL_RANK in the
environment, WORLD_SIZE > 1); if so, this module owns everything that differs from one process:

- The process group: NCCL on CUDA (each rank on `cuda:LOCAL_RANK`), gloo on the CPU. One that the
  caller initialised already is used as it is and left open.
- The data. The global batch (the spec's `batch_size`, or `--batch-size`) must divide by the
  number of processes; rank r takes the contiguous slice r of `dataset.batch(step, global batch)`,
  loading only its own items, so the processes together see exactly the batch one process sees.
- Random variables. Every rank keeps the same global RNG stream (same seed, same draws): the
  spec's `random:` variables are drawn at the global batch size, as one process draws them (the
  rank's data widened to that size tells `program.draw` the size), and each rank keeps its
  slice, so their union is the single-process draw. Draws inside a step (the
  gradient penalty's mixing weights, history pools, dropout) come from a per-rank stream seeded by
  (seed, rank, step) instead, so that ranks draw independently and a resumed run needs no per-rank
  RNG state.
- Gradients. Every network a player updates is wrapped in `DistributedDataParallel` in the
  networks the generated iteration calls (`Trainer.step_nets`); samples, evaluation, checkpoints
  and the guard against non-finite steps keep using the plain modules. DDP's backward hooks fire
  under `loss.backward(inputs=parameters)` and average each gradient over ranks before
  `optimizer.step()`. See Note [DDP per network].
- Outputs. Only rank 0 writes (logs, samples, evaluation, checkpoints, spec.yaml) or prints; the
  losses it logs are averaged over ranks every step, so metrics.csv reads as in one process, and
  every rank sees the same numbers (a NaN on one rank stops all of them at the same step).
  Checkpoints hold rank 0's state plus what differs per rank (history pools); every rank loads
  the checkpoint on `--resume`, so the run folder must be visible to all of them.

Note [DDP per network]
~~~~~~~~~~~~~~~~~~~~~~
DDP prepares its reducer at a forward with autograd on and averages during the next backward that
reaches the wrapper's parameters. The generated iteration (the phase plan) keeps network calls
across players, so a wrapper's forward and the backward that uses it may lie in different players'
steps; that is fine, as is each of the following (every shipped spec, run in two processes,
logs the single-process losses up to rounding, except cogan's batch norm and the gradient
penalty's own draws; tests/run/test_distributed.py checks a spec built to hit each case):
- A network called with autograd in another player's step (D in G's step, so that the gradient
  reaches G): that backward's `inputs` exclude D's parameters, none of D's hooks fire, and DDP
  simply prepares again at D's next forward.
- Several forwards before one backward: each parameter's gradient accumulates once, one hook each.
- A frozen application (`updates:`): `functional_call(N, frozen(N), ...)` on the wrapper swaps in
  detached tensors, which give N's parameters no gradient; N's other applications still do.
- The gradient penalty differentiates the critic inside its forward with `torch.autograd.grad`
  with respect to the mixed images only, which runs no parameter's accumulation hook; the step's
  `loss.backward(inputs=parameters)` then fires each hook once with the whole gradient.
- Shared modules (CoGAN's trunks, UNIT's shared layers): each wrapper holding a shared parameter
  averages it; every one copies the local gradient into its bucket during backward and writes the
  average back after it, so they all write the same average (one all-reduce more per holder).
- Unused parameters: a parameter that gets no gradient while others of its wrapper do (a head no
  loss uses) leaves the reduction unfinished, and the next forward fails ("Expected to have
  finished reduction in the prior iteration"). `find_unused_parameters=True` does not help: it
  searches the graph from the forward's outputs, where the unused head still is, and a frozen
  application's second forward then marks the network's parameters unused although the first one
  uses them ("Expected to mark a variable ready only once"). So before training one iteration runs
  on copies of the networks (`used_parameters`, ddp_probe.py), and parameters that got no gradient are left out
  of DDP (`_set_params_and_buffers_to_ignore_for_model`); a network none of whose parameters got
  one is not wrapped.
- Batch norm: DDP broadcasts rank 0's buffers (running statistics) at forwards; batch statistics
  are each rank's own slice's, as usual for data parallelism, so such a spec does not repeat the
  single-process run exactly.
A network that two backward passes of an iteration reach in different parts (TUNIT's guide C: its
own step reaches both heads, G's step, which also steps C, only the style head) is not wrapped: DDP
would stop the run at C's next forward, its reduction unfinished. Its gradients are averaged
instead right before each optimizer step that updates it (`_average_at_steps`; the probe's
`partly_reached`, ddp_probe.py); its buffers stay each process's own.
As a guard against a path none of this foresaw, every checkpoint first checks that all ranks hold
the same parameters, and stops with an error naming the networks that differ.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import nn

from lossgraph.data.seeds import derive_seed
from lossgraph.language.errors import LossgraphError
from lossgraph.train.ddp_probe import partly_reached, used_parameters
from lossgraph.train.device import to_device
from lossgraph.train.protocols import Dataset, DistributedProgram
from lossgraph.train.rng import forked_rng

if TYPE_CHECKING:
    from lossgraph.train.trainer import Trainer

ENVIRONMENT = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass
class Distributed:
    """This process's place in a multi-process run, and what the run loop asks of it."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = True  # destroy the process group at the end (False: the caller made it)
    seed: int = 0
    wrappers: dict[str, nn.Module] = field(default_factory=dict)  # network -> its DistributedDataParallel

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ----------------------------------------------------------------------------- data

    def local_slice(self, global_batch: int) -> slice:
        if global_batch % self.world_size:
            raise LossgraphError(f"the global batch size {global_batch} does not divide among {self.world_size} "
                                 f"processes; pass --batch-size with a multiple of {self.world_size}")
        size = global_batch // self.world_size
        return slice(self.rank * size, (self.rank + 1) * size)

    def batch(self, program: DistributedProgram, dataset: Dataset, step: int, global_batch: int) -> dict[str, torch.Tensor]:
        """This rank's share of step `step`'s global batch, on its device, random variables drawn."""
        part = self.local_slice(global_batch)
        data = to_device(_load_slice(dataset, step, global_batch, part), self.device)
        # The global draw from the shared stream, exactly as one process makes it, then our slice.
        drawn = program.draw(_global_shape(data, global_batch))
        data.update({name: value[part] for name, value in drawn.items() if name not in data})
        return data

    def own_stream(self, step: int) -> contextlib.AbstractContextManager[None]:
        """Draws inside a step come from this rank's stream for `step`; the shared stream is left as it was."""
        return forked_rng(self.device, derive_seed("rank stream", self.seed, self.rank, step))

    def step(self, program: DistributedProgram, trainer: Trainer, dataset: Dataset, step: int,
             global_batch: int) -> dict[str, float]:
        """One training iteration on this rank's slice; returns the losses averaged over ranks."""
        batch = self.batch(program, dataset, step, global_batch)
        with self.own_stream(step):
            stats = trainer.step(batch)
        return self.mean(stats)

    # ----------------------------------------------------------------------------- collectives

    def _reduce_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def mean(self, stats: Mapping[str, float]) -> dict[str, float]:
        """Each value averaged over ranks (the stats' keys are the same on every rank)."""
        import torch.distributed as dist

        if not stats:
            return dict(stats)
        values = torch.tensor([float(value) for value in stats.values()], dtype=torch.float64,
                              device=self._reduce_device())
        dist.all_reduce(values)
        return dict(zip(stats, (values / self.world_size).tolist()))

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def broadcast_networks(self, nets: Mapping[str, nn.Module]) -> None:
        """Every network's parameters and buffers as rank 0 has them."""
        import torch.distributed as dist

        seen: set[int] = set()
        with torch.no_grad():
            for net in nets.values():
                for tensor in (*net.parameters(), *net.buffers()):
                    if id(tensor) in seen:
                        continue
                    seen.add(id(tensor))
                    dist.broadcast(tensor.data, src=0)

    def check_in_sync(self, nets: Mapping[str, nn.Module]) -> None:
        """Stop if the ranks' parameters differ (they are averaged identically, so they never should)."""
        import torch.distributed as dist

        names = [name for name, net in nets.items() if any(True for _ in net.parameters())]
        if not names:
            return
        with torch.no_grad():
            sums = torch.stack([torch.stack([p.detach().double().sum() + p.detach().double().abs().sum()
                                             for p in nets[name].parameters()]).sum() for name in names])
            sums = sums.to(self._reduce_device())
            high, low = sums.clone(), sums.clone()
            dist.all_reduce(high, op=dist.ReduceOp.MAX)
            dist.all_reduce(low, op=dist.ReduceOp.MIN)
        differ = [name for name, a, b in zip(names, high.tolist(), low.tolist()) if a != b]
        if differ:
            raise LossgraphError(f"the {self.world_size} processes no longer hold the same networks "
                                 f"({', '.join(differ)} differ); this is a lossgraph bug: please report it with the spec")

    # ----------------------------------------------------------------------------- networks

    def prepare(self, program: DistributedProgram, trainer: Trainer, global_batch: int) -> None:
        """Give every rank rank 0's networks, then wrap each trained network in DDP for the steps.

        Call it on every rank once the networks are final (resumed, or judges fitted), before
        training. It is a collective, so no rank passes it before every rank has read what it
        needs from the run folder. See Note [DDP per network].
        """
        from torch.nn.parallel import DistributedDataParallel

        nets = trainer.nets
        self.broadcast_networks(nets)  # judges included: fitted alike everywhere, now bitwise alike
        used, passes = used_parameters(program, trainer, self.local_slice(global_batch), self.device)
        trained = dict.fromkeys(name for player in program.graph.players for name in player.networks)
        by_hand = partly_reached(nets, trained, passes)
        self._average_at_steps(trainer, [nets[name] for name in by_hand])
        step_nets = dict(nets)
        sync_buffers = _buffer_sync_option()
        for name in trained:
            if name in by_hand:
                continue  # its gradients are averaged at its optimizer's steps
            net = nets[name]
            names = [key for key, parameter in net.named_parameters() if id(parameter) not in used]
            if len(names) == len(list(net.parameters())):
                continue  # no gradient ever reaches it in a step: nothing to average
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(net, names)
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            step_nets[name] = self.wrappers[name] = DistributedDataParallel(net, device_ids=device_ids, **sync_buffers)
        trainer.step_nets = trainer.accelerated(step_nets)

    def _average_at_steps(self, trainer: Trainer, networks: list[nn.Module]) -> None:
        """Average these networks' gradients over the processes right before each optimizer step
        that updates them (a step pre-hook): every process steps in the same order with the same
        gradients present, so the collectives match. Slower than DDP's averaging, which overlaps
        the backward, and used only where DDP cannot serve (ddp_probe.partly_reached)."""
        import torch.distributed as dist

        watched = {id(parameter) for net in networks for parameter in net.parameters()}
        optimizers = {id(optimizer): optimizer for optimizer in getattr(trainer, "optimizers", {}).values()}
        for optimizer in optimizers.values():
            mine = [p for group in optimizer.param_groups for p in group["params"] if id(p) in watched]
            if not mine:
                continue

            def average(*_: Any, parameters: list[torch.Tensor] = mine) -> None:
                for parameter in parameters:
                    if parameter.grad is not None:
                        dist.all_reduce(parameter.grad)
                        parameter.grad.div_(self.world_size)

            optimizer.register_step_pre_hook(average)

    # ----------------------------------------------------------------------------- checkpoints

    def checkpoint_extra(self, trainer: Trainer) -> dict[str, Any]:
        """What a checkpoint holds beyond rank 0's own state (a collective: call it on every rank)."""
        import torch.distributed as dist

        extra: dict[str, Any] = {"world_size": self.world_size}
        if self.device.type == "cuda":
            extra["rng_device"] = torch.cuda.get_rng_state(self.device)  # the shared stream's device state
        pools = trainer.pools
        if any(pools.values()):
            state = {player: {name: _to_cpu(pool.state_dict()) for name, pool in by_name.items()}
                     for player, by_name in pools.items()}
            gathered = [None] * self.world_size if self.is_main else None
            dist.gather_object(state, gathered, dst=0)
            if self.is_main:
                extra["rank_pools"] = gathered
        return extra

    def restore(self, trainer: Trainer, state: Mapping[str, Any]) -> None:
        """After run.py restored rank 0's RNG state on every rank: this rank's device stream and pools."""
        if self.device.type == "cuda":
            saved = state.get("rng_device")
            if saved is None:  # a single-process checkpoint: its CUDA stream was device 0's
                saved_all = (state.get("rng") or {}).get("cuda") or []
                saved = saved_all[0] if saved_all else None
            if saved is not None:
                torch.cuda.set_rng_state(saved.cpu(), self.device)
        rank_pools = state.get("rank_pools")
        if rank_pools and len(rank_pools) == self.world_size:
            for player, by_name in rank_pools[self.rank].items():
                for name, pool_state in by_name.items():
                    trainer.pools[player][name].load_state_dict(
                        {**pool_state, "images": [image.to(self.device) for image in pool_state["images"]]})

    def close(self, trainer: Trainer | None = None) -> None:
        """End of training: wait for rank 0's writes, drop the DDP wrappers, end the process group."""
        import gc

        import torch.distributed as dist

        if trainer is not None:
            trainer.step_nets = trainer.nets
        # A reducer destroyed after its process group can hang the process at exit: release them first.
        self.wrappers.clear()
        gc.collect()
        if dist.is_initialized():
            self.barrier()  # rank 0 is done writing before any process reports success
            if self.owns_group:
                dist.destroy_process_group()


def _buffer_sync_option() -> dict[str, bool]:
    """Rank 0's buffers broadcast at forwards: `forward_sync_buffers` where torch has it (it
    deprecates `broadcast_buffers`), else `broadcast_buffers`."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    names = inspect.signature(DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers": True} if "forward_sync_buffers" in names else {"broadcast_buffers": True}


def world_size_from_environment() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def setup(device: torch.device, seed: int = 0) -> Distributed | None:
    """The distributed context when torchrun started this process among several, else None.

    `device` is the run's resolved device; a CUDA device becomes `cuda:LOCAL_RANK`.
    """
    import torch.distributed as dist

    already = dist.is_available() and dist.is_initialized()
    world = dist.get_world_size() if already else world_size_from_environment()
    if world <= 1:
        return None
    if not dist.is_available():
        raise LossgraphError("WORLD_SIZE > 1 asks for several processes, but this torch has no torch.distributed")
    missing = [name for name in ENVIRONMENT if name not in os.environ]
    if missing and not already:
        raise LossgraphError(f"WORLD_SIZE is {world} but {', '.join(missing)} is not set: "
                             "start several processes with torchrun --nproc_per_node N -m lossgraph run SPEC")
    rank = dist.get_rank() if already else int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise LossgraphError(f"process {rank} has LOCAL_RANK {local_rank}, but only {torch.cuda.device_count()} "
                                 f"CUDA devices are visible; start at most that many processes per machine")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not already:
        backend = "nccl" if device.type == "cuda" else "gloo"
        options: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30), **options)
    return Distributed(rank=rank, world_size=world, local_rank=local_rank, device=device,
                       owns_group=not already, seed=seed)


# ----------------------------------------------------------------------------- helpers


def _global_shape(data: Mapping[str, torch.Tensor], global_batch: int) -> dict[str, torch.Tensor]:
    """This rank's data variables widened to the global batch size, for `program.draw`.

    `draw` draws each random variable at the batch size of the inputs it is given, on their
    device, from the shared stream; given this, it draws what one process draws for the global
    batch. The rows are views of the first sample (nothing is copied): draws never read values.
    """
    return {name: value[:1].expand(global_batch, *value.shape[1:]) for name, value in data.items()
            if isinstance(value, torch.Tensor) and value.dim() > 0}


def _load_slice(dataset: Dataset, step: int, global_batch: int, part: slice) -> dict[str, torch.Tensor]:
    """Samples `part` of `dataset.batch(step, global_batch)`, loading only those where it can."""
    from lossgraph.data.dataset import Dataset

    if isinstance(dataset, Dataset) and type(dataset).batch is Dataset.batch:
        indices = dataset.batch_indices(step, global_batch)
        loaded = dataset.load_train({name: index[part] for name, index in indices.items()})
        return {name: loaded[name] for name in dataset.variables}
    return {name: value[part] if isinstance(value, torch.Tensor) and value.dim() > 0 else value
            for name, value in dataset.batch(step, global_batch).items()}


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value
