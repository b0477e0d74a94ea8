"""The schema of a spec: pydantic models, one per mapping a spec file writes, and where each sits.

`Spec` is the whole file; `NetworkSpec`, `PlayerSpec`, `TermSpec`, the optimizers and the rest are
its sections. The models check shapes and ranges (a positive learning rate, a decay in (0, 1));
what needs the whole spec (names that refer to each other) is `names.py`'s, and formulas stay
text until `compiler/passes/lower.py` gives them meaning. Arch options (`width: 16`) ride along
as extra keys of a network and are checked against the arch's own options.

`model_at(path)` names the model of the mapping at a dotted path of the data (`MODELS_BY_PATH`),
so an unknown key, in a file or an override, is answered with the keys that model has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from lossgraph.language.averages import AverageSpec, fill_averages
from lossgraph.language.dataset_options import imply_image_size
from lossgraph.language.queues import QueueSpec
from lossgraph.language.rates import LRScheduleSpec

from lossgraph.language.kinds import Draw, Kind, parse_data_kind, parse_draw
from lossgraph.language.source import Source


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkSpec(BaseModel):
    """A network: an arch from `nets`, how its output is read in formulas, and arch options."""

    model_config = ConfigDict(extra="allow", frozen=True)

    arch: str
    output: Literal["raw", "probability"] = "raw"
    heads: dict[str, Literal["raw", "probability"]] | None = None  # module returns a tuple, in this order
    share: dict[str, list[str]] | None = None  # {G1: [trunk]}: these parts ARE G1's (same parameters)
    out_channels: int | None = Field(default=None, gt=0)
    weights: str | None = None  # a state dict (.pt, read with torch.load(weights_only=True), or .safetensors) to start from
    fixed: bool = False         # never updated: a network a loss reads (a perceptual network), owned by no player
    average: AverageSpec | None = None  # a moving average of another network, read by losses (averages.py)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class WeightSchedule(_Model):
    """A term's weight as a function of the iteration i (counted from 0), exactly one of:

    - `{linear: [a, b], steps: N}`: a at i = 0, moving linearly to b at i = N, then b
      (`start: S` delays the ramp to S .. S + N);
    - `{warmup: N}`: 0 for the first N iterations, then `value` (default 1);
    - `{piecewise: [[0, a], [N1, b], ...]}`: a from iteration 0, b from N1, and so on.

    The weight at i is a pure function of i, so a resumed run uses the weights it would have.
    """

    linear: tuple[float, float] | None = None
    steps: int | None = Field(default=None, gt=0)
    start: int | None = Field(default=None, ge=0)
    warmup: int | None = Field(default=None, gt=0)
    value: float | None = None
    piecewise: list[tuple[Annotated[int, Field(ge=0)], float]] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> "WeightSchedule":
        kinds = [name for name in ("linear", "warmup", "piecewise") if getattr(self, name) is not None]
        if len(kinds) != 1:
            raise ValueError("a weight schedule has exactly one of linear: [from, to], warmup: N, piecewise: [[0, w], [N, w2]]"
                             + (f", not {' and '.join(kinds)}" if kinds else ""))
        allowed = {"linear": {"steps", "start"}, "warmup": {"value"}, "piecewise": set()}[kinds[0]]
        extra = [name for name in ("steps", "start", "value") if getattr(self, name) is not None and name not in allowed]
        if extra:
            raise ValueError(f"{extra[0]}: belongs to {'linear' if extra[0] != 'value' else 'warmup'}, not {kinds[0]}")
        if self.linear is not None and self.steps is None:
            raise ValueError("linear: [from, to] needs steps: N, the iterations it takes to get from one to the other")
        starts = [start for start, _ in self.piecewise or ()]
        if self.piecewise is not None and (starts[0] != 0 or any(a >= b for a, b in zip(starts, starts[1:]))):
            raise ValueError("piecewise lists [iteration, weight] pairs from iteration 0 on, in increasing order: [[0, w], [N, w2], ...]")
        return self

    def at(self, iteration: int) -> float:
        """The weight at `iteration` (from 0)."""
        if self.linear is not None:
            start, (first, last) = self.start or 0, self.linear
            done = min(1.0, max(0.0, (iteration - start) / self.steps))
            return first + (last - first) * done
        if self.warmup is not None:
            return 0.0 if iteration < self.warmup else (1.0 if self.value is None else self.value)
        return next(value for start, value in reversed(self.piecewise) if start <= iteration)

    @property
    def bounds(self) -> tuple[float, float]:
        """The lowest and highest weight it ever takes."""
        if self.linear is not None:
            values = self.linear
        elif self.warmup is not None:
            values = (0.0, 1.0 if self.value is None else self.value)
        else:
            values = tuple(value for _, value in self.piecewise)
        return min(values), max(values)

    def describe(self) -> str:
        """The schedule in words, for `show` and messages."""
        number = lambda value: f"{value:g}"  # noqa: E731
        if self.linear is not None:
            start = self.start or 0
            return f"{number(self.linear[0])} → {number(self.linear[1])} over iterations {start}..{start + self.steps}"
        if self.warmup is not None:
            return f"0 until iteration {self.warmup}, then {number(1.0 if self.value is None else self.value)}"
        return ", ".join(f"{number(value)} from iteration {start}" for start, value in self.piecewise)


class TermSpec(_Model):
    """A weighted term: `cycle: {weight: 10, expr: "E[...]"}`; a bare string has weight 1. The
    weight may change with the iteration: `weight: {linear: [2, 0], steps: 100000}`."""

    expr: str
    weight: float | WeightSchedule = 1.0
    updates: list[str] | None = None  # the networks of its player this term updates (default: all)


class PlayerSpec(_Model):
    """A player: the networks its optimizer updates and the terms it minimizes or maximizes. With
    `step_of: D` it is another step of player D, with terms of its own: D's networks and D's
    optimizer (its state shared), stepped where the schedule names it (StarGAN v2's reference-guided
    steps beside the latent-guided ones). With `also_steps: [C]` its one backward also steps player
    C's networks, with C's optimizer (TUNIT's G step, which trains C too); with `fresh: [C]` its
    calls of C, and what is computed from them, see C as the iteration's earlier steps left it."""

    networks: list[str] = Field(min_length=1)
    minimize: dict[str, str | TermSpec] | None = None
    maximize: dict[str, str | TermSpec] | None = None
    clip: float | None = Field(default=None, gt=0)          # clamp every weight to [-clip, clip] after each step
    pool: dict[str, int] = Field(default_factory=dict)      # let name -> history pool size, in this player's step
    step_of: str | None = None                              # another step of this player: its networks and optimizer
    also_steps: list[str] = Field(default_factory=list)     # players whose networks its gradient also steps, with their optimizers
    fresh: list[str] = Field(default_factory=list)          # networks it reads as the earlier steps left them, never kept from before

    @property
    def sense(self) -> str:
        return "maximize" if self.maximize is not None else "minimize"

    @property
    def terms(self) -> dict[str, TermSpec]:
        raw = self.maximize if self.maximize is not None else (self.minimize or {})
        return {name: TermSpec(expr=value) if isinstance(value, str) else value for name, value in raw.items()}


class AdamSpec(_Model):
    lr: float = Field(default=2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)


class RMSpropSpec(_Model):
    lr: float = Field(default=5e-5, gt=0)
    alpha: float = Field(default=0.99, gt=0, lt=1)
    eps: float = Field(default=1e-8, gt=0)
    momentum: float = Field(default=0.0, ge=0)
    weight_decay: float = Field(default=0.0, ge=0)


class SGDSpec(_Model):
    lr: float = Field(gt=0)
    momentum: float = Field(default=0.0, ge=0)
    weight_decay: float = Field(default=0.0, ge=0)


class OptimizerSpec(_Model):
    """Exactly one of `adam`, `rmsprop`, `sgd`; optionally a learning-rate `schedule`, and settings
    of that optimizer for some of the player's networks (`networks: {M: {lr: 1.0e-6}}`: one
    parameter group per network, the player's settings for what a network's entry leaves out)."""

    adam: AdamSpec | None = None
    rmsprop: RMSpropSpec | None = None
    sgd: SGDSpec | None = None
    schedule: LRScheduleSpec | None = None
    networks: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def settings_of(self, network: str) -> _Model:
        """The optimizer's settings for one network: the player's, with the network's own in place."""
        own = self.networks.get(network)
        return self.settings if not own else type(self.settings).model_validate({**self.settings.model_dump(), **own})

    @property
    def kind(self) -> str:
        return next(name for name in ("adam", "rmsprop", "sgd") if getattr(self, name) is not None)

    @property
    def settings(self) -> _Model:
        return getattr(self, self.kind)


class JudgeSpec(_Model):
    """A network fitted to real data before training and then held fixed: it only evaluates.

    `judges: {C: {minimize: "E[ce(C(x), c_s)]", steps: 300}}` fits network C (declared under
    `networks:`, updated by no player) for 300 steps on training batches; `evaluate:` formulas
    may then apply it to generated images, e.g. `E[argmax(C(fake)) == c_t]`.
    """

    minimize: str
    steps: int = Field(default=300, gt=0)
    optim: OptimizerSpec = Field(default_factory=lambda: OptimizerSpec(adam=AdamSpec(lr=1e-3, betas=(0.9, 0.999))))


class KeepBestSpec(_Model):
    """`train.keep_best: {metric: error_XY, mode: min}`: keep the networks of the evaluation with the
    best value of one `evaluate:` metric (the lowest with `min`, the highest with `max`)."""

    metric: str
    mode: Literal["min", "max"] = "min"


class TrainSpec(_Model):
    steps: int = Field(default=2000, gt=0)
    epochs: int | None = Field(default=None, gt=0)  # instead of steps: passes over the dataset (train/epochs.py)
    batch_size: int = Field(default=16, gt=0)
    image_size: int = Field(default=32, ge=8)
    log_every: int = Field(default=25, gt=0)
    sample_every: int = Field(default=250, gt=0)
    checkpoint_every: int = Field(default=500, gt=0)
    eval_every: int = Field(default=250, gt=0)
    keep_best: KeepBestSpec | None = None
    # the network whose features fid, kid and diversity compare: `inception` or a judge's name
    features: str | None = None
    fid_weights: str | None = None  # the FID Inception weights file (pt_inception-2015-12-05), read, never downloaded


class EmaSpec(_Model):
    """`ema: {Dec: {decay: 0.999, start: 710}}`: an average that copies the network through
    iteration `start` - 1 and averages from `start` on (TUNIT's G_ema from iteration 66000)."""

    decay: float = Field(gt=0, lt=1)
    start: int = Field(default=0, ge=0)


class Spec(_Model):
    """A whole spec, validated; `source` locates each of its values, `path` names its file."""

    name: str
    paper: str | None = None
    data: dict[str, str] = Field(min_length=1)
    random: dict[str, str] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(default_factory=lambda: {"builtin": "shapes", "pairing": "unpaired"})
    networks: dict[str, NetworkSpec] = Field(min_length=1)
    let: dict[str, str] = Field(default_factory=dict)
    macros: dict[str, str] = Field(default_factory=dict)
    players: dict[str, PlayerSpec] = Field(min_length=1)
    schedule: list[str | dict[str, int]] | None = None
    optim: dict[str, OptimizerSpec] = Field(default_factory=dict)
    train: TrainSpec = Field(default_factory=TrainSpec)
    samples: list[str] = Field(default_factory=list)
    evaluate: dict[str, str] = Field(default_factory=dict)
    judges: dict[str, JudgeSpec] = Field(default_factory=dict)
    ema: dict[str, Annotated[float, Field(gt=0, lt=1)] | EmaSpec] = Field(default_factory=dict)  # network -> decay, or {decay, start}
    queues: dict[str, QueueSpec] = Field(default_factory=dict)  # queues of past values a loss reads (queues.py)

    _source: Source | None = PrivateAttr(default=None)
    _path: str | None = PrivateAttr(default=None)

    @property
    def ema_settings(self) -> dict[str, tuple[float, int]]:
        """(decay, start) of each `ema:` average; a bare decay starts at 0."""
        return {name: (value.decay, value.start) if isinstance(value, EmaSpec) else (float(value), 0)
                for name, value in self.ema.items()}

    @model_validator(mode="before")
    @classmethod
    def _crop_size_is_image_size(cls, data: Any) -> Any:
        # dataset.crop_size is the training image size; dataset_options.py says why
        return imply_image_size(data)

    @model_validator(mode="before")
    @classmethod
    def _averages_take_their_sources_arch(cls, data: Any) -> Any:
        return fill_averages(data)

    @model_validator(mode="before")
    @classmethod
    def _steps_take_their_players_networks(cls, data: Any) -> Any:
        """A player written `step_of: D` without `networks:` has D's. A `step_of` that names no
        player of its own gets a stand-in, so that names.py reports the `step_of` itself."""
        players = data.get("players") if isinstance(data, dict) else None
        if not isinstance(players, dict):
            return data
        filled = {}
        for name, player in players.items():
            if isinstance(player, dict) and isinstance(player.get("step_of"), str) and "networks" not in player:
                owner, seen = player, {name}
                while isinstance(owner, dict) and isinstance(owner.get("step_of"), str) and owner["step_of"] not in seen:
                    seen.add(owner["step_of"])
                    owner = players.get(owner["step_of"])
                networks = owner.get("networks") if isinstance(owner, dict) else None
                player = {**player, "networks": list(networks) if isinstance(networks, list) and networks else ["?"]}
            filled[name] = player
        return {**data, "players": filled}

    @property
    def source(self) -> Source:
        return self._source  # type: ignore[return-value]

    @property
    def path(self) -> str | None:
        return self._path

    def weights_file(self, network: str) -> Path | None:
        """The file of a network's `weights:`, relative to the folder of the spec file that wrote
        it (the current folder for a command-line override)."""
        written = self.networks[network].weights
        if written is None:
            return None
        path = Path(written).expanduser()
        if path.is_absolute():
            return path
        file = self.source.origin(("networks", network, "weights")).file if self.source is not None else "<spec>"
        return (Path.cwd() if file.startswith("<") else Path(file).resolve().parent) / path

    @property
    def kinds(self) -> dict[str, Kind]:
        """Every data variable's kind (the spec is validated, so each parses)."""
        return {name: parse_data_kind(text) for name, text in self.data.items()}

    @property
    def draws(self) -> dict[str, Draw]:
        return {name: parse_draw(text) for name, text in self.random.items()}

    @property
    def schedule_steps(self) -> list[tuple[str, int]]:
        """One iteration: (player, consecutive steps), e.g. [("D", 5), ("G", 1)] for `[{D: 5}, G]`."""
        steps = []
        for entry in self.schedule or list(self.players):
            steps.extend(entry.items() if isinstance(entry, dict) else [(entry, 1)])
        return steps

    def stepped_networks(self, player: str) -> list[str]:
        """The networks a player's step updates: its own, then those of the players it also steps
        (`also_steps:`), each with its own optimizer."""
        own = self.players[player]
        others = [net for other in own.also_steps if other in self.players for net in self.players[other].networks]
        return list(dict.fromkeys([*own.networks, *others]))

    @property
    def order(self) -> list[str]:
        """Players in schedule order (each once, first appearance)."""
        order = list(dict.fromkeys(name for name, _ in self.schedule_steps))
        return order + [name for name in self.players if name not in order]


# -- where each model sits -----------------------------------------------------------------------

# a `*` matches any key: the names a spec chooses (networks, players, terms, optimizers, judges)
MODELS_BY_PATH = {
    (): Spec,
    ("networks", "*"): NetworkSpec,
    ("networks", "*", "average"): AverageSpec,
    ("queues", "*"): QueueSpec,
    ("players", "*"): PlayerSpec,
    ("players", "*", "minimize", "*"): TermSpec,
    ("players", "*", "maximize", "*"): TermSpec,
    ("players", "*", "minimize", "*", "weight"): WeightSchedule,
    ("players", "*", "maximize", "*", "weight"): WeightSchedule,
    ("optim", "*"): OptimizerSpec,
    ("optim", "*", "adam"): AdamSpec,
    ("optim", "*", "rmsprop"): RMSpropSpec,
    ("optim", "*", "sgd"): SGDSpec,
    ("optim", "*", "schedule"): LRScheduleSpec,
    ("train",): TrainSpec,
    ("train", "keep_best"): KeepBestSpec,
    ("judges", "*"): JudgeSpec,
    ("ema", "*"): EmaSpec,
    ("judges", "*", "optim"): OptimizerSpec,
    ("judges", "*", "optim", "adam"): AdamSpec,
    ("judges", "*", "optim", "rmsprop"): RMSpropSpec,
    ("judges", "*", "optim", "sgd"): SGDSpec,
    ("judges", "*", "optim", "schedule"): LRScheduleSpec,
}


def model_at(path: tuple) -> type[BaseModel] | None:
    """The model that validates the mapping at `path` of a spec's data (`("optim", "D", "adam")`:
    `AdamSpec`), or None where the spec chooses the keys (`data:`, `let:`, a player's terms)."""
    for pattern, model in MODELS_BY_PATH.items():
        if len(pattern) == len(path) and all(p == "*" or p == q for p, q in zip(pattern, path)):
            return model
    return None
