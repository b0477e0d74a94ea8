"""The spec: a YAML file checked into pydantic models, every value traceable to file:line:col.

`load(path_or_name)` reads a file (or a built-in spec by name, e.g. `discogan`), parses it with
the located safe loader in `source.py`, validates it against the models below, then checks what
pydantic cannot: that names are unique identifiers, that players name declared networks, that
schedule and optimizer settings name players. Every problem is collected, with a did-you-mean
hint where a name is close to a valid one, before one `SpecError` is raised.

Formulas stay text here; `lower.py` turns them into IR. Arch options (`width: 16`) ride along as
extra keys of a network and are checked against the arch's own options.
"""

from __future__ import annotations

import keyword
import unicodedata
from importlib import resources
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from lossgraph.language.errors import Problem, Problems, SpecError, did_you_mean
from lossgraph.language.macros import parse_signature
from lossgraph.language.kinds import DATA_KINDS, DRAW_KINDS, Draw, Kind, parse_data_kind, parse_draw
from lossgraph.compiler.ops import BUILTINS
from lossgraph.language.source import Source, dotted

# Names a formula gives a meaning of its own: the expectation and the builtins. Names the generated
# code uses (`torch`, `parameters`, ...) are free: codegen renames a clash (codegen.GENERATED_NAMES).
RESERVED = {"E"} | set(BUILTINS)


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

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TermSpec(_Model):
    """A weighted term: `cycle: {weight: 10, expr: "E[...]"}`; a bare string has weight 1."""

    expr: str
    weight: float = 1.0
    updates: list[str] | None = None  # the networks of its player this term updates (default: all)


class PlayerSpec(_Model):
    networks: list[str] = Field(min_length=1)
    minimize: dict[str, str | TermSpec] | None = None
    maximize: dict[str, str | TermSpec] | None = None
    clip: float | None = Field(default=None, gt=0)          # clamp every weight to [-clip, clip] after each step
    pool: dict[str, int] = Field(default_factory=dict)      # let name -> history pool size, in this player's step

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


class LRScheduleSpec(_Model):
    """A learning-rate schedule, stepped once per iteration of the schedule (CycleGAN's linear policy).

    `{constant: 1000, decay: 1000}`: the optimizer's `lr` for steps 1..constant, then at step n
    `lr * (1 - (n - constant) / (decay + 1))`, so the last decay step (constant + decay) runs at
    `lr / (decay + 1)` and every later step at 0. CycleGAN's n_epochs / n_epochs_decay, in steps.
    """

    constant: int = Field(default=0, ge=0)
    decay: int = Field(gt=0)

    def factor(self, step: int) -> float:
        """The learning rate of 1-based `step` as a fraction of the optimizer's `lr`."""
        return max(0.0, 1.0 - max(0, step - self.constant) / (self.decay + 1))


class OptimizerSpec(_Model):
    """Exactly one of `adam`, `rmsprop`, `sgd`; optionally a learning-rate `schedule`."""

    adam: AdamSpec | None = None
    rmsprop: RMSpropSpec | None = None
    sgd: SGDSpec | None = None
    schedule: LRScheduleSpec | None = None

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


class TrainSpec(_Model):
    steps: int = Field(default=2000, gt=0)
    batch_size: int = Field(default=16, gt=0)
    image_size: int = Field(default=32, ge=8)
    log_every: int = Field(default=25, gt=0)
    sample_every: int = Field(default=250, gt=0)
    checkpoint_every: int = Field(default=500, gt=0)
    eval_every: int = Field(default=250, gt=0)




class Spec(_Model):
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
    ema: dict[str, Annotated[float, Field(gt=0, lt=1)]] = Field(default_factory=dict)  # network -> decay of its weights' moving average

    _source: Source | None = PrivateAttr(default=None)
    _path: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> Source:
        return self._source  # type: ignore[return-value]

    @property
    def path(self) -> str | None:
        return self._path

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

    @property
    def order(self) -> list[str]:
        """Players in schedule order (each once, first appearance)."""
        order = list(dict.fromkeys(name for name, _ in self.schedule_steps))
        return order + [name for name in self.players if name not in order]


