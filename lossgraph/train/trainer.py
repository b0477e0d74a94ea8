"""Runs a compiled program's steps: optimizers, schedule order, device placement.

One `step(inputs)` is one iteration of the schedule: each player's generated step in order.
Each player's optimizer holds exactly the parameters of its networks, deduplicated, so a
parameter shared by two networks is stepped once per iteration.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import torch

from lossgraph.train.accelerate import Acceleration, reset_cuda_graphs, uncompiled_networks
from lossgraph.train.ema import EMA, LossAverage, make_scheduler, sync_scheduler
from lossgraph.train.pool import ImagePool
from lossgraph.train.queues import Queues
from lossgraph.language.errors import LossgraphError
from lossgraph.language.spec import AdamSpec, OptimizerSpec


def make_optimizer(settings: OptimizerSpec | None, parameters: list[torch.nn.Parameter],
                   groups: Mapping[str, list[torch.nn.Parameter]] | None = None) -> torch.optim.Optimizer:
    """The optimizer of `settings` over `parameters`; `groups` (network -> its parameters among
    them) gives each network with settings of its own (`optim.G.networks`) a parameter group."""
    settings = settings or OptimizerSpec(adam=AdamSpec())
    options: dict[str, Any] = _options(settings.kind, settings.settings)
    own = {name: params for name, params in (groups or {}).items() if name in settings.networks and params}
    if own:
        apart = {id(p) for params in own.values() for p in params}
        rest = [p for p in parameters if id(p) not in apart]
        parameters = ([{"params": rest}] if rest else []) + [
            {"params": params, **_options(settings.kind, settings.settings_of(name))} for name, params in own.items()]
    # fused Adam (one kernel for all parameters, CPU and CUDA) is 3x faster than the foreach
    # kernels on the CPU; foreach kernels batch the per-parameter updates of the others
    if settings.kind == "adam":
        return torch.optim.Adam(parameters, fused=True, **options)
    if settings.kind == "rmsprop":
        return torch.optim.RMSprop(parameters, foreach=True, **options)
    return torch.optim.SGD(parameters, foreach=True, **options)


def _options(kind: str, settings: Any) -> dict[str, Any]:
    options = settings.model_dump()
    if kind == "adam":
        options["betas"] = tuple(options["betas"])
    return options


def _network_groups(nets: Mapping[str, torch.nn.Module], names: Iterable[str]) -> dict[str, list[torch.nn.Parameter]]:
    """Each network's parameters, a parameter shared by several counted with the first."""
    seen: set[int] = set()
    groups = {}
    for name in names:
        groups[name] = [p for p in unique_parameters([nets[name]]) if id(p) not in seen]
        seen.update(id(p) for p in groups[name])
    return groups


def unique_parameters(modules: list[torch.nn.Module]) -> list[torch.nn.Parameter]:
    seen: dict[int, torch.nn.Parameter] = {}
    for module in modules:
        for parameter in module.parameters():
            seen.setdefault(id(parameter), parameter)
    return list(seen.values())


