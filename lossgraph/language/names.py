"""The names of a spec: what pydantic cannot check, because it needs the whole spec.

`check_names` collects, with a did-you-mean hint where a name is close to a valid one:

- data, random variables, lets and networks: valid identifiers that a formula can spell (Python
  reads names NFKC-normalised), each declared once across the four;
- data and random kinds that parse (`image`, `label(10)`, `normal(8)`), macro signatures;
- player, term and head names: identifiers that read as themselves after NFKC normalisation;
- players: exactly one of minimize/maximize, networks that exist and belong to one player;
  schedule entries, optimizers, history pools, judges, EMAs and `share:` that name what exists;
  a term's `updates:` among the networks its step updates; `also_steps:` naming other players of
  their own, `fresh:` networks the step does not update;
- `train.keep_best` naming an `evaluate:` metric, `train.features` naming a judge (or `inception`).

Names a formula gives a meaning of its own (`E`, `log`, `l1`, ...) are refused where formulas get
their meaning, in `compiler/passes/lower.py`: the op table is the compiler's, not the language's.
"""

from __future__ import annotations

import keyword
import unicodedata

from lossgraph.language.averages import check_averages
from lossgraph.language.errors import Problems, did_you_mean
from lossgraph.language.kinds import DATA_KINDS, DRAW_KINDS, parse_data_kind, parse_draw
from lossgraph.language.macros import parse_signature
from lossgraph.language.schema import Spec
from lossgraph.language.source import Source, dotted


def _check_network_settings(spec: Spec, player: str, kind: str, source: Source, problems: Problems) -> None:
    """`optim.G.networks: {M: {lr: 1.0e-6}}`: networks of player G, settings its optimizer has."""
    from pydantic import ValidationError

    optimizer = spec.optim[player]
    fields = list(type(optimizer.settings).model_fields)
    for network, own in optimizer.networks.items():
        path = ("optim", player, "networks", network)
        if network not in spec.players[player].networks:
            problems.add(f"'{network}' is not a network of player '{player}'", source.origin(path, at_key=True),
                         did_you_mean(network, spec.players[player].networks))
            continue
        if not isinstance(own, dict):
            problems.add(f"a network's settings are a mapping of {kind} settings, e.g. {{lr: 1.0e-6}}", source.origin(path))
            continue
        unknown = [key for key in own if key not in fields]
        for key in unknown:
            problems.add(f"unknown {kind} setting '{key}'", source.origin(path + (key,), at_key=True), did_you_mean(str(key), fields))
        if unknown:
            continue
        try:
            optimizer.settings_of(network)
        except ValidationError as error:
            for item in error.errors():
                key = item["loc"][0] if item["loc"] else None
                problems.add(item["msg"][0].lower() + item["msg"][1:], source.origin(path + ((key,) if key in own else ())))


def _check_step_of(spec: Spec, name: str, source: Source, problems: Problems) -> None:
    """`step_of: D`: D is a player of its own (not itself another's step); the step has D's
    networks and optimizer, so neither its own `networks:`, `clip:` nor `optim:` entry."""
    player = spec.players[name]
    path = ("players", name, "step_of")
    owner = spec.players.get(player.step_of)
    if owner is None or player.step_of == name:
        problems.add(f"step_of names a player, and '{player.step_of}' is not another one", source.origin(path),
                     did_you_mean(player.step_of, [other for other in spec.players if other != name]))
    elif owner.step_of is not None:
        problems.add(f"'{player.step_of}' is itself a step of '{owner.step_of}'", source.origin(path), f"write step_of: {owner.step_of}")
    elif player.networks != owner.networks:
        problems.add(f"a step of '{player.step_of}' updates its networks ({', '.join(owner.networks)})",
                     source.origin(("players", name, "networks")), "leave networks: out")
    if player.clip is not None:
        problems.add(f"a step of '{player.step_of}' clips as '{player.step_of}' does", source.origin(("players", name, "clip"), at_key=True),
                     f"give clip: to player '{player.step_of}'")
    if name in spec.optim:
        problems.add(f"a step of '{player.step_of}' takes its optimizer", source.origin(("optim", name), at_key=True),
                     f"give the settings to optim.{player.step_of}")