# -- loading -------------------------------------------------------------------------------------


def builtin_specs() -> dict[str, Any]:
    """Built-in specs by name: the `specs/` folder, installed as package data."""
    folder = resources.files("lossgraph.specs")
    # stdlib.yaml holds the standard macros, not a spec
    return {entry.name[:-5]: entry for entry in folder.iterdir() if entry.name.endswith(".yaml") and entry.name != "stdlib.yaml"}


def resolve(path_or_name: str | FilePath) -> tuple[str, str]:
    """(display path, text) of a spec file, or of a built-in spec given by name."""
    path = FilePath(path_or_name)
    if path.is_file():
        try:
            return str(path_or_name), path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise SpecError(f"{path}: cannot read spec: {error}") from None
    name = str(path_or_name)
    known = builtin_specs()
    stem = name[:-5] if name.endswith(".yaml") else name
    if not path.exists() and FilePath(stem).name in known:
        stem = FilePath(stem).name  # `lossgraph run specs/discogan.yaml` outside a checkout
    if stem in known:
        return f"{stem}.yaml", known[stem].read_text(encoding="utf-8")
    if path.is_dir():
        raise SpecError(f"{path}: is a folder, not a spec file")
    hint = did_you_mean(stem, known)
    raise SpecError(f"no spec file '{name}' and no built-in spec of that name" + (f" ({hint})" if hint else ""))


def load(path_or_name: str | FilePath | Spec, overrides: Sequence[str] = ()) -> Spec:
    """A spec from a file or a built-in name; `overrides` are `KEY.PATH=VALUE` texts applied
    after `extends:` and validated with the rest (see overrides.py)."""
    if isinstance(path_or_name, Spec):
        if not overrides:
            return path_or_name
        from lossgraph.language.overrides import spec_source_and_data

        source, data = spec_source_and_data(path_or_name)
        return _validated(*_overridden(source, data, overrides), path_or_name.path or source.file)
    display, text = resolve(path_or_name)
    return loads(text, display, overrides)


def loads(text: str, file: str = "<spec>", overrides: Sequence[str] = ()) -> Spec:
    source, data = Source.parse(text, file)
    if "extends" in data:
        source, data = _extend(source, data, file, [file])
    if overrides:
        source, data = _overridden(source, data, overrides)
    return _validated(source, data, file)


def _overridden(source, data: dict, overrides: Sequence[str]):
    from lossgraph.language.overrides import apply_overrides

    return apply_overrides(source, data, overrides)


def _validated(source, data: dict, file: str) -> Spec:
    problems = Problems()
    if isinstance(data, dict) and set(data) == {"macros"}:  # e.g. specs/stdlib.yaml
        problems.add("a macro library, not a spec: the file has no name, data, networks or players",
                     source.origin(("macros",), at_key=True),
                     "specs call the standard library's macros (specs/stdlib.yaml) by name, and declare their own under `macros:`")
        problems.raise_if_any()
    try:
        spec = Spec.model_validate(data)
    except ValidationError as error:
        _collect_validation(error, source, data, problems)
        problems.raise_if_any()
        raise  # unreachable: a ValidationError always has errors
    spec._source = source
    spec._path = file
    _check_names(spec, source, problems)
    problems.raise_if_any()
    return spec


MAX_EXTENDS = 16