class Trainer:
    def __init__(self, program, nets: Mapping[str, torch.nn.Module], device: str | torch.device = "cpu", *,
                 compile: bool | None = None, precision: str | None = None, cuda_graphs: bool | None = None,
                 steps_per_epoch: int | None = None):
        """`compile`, `precision` ("fp32" or "bf16") and `cuda_graphs` choose how the steps call the
        networks (accelerate.py); left out, each takes the device's default: on CUDA compiled, bf16
        and graphed, on the CPU eager fp32. `steps_per_epoch` is what a learning-rate schedule in
        epochs counts by (train/epochs.py); a spec with one needs it."""
        self.steps_per_epoch = steps_per_epoch
        self.program = program
        program.generated(nets)  # the modules can serve the spec, or a located error says why
        self.device = torch.device(device)
        self.acceleration = Acceleration.for_device(self.device, compile, precision, cuda_graphs)
        if self.acceleration.cuda_graphs:
            # torch keeps one tree of recorded graphs per device: a new trainer starts its own, and
            # a graphed trainer made before this one must not step again (accelerate.py)
            reset_cuda_graphs()
        self.nets = {name: net.to(self.device) for name, net in nets.items()}
        for net in self.nets.values():
            net.train()
        for name, net in program.spec.networks.items():
            # fixed networks and judges, which a loss may read, are never updated by a step: in
            # eval mode, batch norm uses (and keeps) its running statistics (a judge trains in fit_judges)
            if (net.fixed or name in program.spec.judges) and name in self.nets:
                self.nets[name].eval()
        # what the generated steps call: `nets`, or DDP wrappers of them (distributed.py), as
        # `accelerated` wraps them; samples, evaluation and checkpoints use `nets`
        self.step_nets: dict[str, torch.nn.Module] = self.accelerated(self.nets)
        self.parameters: dict[str, list[torch.nn.Parameter]] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        for player in program.graph.players:
            if player.optimizer != player.name:
                continue  # another step of a player (step_of): its optimizer, below
            params = unique_parameters([self.nets[name] for name in player.networks])
            self.parameters[player.name] = params
            self.optimizers[player.name] = make_optimizer(program.spec.optim.get(player.name), params, _network_groups(self.nets, player.networks))
        for player in program.graph.players:  # a step of another player: the very same optimizer, state and all
            self.parameters[player.name] = self.parameters[player.optimizer]
            self.optimizers[player.name] = self.optimizers[player.optimizer]
        # each parameter group's rate as the spec sets it (a network of its own may have another)
        self.spec_rates = {name: [group["lr"] for group in optimizer.param_groups] for name, optimizer in self.optimizers.items()}
        self.shared = {player.name: player.optimizer for player in program.graph.players if player.optimizer != player.name}
        # compiled for these modules (Note [Decisions from the real modules] in program.py)
        self.iterate = program.iteration_function(self.nets)
        self.pools = {player.name: {name: ImagePool(size) for name, size in player.pool} for player in program.graph.players}
        self.schedule = program.spec.schedule_steps
        self.queues = Queues(program.graph.queues)
        self.iteration = 0
        self._init_schedules_and_averages()

    def step(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """One iteration of the schedule; returns each player's loss and live terms."""
        batch = {name: value.to(self.device, non_blocking=True) for name, value in inputs.items()}
        # one draw of each random variable per iteration, shared by every player's step, and the
        # scheduled term weights of this iteration (a pure function of it: exact on resume)
        weights = {name: float(inputs[name]) if name in inputs else value  # logged as `weight/G/ds`
                   for name, value in self.program.weights(self.iteration).items()}
        batch = self.program.weigh(self.program.draw(batch), self.iteration, weights)
        if self.queues:  # read by the steps as inputs; started from the first batch (train/queues.py)
            self.queues.fill(self.nets, batch)
            batch = {**batch, **self.queues.values}
        if self.acceleration.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # last iteration's graph outputs are no longer read
        # the generated iteration runs every player's step in schedule order, keeping network
        # calls across steps (the phase plan); repeated steps (a critic's 5 per generator step)
        # reuse this iteration's batch
        # a step whose terms all weigh 0 this iteration (a warm-up) is not taken (program.idle_steps)
        idle = self.program.idle_steps(self.iteration, weights)
        iterate = self.program.idle_iteration(idle, self.nets) if idle else self.iterate
        stats = iterate(self.step_nets, batch, self.optimizers, self.parameters, self.pools)
        # rows a step computed with the weights the iteration ends with (phases.py): not computed again
        pushed = {name: stats.pop(f"push/{name}") for name in self.queues.specs if f"push/{name}" in stats}
        if self.queues:  # this iteration's rows, before the averages move
            self.queues.push(self.nets, batch, pushed)
        for average in self.loss_averages.values():  # after every step of the iteration (averages.py)
            average.update(self.iteration)
        for average in self.ema.values():  # once per iteration, after every step (ema.py)
            average.update(self.iteration)
        self.iteration += 1
        rates = self._step_schedules()  # the learning rates this iteration used, `lr/<player>`
        # one device-to-host copy for all the numbers, not one sync per value
        values = torch.stack([value.float() for value in stats.values()]).tolist() if stats else []
        return {**dict(zip(stats, values)), **rates, **weights}

    def accelerated(self, nets: Mapping[str, torch.nn.Module]) -> dict[str, torch.nn.Module]:
        """`nets` (or DDP wrappers of them) as the generated steps call them: compiled, autocast
        or as they are, per `self.acceleration`."""
        return self.acceleration.wrap(nets, self.device, eager=uncompiled_networks(self.program, self.device))

    def fit_judges(self, batch: Callable[[int], Mapping[str, torch.Tensor]]) -> dict[str, float]:
        """Fit every judge (the spec's `judges:`) on real batches `batch(1)`, `batch(2)`, ...
        for its `steps`, with its own optimizer; returns each judge's last loss.

        Judges never enter `step`'s updates: fit them once before training; then they evaluate,
        and a loss may read them, held fixed (in eval mode).
        """
        last: dict[str, float] = {}
        for judge in self.program.graph.judges:
            settings = self.program.spec.judges[judge.name]
            parameters = unique_parameters([self.nets[judge.name]])
            optimizer = make_optimizer(settings.optim, parameters)
            scheduler = make_scheduler(settings.optim.schedule, optimizer)
            step = self.program.judge_function(judge.name)
            stats: dict[str, torch.Tensor] = {}
            self.nets[judge.name].train()
            for index in range(1, settings.steps + 1):
                inputs = {name: value.to(self.device, non_blocking=True) for name, value in batch(index).items()}
                stats = step(self.nets, self.program.draw(inputs), {judge.name: optimizer}, {judge.name: parameters}, {})
                if scheduler is not None:
                    scheduler.step()
            self.nets[judge.name].eval()
            last[judge.name] = float(stats[judge.name])
        return last

    def state_dict(self, averages: bool = True) -> dict[str, Any]:
        """Iteration count, optimizers, history pools, LR schedulers and (`"ema"`) the moving averages.

        `averages=False` leaves the averages out, for a caller that keeps them as networks
        (`ema_nets`): the run's checkpoints save them as networks `<name>@ema`.
        """
        state = {
            "iteration": self.iteration,
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items() if name not in self.shared},
            "pools": {player: {name: pool.state_dict() for name, pool in pools.items()} for player, pools in self.pools.items()},
            "schedulers": {name: scheduler.state_dict() for name, scheduler in self.schedulers.items()},
        }
        if self.queues:
            state["queues"] = self.queues.state_dict()
        if averages:
            state["ema"] = {name: average.state_dict() for name, average in self.ema.items()}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.iteration = int(state.get("iteration", 0))
        for name, optimizer in self.optimizers.items():
            if name not in self.shared:  # a step of another player shares that player's optimizer
                optimizer.load_state_dict(state["optimizers"][name])
        if self.queues:
            self.queues.load_state_dict(state.get("queues", {}), self.device)
        for player, pools in state.get("pools", {}).items():
            for name, pool_state in pools.items():
                self.pools[player][name].load_state_dict(pool_state)
        self._load_schedules_and_averages(state)

    # -- learning-rate schedules and weight averages (ema.py) --------------------------------------

    def _init_schedules_and_averages(self) -> None:
        spec = self.program.spec
        self.schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR] = {}
        for name in self.optimizers:
            if name in spec.optim and spec.optim[name].schedule is not None:
                try:
                    self.schedulers[name] = make_scheduler(spec.optim[name].schedule, self.optimizers[name],
                                                           self.steps_per_epoch)
                except ValueError as error:
                    raise LossgraphError(f"optim.{name}.schedule: {error}") from None
        self.ema: dict[str, EMA] = {name: EMA(self.nets[name], decay, start) for name, (decay, start) in spec.ema_settings.items()}
        # networks a loss reads that average another (`average:`), updated after each iteration
        self.loss_averages: dict[str, LossAverage] = {
            name: LossAverage(self.nets[name], self.nets[net.average.of], net.average.decay, net.average.start, net.average.buffers_every)
            for name, net in spec.networks.items() if net.average is not None and name in self.nets}

    def _step_schedules(self) -> dict[str, float]:
        rates = {f"lr/{name}": scheduler.get_last_lr()[0] for name, scheduler in self.schedulers.items()}
        for scheduler in self.schedulers.values():
            scheduler.step()
        return rates

    def _load_schedules_and_averages(self, state: Mapping[str, Any]) -> None:
        saved = state.get("schedulers", {})
        for name, scheduler in self.schedulers.items():
            if name in saved:
                scheduler.load_state_dict(saved[name])
            # the spec's rates at this iteration: the saved ones, unless the spec changed on resume
            sync_scheduler(scheduler, self.spec_rates[name], self.iteration)
        for name, average_state in state.get("ema", {}).items():
            if name in self.ema:
                self.ema[name].load_state_dict(average_state)

    @property
    def ema_nets(self) -> dict[str, torch.nn.Module]:
        """The moving averages of the spec's `ema:` networks, by network name (shadow modules)."""
        return {name: average.module for name, average in self.ema.items()}

    def averaged_nets(self) -> dict[str, torch.nn.Module]:
        """Every network, with its moving average in place where the spec's `ema:` keeps one."""
        return {**self.nets, **self.ema_nets}

    def reset_ema(self, names: Iterable[str] | None = None) -> None:
        """Restart the named averages (default: all) at the live weights."""
        for name in self.ema if names is None else names:
            self.ema[name].reset()