def _check_also_steps(spec: Spec, name: str, source: Source, problems: Problems) -> None:
    """`also_steps: [C]`: other players of their own, each once, whose networks are not the step's."""
    player, seen = spec.players[name], set()
    mine = set(player.networks)
    for index, other in enumerate(player.also_steps):
        path = ("players", name, "also_steps", index)
        named = spec.players.get(other)
        if other == name or (player.step_of is not None and other == player.step_of):
            problems.add(f"'{other}' is the player this step steps already", source.origin(path),
                         "also_steps names other players, whose networks the step's gradient also updates")
        elif named is None:
            problems.add(f"unknown player '{other}' in also_steps", source.origin(path),
                         did_you_mean(other, [p for p in spec.players if p != name]))
        elif named.step_of is not None:
            problems.add(f"'{other}' is a step of '{named.step_of}', not a player with networks of its own", source.origin(path),
                         f"write {named.step_of}: its networks are stepped with its optimizer")
        elif other in seen:
            problems.add(f"player '{other}' is named twice in also_steps", source.origin(path), "name each player once")
        elif mine & set(named.networks):
            both = ", ".join(net for net in named.networks if net in mine)
            problems.add(f"player '{other}' updates {both}, which this step updates with its own optimizer", source.origin(path),
                         "each network is stepped by one optimizer: leave it out of one of the two")
        seen.add(other)


def _check_fresh(spec: Spec, name: str, source: Source, problems: Problems) -> None:
    """`fresh: [C]`: networks that exist and that the step does not update itself."""
    stepped = set(spec.stepped_networks(name))
    for index, net in enumerate(spec.players[name].fresh):
        path = ("players", name, "fresh", index)
        if net not in spec.networks:
            problems.add(f"unknown network '{net}' in fresh", source.origin(path), did_you_mean(net, spec.networks))
        elif net in stepped:
            problems.add(f"'{net}' is updated by this step, whose calls of it are always current", source.origin(path),
                         "fresh names networks of other players, read as the earlier steps left them: leave it out")


def _check_label(name: str, what: str, path: tuple, source: Source, problems: Problems, *,
                 keywords: bool = True, read_in: str = "the generated code") -> bool:
    """A name that reads as itself; False, with the problem added, where it does not. Python
    NFKC-normalises names, so terms `ﬁx` and `fix` would be one variable in the generated code
    (one term's value lost) and a formula could never spell a let named `ﬁx`. `keywords`: whether
    a Python keyword will do (a term's is renamed in the code; a formula cannot spell one)."""
    if not name.isidentifier() or (not keywords and keyword.iskeyword(name)):
        problems.add(f"{what} name '{name}' is not a valid name", source.origin(path, at_key=True), "use letters, digits and _")
        return False
    normal = unicodedata.normalize("NFKC", name)
    if normal != name:
        problems.add(f"{what} name '{name}' reads as '{normal}' in {read_in}", source.origin(path, at_key=True), f"write '{normal}'")
        return False
    return True