def _extend(source: Source, data: dict, file: str, chain: list[str]):
    """`data` laid over the spec it extends: mappings merge key by key (so a term is overridden
    by name), any other value replaces, and `null` removes a key. Positions stay with the file
    that wrote each value."""
    base_name = data.pop("extends")
    where = source.origin(("extends",))
    if not isinstance(base_name, str):
        raise SpecError(Problem("extends names a spec: a file or a built-in spec's name", where))
    folder = FilePath(file).parent if FilePath(file).is_file() else FilePath.cwd()
    candidate = folder / base_name
    target = str(candidate) if candidate.is_file() else base_name
    try:
        display, text = resolve(target)
    except SpecError:
        raise SpecError(Problem(f"extends: no spec '{base_name}'", where, did_you_mean(base_name, builtin_specs()))) from None
    if display in chain or len(chain) > MAX_EXTENDS:
        raise SpecError(Problem(f"extends forms a cycle: {' -> '.join(chain + [display])}", where))
    base_source, base_data = Source.parse(text, display)
    if "extends" in base_data:
        base_source, base_data = _extend(base_source, base_data, display, chain + [display])
    return Layered(source, base_source), _merge(base_data, data)


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = _merge(base.get(key), value)
        return merged
    return over


class Layered:
    """Positions of a derived spec: its own file's where it wrote a value, else its base's."""

    def __init__(self, own: Source, base: "Source | Layered"):
        self.own = own
        self.base = base
        self.file = own.file

    def known(self, path: tuple) -> int:
        """The length of the longest prefix of `path` some layer wrote."""
        return max(_known(self.own, path), self.base.known(path) if isinstance(self.base, Layered) else _known(self.base, path))

    def origin(self, path: tuple, span=None, *, at_key: bool = False):
        base = self.base.known(path) if isinstance(self.base, Layered) else _known(self.base, path)
        return (self.own if _known(self.own, path) >= base else self.base).origin(path, span, at_key=at_key)


def _known(source: Source, path: tuple) -> int:
    for length in range(len(path), -1, -1):
        if path[:length] in source.values:
            return length
    return -1


_MODELS_BY_PATH = {
    (): Spec,
    ("networks", "*"): NetworkSpec,
    ("players", "*"): PlayerSpec,
    ("players", "*", "minimize", "*"): TermSpec,
    ("players", "*", "maximize", "*"): TermSpec,
    ("optim", "*"): OptimizerSpec,
    ("optim", "*", "adam"): AdamSpec,
    ("optim", "*", "rmsprop"): RMSpropSpec,
    ("optim", "*", "sgd"): SGDSpec,
    ("optim", "*", "schedule"): LRScheduleSpec,
    ("train",): TrainSpec,
    ("judges", "*"): JudgeSpec,
    ("judges", "*", "optim"): OptimizerSpec,
    ("judges", "*", "optim", "adam"): AdamSpec,
    ("judges", "*", "optim", "schedule"): LRScheduleSpec,
}


def _model_at(path: tuple) -> type[BaseModel] | None:
    for pattern, model in _MODELS_BY_PATH.items():
        if len(pattern) == len(path) and all(p == "*" or p == q for p, q in zip(pattern, path)):
            return model
    return None


def _data_path(loc: tuple, data: Any) -> tuple:
    """The part of a pydantic `loc` that addresses the data (drops union-member tags)."""
    path: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
    return tuple(path)


