"""Moving-average networks a loss reads: `C_ema: {average: {of: C, decay: 0.999}}`.

Such a network is its source's moving average (MoCo's key encoder, TUNIT's C_ema): the source's
arch, options and heads, starting from the source's initial weights, updated by the trainer once
per iteration after every step of the iteration (train/ema.py, `LossAverage`), never by a player.
A formula reads it as any network (`C_ema.style(x_tf)`); no gradient reaches its parameters.

The spec writes only `average:`; the model validator here fills the rest from the source's entry
before validation, so that the network is an ordinary `NetworkSpec` for everything downstream.
`check_averages` reports, at their place, what needs the whole spec.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lossgraph.language.errors import Problems, did_you_mean
from lossgraph.language.source import Source

# the source's keys an average does not take: its own weights come from the source, and it shares
# nothing (an average of shared parts is an average of each network that holds them)
_NOT_COPIED = ("share", "weights", "fixed", "average")


class AverageSpec(BaseModel):
    """`average: {of: C, decay: 0.999, start: 0, buffers_every: 1}`: after the steps of iteration
    i (from 0), the network copies C's weights while i < start, and from start on moves its
    parameters as `avg <- decay * avg + (1 - decay) * C`; it copies C's buffers (batch norm's
    statistics) after iterations 0, buffers_every, 2 * buffers_every, ..."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    of: str
    decay: float = Field(gt=0, lt=1)
    start: int = Field(default=0, ge=0)
    buffers_every: int = Field(default=1, gt=0)


def fill_averages(data: Any) -> Any:
    """A network written `{average: {of: C, ...}}` gets C's arch, options and heads (keys it writes
    itself win, and `check_averages` refuses any that differ). A source that is missing or not a
    mapping leaves a stand-in arch, so that names.py reports the `of:` itself."""
    networks = data.get("networks") if isinstance(data, dict) else None
    if not isinstance(networks, dict):
        return data
    filled = {}
    for name, net in networks.items():
        average = net.get("average") if isinstance(net, dict) else None
        if isinstance(average, dict):
            of = average.get("of")
            source = filled.get(of, networks.get(of)) if of != name and isinstance(of, str) else None
            if isinstance(source, dict) and isinstance(source.get("arch"), str):
                copied = {key: value for key, value in source.items() if key not in _NOT_COPIED}
            else:
                copied = {"arch": "?"}
            net = {**copied, **net}
        filled[name] = net
    return {**data, "networks": filled}


def check_averages(spec: Any, source: Source, problems: Problems, owner: dict[str, str]) -> None:
    """An average names another network, not itself an average, keeps its arch and options, and
    is updated by no player or judge (an `ema:` entry, which averages a trained network, is
    refused as names.py refuses any network no player trains)."""
    for name, net in spec.networks.items():
        average = net.average
        if average is None:
            continue
        at = ("networks", name, "average", "of")
        of = spec.networks.get(average.of)
        if of is None or average.of == name:
            problems.add(f"network '{name}' is the moving average of '{average.of}', which is not another network",
                         source.origin(at), did_you_mean(average.of, [n for n in spec.networks if n != name]))
            continue
        if of.average is not None:
            problems.add(f"network '{name}' averages '{average.of}', itself an average of '{of.average.of}'",
                         source.origin(at), f"average {of.average.of} instead")
        mine = net.model_dump(exclude={"average", *_NOT_COPIED})
        theirs = of.model_dump(exclude={"average", *_NOT_COPIED})
        differing = sorted(key for key in set(mine) | set(theirs) if mine.get(key) != theirs.get(key))
        if differing:
            problems.add(f"network '{name}' is the moving average of '{average.of}', so it has its arch and options, "
                         f"but it writes other {', '.join(differing)}", source.origin(("networks", name, differing[0])),
                         f"leave {', '.join(differing)} out: an average takes them from its source")
        for key in ("share", "weights", "fixed"):
            if getattr(net, key) not in (None, False):
                problems.add(f"network '{name}' is a moving average, so it takes no {key}:", source.origin(("networks", name, key)),
                             f"remove {key}: (an average starts from its source's weights and is never trained)")
        if name in owner:
            problems.add(f"network '{name}' is the moving average of '{average.of}', but player '{owner[name]}' updates it",
                         source.origin(("networks", name, "average")), f"remove it from player {owner[name]}'s networks: the trainer updates it")
        elif name in spec.judges:
            problems.add(f"network '{name}' is a moving average, so it cannot be a judge", source.origin(("judges", name), at_key=True))