def check_names(spec: Spec, source: Source, problems: Problems) -> None:
    """Add to `problems` every name that is malformed, taken twice or refers to nothing."""
    declared: dict[str, tuple] = {}

    def claim(name: str, path: tuple, what: str) -> None:
        if not _check_label(name, what, path, source, problems, keywords=False, read_in="formulas"):
            return
        if name in declared:
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
    for name in spec.queues:
        claim(name, ("queues", name), "queue")
    kind_checks = (
        ("data", parse_data_kind, DATA_KINDS, "e.g. image, label(10), vector(8)"),
        ("random", parse_draw, DRAW_KINDS, "e.g. normal(8), uniform(10), label(5), normal_like(E.mu(y)), augmented(x)"),
    )
    for section, parse_kind, valid, example in kind_checks:
        for name, kind in getattr(spec, section).items():
            try:
                parse_kind(kind)
            except ValueError as error:
                word = kind.split("(")[0].strip() if isinstance(kind, str) else ""
                hint = did_you_mean(word, valid) if word not in valid else example
                problems.add(str(error), source.origin((section, name)), hint)
    for name, kind in spec.random.items():  # augmented(x): a view of an image of the batch
        try:
            draw = parse_draw(kind) if isinstance(kind, str) and kind.strip().startswith("augmented(") else None
        except ValueError:
            continue  # reported above
        try_kind = None
        if draw is not None and draw.of in spec.data:
            try:
                try_kind = parse_data_kind(spec.data[draw.of])
            except ValueError:
                continue  # reported above
        if draw is not None and (try_kind is None or try_kind.kind != "image"):
            images = [n for n, k in spec.data.items() if isinstance(k, str) and k.strip().startswith("image")]
            problems.add(f"augmented({draw.of}) is a view of an image of the batch, but '{draw.of}' is not an image data variable",
                         source.origin(("random", name)), did_you_mean(draw.of, images) or "declare it under data: as image")
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
                if head.startswith("_"):
                    problems.add(f"head name '{head}' is not a valid name", source.origin(("networks", name, "heads", head), at_key=True))
                else:
                    _check_label(head, "head", ("networks", name, "heads", head), source, problems)

    owner: dict[str, str] = {}
    for player_name, player in spec.players.items():
        _check_label(player_name, "player", ("players", player_name), source, problems)
        if (player.minimize is None) == (player.maximize is None):
            problems.add(
                "a player has exactly one of 'minimize' or 'maximize'",
                source.origin(("players", player_name), at_key=True),
            )
        elif not player.terms:
            problems.add("a player needs at least one term", source.origin(("players", player_name, player.sense)))
        _check_also_steps(spec, player_name, source, problems)
        _check_fresh(spec, player_name, source, problems)
        if player.step_of is not None:
            _check_step_of(spec, player_name, source, problems)
            continue  # its networks are its player's
        for index, net in enumerate(player.networks):
            path = ("players", player_name, "networks", index)
            if net not in spec.networks:
                problems.add(f"unknown network '{net}'", source.origin(path), did_you_mean(net, spec.networks))
            elif net in owner:
                problems.add(f"network '{net}' is already updated by player '{owner[net]}'", source.origin(path), "each network belongs to one player")
            else:
                owner[net] = player_name
        for term in player.terms:
            _check_label(term, "term", ("players", player_name, player.sense, term), source, problems)
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
            stepped = spec.stepped_networks(player_name)  # with those of the players it also steps
            for index, net in enumerate(term.updates or []):
                if net not in stepped:
                    path = ("players", player_name, player.sense, term_name, "updates", index)
                    also = " or of the players it also steps" if player.also_steps else ""
                    problems.add(f"term '{term_name}' can only update networks of player '{player_name}'{also}", source.origin(path), did_you_mean(net, stepped))
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
    check_averages(spec, source, problems, owner)
    for name, net in spec.networks.items():
        if net.fixed and name in owner:
            problems.add(f"network '{name}' is fixed, but player '{owner[name]}' updates it", source.origin(("networks", name, "fixed")),
                         f"remove it from player {owner[name]}'s networks, or drop fixed: true")
        elif net.fixed and name in spec.judges:
            problems.add(f"network '{name}' is fixed, but it is a judge, fitted before training", source.origin(("networks", name, "fixed")),
                         "a judge is held fixed once fitted already: drop fixed: true, or the judge")
        path = spec.weights_file(name)
        if path is not None and not path.is_file():
            problems.add(f"no weights file {path}", source.origin(("networks", name, "weights")),
                         "a path relative to the spec's folder, to a state dict saved by torch.save or safetensors")
    for name in spec.optim:
        if name not in spec.players:
            problems.add(f"optimizer for unknown player '{name}'", source.origin(("optim", name), at_key=True), did_you_mean(name, spec.players))
    for name, optimizer in spec.optim.items():
        chosen = [kind for kind in ("adam", "rmsprop", "sgd") if getattr(optimizer, kind) is not None]
        if len(chosen) != 1:
            problems.add("choose exactly one optimizer: adam, rmsprop or sgd", source.origin(("optim", name)))
        elif name in spec.players and spec.players[name].step_of is None:
            _check_network_settings(spec, name, chosen[0], source, problems)
    for name in spec.ema:
        path = ("ema", name)
        if name not in spec.networks:
            problems.add(f"unknown network '{name}'", source.origin(path, at_key=True), did_you_mean(name, spec.networks))
        elif name not in owner:
            problems.add(f"network '{name}' is updated by no player, so its average would never move",
                         source.origin(path, at_key=True), "keep an EMA of a network that a player trains")
    check_evaluation_settings(spec, source, problems)


INCEPTION = "inception"  # train.features: the FID Inception network, from train.fid_weights


def check_evaluation_settings(spec: Spec, source: Source, problems: Problems) -> None:
    """`train.keep_best` names an `evaluate:` metric; `train.features` a judge or `inception`."""
    best = spec.train.keep_best
    if best is not None and best.metric not in spec.evaluate:
        path = ("train", "keep_best", "metric")
        if spec.evaluate:
            names = ", ".join(spec.evaluate)
            close = did_you_mean(best.metric, spec.evaluate)
            hint = f"{close} (evaluate: defines {names})" if close and close.startswith("did") else f"evaluate: defines {names}"
        else:
            hint = "the spec has no evaluate: section; define the metric there first"
        problems.add(f"unknown metric '{best.metric}'", source.origin(path), hint)
    features = spec.train.features
    if features is not None and features != INCEPTION and features not in spec.judges:
        choices = [INCEPTION, *spec.judges]
        problems.add(f"'{features}' is neither a judge nor {INCEPTION}", source.origin(("train", "features")),
                     did_you_mean(features, choices) or f"choose one of {', '.join(choices)}")
    if features == INCEPTION and spec.train.fid_weights is None:
        problems.add("inception needs the FID Inception weights file", source.origin(("train", "features")),
                     "give train.fid_weights: PATH (or run with --fid-weights PATH), e.g. pt_inception-2015-12-05-6726825d.pth")