def _value_at(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def _collect_validation(error: ValidationError, source: Source, data: Any, problems: Problems) -> None:
    seen: set[tuple] = set()
    for item in error.errors():
        loc = tuple(item["loc"])
        path = _data_path(loc, data)
        kind = item["type"]
        if kind == "extra_forbidden":
            model = _model_at(path[:-1])
            fields = list(model.model_fields) if model else []
            if (path, kind) in seen:
                continue
            seen.add((path, kind))
            problems.add(f"unknown key '{path[-1]}'", source.origin(path, at_key=True), did_you_mean(str(path[-1]), fields))
            continue
        if (path, "value") in seen:
            continue  # a union reports one error per member; one is enough
        if kind == "string_type" and _model_at(path) is TermSpec and isinstance(_value_at(data, path), dict):
            continue  # a term written as a mapping: the TermSpec member's errors say what is wrong
        if kind == "missing":
            missing = loc[-1]
            if (path, missing) not in seen:  # every missing key of a mapping is reported
                seen.add((path, missing))
                problems.add(f"missing key '{missing}'", source.origin(path), f"add '{missing}:'")
            continue
        seen.add((path, "value"))
        problems.add(_message(item, path, source), source.origin(path))


def _message(item: dict, path: tuple, source: Source) -> str:
    kind = item["type"]
    if path and path[0] in ("players",) and len(path) == 4 and kind in ("string_type", "model_type", "model_attributes_type", "dict_type"):
        return "a term is a formula string or {weight: <number>, expr: <formula>}"
    if path[:1] == ("ema",):
        if len(path) == 2:
            return f"an EMA decay is a number strictly between 0 and 1, e.g. 0.999 ({item['msg'][0].lower() + item['msg'][1:]})"
        return "ema maps a network to the decay of its weights' moving average, e.g. {G_XY: 0.999}"
    return item["msg"][0].lower() + item["msg"][1:]


def _check_names(spec: Spec, source: Source, problems: Problems) -> None:
    declared: dict[str, tuple] = {}

    def claim(name: str, path: tuple, what: str) -> None:
        if not name.isidentifier() or keyword.iskeyword(name):
            problems.add(f"{what} name '{name}' is not a valid name", source.origin(path, at_key=True), "use letters, digits and _")
        elif unicodedata.normalize("NFKC", name) != name:
            # Python's parser NFKC-normalizes names, so a formula could never refer to this one
            normal = unicodedata.normalize("NFKC", name)
            problems.add(f"{what} name '{name}' reads as '{normal}' in formulas", source.origin(path, at_key=True), f"write '{normal}'")
        elif name in RESERVED and not (what == "network" and name == "E"):
            # a network may be named E (BicycleGAN's encoder): E(...) is a call, E[...] the expectation
            problems.add(f"{what} name '{name}' is reserved", source.origin(path, at_key=True), "choose another name")
        elif name in declared:
            problems.add(f"'{name}' is already declared at {dotted(declared[name])}", source.origin(path, at_key=True), "names of data, lets and networks must differ")
        else:
            declared[name] = path

    for name in spec.data:
        claim(name, ("data", name), "data")
    for name in spec.networks:
        claim(name, ("networks", name), "network")
    for name in spec.random:
        claim(name, ("random", name), "random variable")
    for key in spec.macros:
        try:
            parse_signature(key)
        except ValueError as error:
            problems.add(str(error), source.origin(("macros", key), at_key=True), "e.g. nsgan_d(D, real, fake): E[log(D(real))] + E[log(1 - D(fake))]")
    for name in spec.let:
        claim(name, ("let", name), "let")
    kind_checks = (
        ("data", parse_data_kind, DATA_KINDS, "e.g. image, label(10), vector(8)"),
        ("random", parse_draw, DRAW_KINDS, "e.g. normal(8), uniform(10), label(5), normal_like(E.mu(y))"),
    )
    for section, parse_kind, valid, example in kind_checks:
        for name, kind in getattr(spec, section).items():
            try:
                parse_kind(kind)
            except ValueError as error:
                word = kind.split("(")[0].strip() if isinstance(kind, str) else ""
                hint = did_you_mean(word, valid) if word not in valid else example
                problems.add(str(error), source.origin((section, name)), hint)
    owners = {net: player for player, p in spec.players.items() for net in p.networks}
    for name, net in spec.networks.items():
        for other in net.share or {}:
            path = ("networks", name, "share", other)
            if other not in spec.networks or other == name:
                problems.add(f"'{name}' shares parts with unknown network '{other}'", source.origin(path, at_key=True), did_you_mean(other, [n for n in spec.networks if n != name]))
            elif owners.get(other) != owners.get(name):
                problems.add(f"'{name}' and '{other}' share parameters but belong to different players", source.origin(path, at_key=True), "shared parameters are stepped by one player")
        if net.heads is not None:
            if not net.heads:
                problems.add("heads: name at least one head", source.origin(("networks", name, "heads")))
            if "output" in (net.model_fields_set or set()):
                problems.add("give either output: or heads:, not both", source.origin(("networks", name, "output"), at_key=True), "a head's entry says how it is read")
            for head in net.heads:
                if not head.isidentifier() or head.startswith("_"):
                    problems.add(f"head name '{head}' is not a valid name", source.origin(("networks", name, "heads", head), at_key=True))

    owner: dict[str, str] = {}
    for player_name, player in spec.players.items():
        if not player_name.isidentifier():
            problems.add(f"player name '{player_name}' is not a valid name", source.origin(("players", player_name), at_key=True))
        if (player.minimize is None) == (player.maximize is None):
            problems.add(
                "a player has exactly one of 'minimize' or 'maximize'",
                source.origin(("players", player_name), at_key=True),
            )
        elif not player.terms:
            problems.add("a player needs at least one term", source.origin(("players", player_name, player.sense)))
        for index, net in enumerate(player.networks):
            path = ("players", player_name, "networks", index)
            if net not in spec.networks:
                problems.add(f"unknown network '{net}'", source.origin(path), did_you_mean(net, spec.networks))
            elif net in owner:
                problems.add(f"network '{net}' is already updated by player '{owner[net]}'", source.origin(path), "each network belongs to one player")
            else:
                owner[net] = player_name
        for term in player.terms:
            if not term.isidentifier():
                problems.add(f"term name '{term}' is not a valid name", source.origin(("players", player_name, player.sense, term), at_key=True))
    for index, entry in enumerate(spec.schedule or []):
        items = entry.items() if isinstance(entry, dict) else [(entry, 1)]
        if isinstance(entry, dict) and len(entry) != 1:
            problems.add("a repeated schedule entry names one player: {D: 5}", source.origin(("schedule", index)))
        for name, count in items:
            if name not in spec.players:
                problems.add(f"unknown player '{name}' in schedule", source.origin(("schedule", index)), did_you_mean(name, spec.players))
            elif count < 1:
                problems.add(f"player '{name}' must step at least once", source.origin(("schedule", index)))
    for player_name, player in spec.players.items():
        for term_name, term in player.terms.items():
            for index, net in enumerate(term.updates or []):
                if net not in player.networks:
                    path = ("players", player_name, player.sense, term_name, "updates", index)
                    problems.add(f"term '{term_name}' can only update networks of player '{player_name}'", source.origin(path), did_you_mean(net, player.networks))
        for let_name, size in player.pool.items():
            path = ("players", player_name, "pool", let_name)
            if let_name not in spec.let:
                problems.add(f"a history pool holds a let-bound value; '{let_name}' is not a let", source.origin(path, at_key=True), did_you_mean(let_name, spec.let))
            elif size < 1:
                problems.add("a history pool holds at least one image", source.origin(path))
    for name in spec.judges:
        path = ("judges", name)
        if name not in spec.networks:
            problems.add(f"a judge is a network of networks:; '{name}' is not one", source.origin(path, at_key=True), did_you_mean(name, spec.networks))
        elif name in owner:
            problems.add(f"network '{name}' is updated by player '{owner[name]}', so it cannot be a judge", source.origin(path, at_key=True), "a judge is fitted before training and held fixed: give it a network of its own")
        elif name in spec.players:
            problems.add(f"judge '{name}' has the name of a player", source.origin(path, at_key=True), "rename the network")
    for name in spec.optim:
        if name not in spec.players:
            problems.add(f"optimizer for unknown player '{name}'", source.origin(("optim", name), at_key=True), did_you_mean(name, spec.players))
    for name, optimizer in spec.optim.items():
        chosen = [kind for kind in ("adam", "rmsprop", "sgd") if getattr(optimizer, kind) is not None]
        if len(chosen) != 1:
            problems.add("choose exactly one optimizer: adam, rmsprop or sgd", source.origin(("optim", name)))
    for name in spec.ema:
        path = ("ema", name)
        if name not in spec.networks:
            problems.add(f"unknown network '{name}'", source.origin(path, at_key=True), did_you_mean(name, spec.networks))
        elif name not in owner:
            problems.add(f"network '{name}' is updated by no player, so its average would never move",
                         source.origin(path, at_key=True), "keep an EMA of a network that a player trains")

