"""Where label variables and held-out extras come from: the config's `labels:` and `held_out:`.

A dataset offers *source functions* (`FUNCTIONS`: `shape(x_s)`, `class(x)`, `restyle(x, c_t)`,
...); `bind(dataset, labels, held_out)` parses each mapping's entries into `Source`s, checks them
against the spec's variables and the dataset's functions, and returns what was bound. Every
mistake is a `DataError` naming its key (`dataset.labels.c_s`) and the valid choices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from lossgraph.data.variables import kind_text, quoted, suggest
from lossgraph.language.errors import DataError, did_you_mean
from lossgraph.language.kinds import SOURCE_CALL, Kind

_NAME = re.compile(r"^[A-Za-z_]\w*$")


@dataclass(frozen=True)
class SourceFunction:
    """A function the config may use for labels (`labels:`) or held-out extras (`held_out:`).

    Every function reads an image variable (its scene, file or style); one with `takes_label`
    also reads a label variable bound in `labels:` or `held_out:`, as in `restyle(x, c_t)`.
    """

    name: str
    help: str                   # one line for messages and `describe`
    takes_label: bool = False
    held_out_only: bool = False

    @property
    def usage(self) -> str:
        return f"{self.name}(IMAGE, LABEL)" if self.takes_label else f"{self.name}(IMAGE)"


@dataclass(frozen=True)
class Source:
    """One parsed source, e.g. `shape(x_s)`: function `shape` of image variable `x_s`."""

    function: str
    image: str
    label: str | None = None

    def __str__(self) -> str:
        return f"{self.function}({self.image}, {self.label})" if self.label else f"{self.function}({self.image})"


class Dataset(Protocol):
    """What `bind` reads of a dataset (dataset.py's `Dataset` has it all)."""

    FUNCTIONS: Mapping[str, SourceFunction]  # the source functions it offers, by name
    NO_LABELS_HINT: str  # where a dataset without labels sends someone who needs them
    kinds: Mapping[str, Kind]  # the spec's data variables
    images: tuple[str, ...]
    label_variables: tuple[str, ...]

    def source_kind(self, source: Source, key: str) -> Kind:
        """The kind of value `source` gives here; a DataError naming `key` when it cannot."""

    def check_label_argument(self, source: Source, label: Source, key: str) -> None:
        """Refuse a label that `source`, a function taking one, cannot read."""


@dataclass(frozen=True)
class Bound:
    """What `bind` found: each label variable's source, each held-out extra's source and kind."""

    sources: dict[str, Source] = field(default_factory=dict)
    extras: dict[str, Source] = field(default_factory=dict)
    held_out_kinds: dict[str, Kind] = field(default_factory=dict)


def bind(dataset: Dataset, labels: Any = None, held_out: Any = None) -> Bound:
    """Check the `labels:` and `held_out:` mappings against `dataset` and parse their sources."""
    labels = _mapping(labels, "labels")
    held_out = _mapping(held_out, "held_out")
    _check_label_names(dataset, labels)
    parsed: dict[str, Source] = {}
    for name, text in labels.items():
        parsed[name] = _parse(dataset, text, f"dataset.labels.{name}", held_out_allowed=False)
    for name, text in held_out.items():
        key = f"dataset.held_out.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise DataError(f"dataset.held_out: {name!r} is not a valid variable name (letters, digits, _)")
        if name in dataset.kinds:
            raise DataError(
                f"{key}: '{name}' is already a data variable; held_out: adds evaluation-only "
                f"names (labels of data variables go under labels:)"
            )
        parsed[name] = _parse(dataset, text, key, held_out_allowed=True)
    # Sources without a label argument first, so that `restyle(x, c_t)` can see c_t's kind.
    kinds: dict[str, Kind] = {}
    ordered = sorted(parsed, key=lambda name: parsed[name].label is not None)
    for name in ordered:
        source = parsed[name]
        section = "labels" if name in labels else "held_out"
        key = f"dataset.{section}.{name}"
        if source.label is not None:
            if source.label not in parsed:
                known = [other for other in parsed if other != name]
                raise DataError(
                    f"{key}: {source} reads label '{source.label}', which neither labels: nor "
                    f"held_out: defines; {suggest(source.label, known)}"
                )
            if parsed[source.label].label is not None:
                raise DataError(f"{key}: {source} reads '{source.label}', which is not a label")
        kind = dataset.source_kind(source, key)
        if section == "labels":
            wanted = dataset.kinds[name]
            if kind.kind != "label" or kind.size != wanted.size:
                gives = f"{kind.size} classes" if kind.kind == "label" else kind_text(kind)
                raise DataError(f"{key}: {source} gives {gives}, but the spec declares {name} as {kind_text(wanted)}")
        kinds[name] = kind
    # Where a restyle reads a label, that label must index the same image's styles.
    for name in ordered:
        source = parsed[name]
        if source.label is not None:
            dataset.check_label_argument(source, parsed[source.label], f"dataset.held_out.{name}")
    return Bound(sources={name: parsed[name] for name in labels},
                 extras={name: parsed[name] for name in held_out},
                 held_out_kinds={name: kinds[name] for name in held_out})


def _mapping(value: Any, section: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        example = "{c_s: shape(x_s)}" if section == "labels" else "{c_t: shape(x_t)}"
        raise DataError(f"dataset.{section}: expected a mapping such as {example}, got {type(value).__name__}")
    return dict(value)


def _example(dataset: Dataset, variable: str) -> str:
    function = next((f for f in dataset.FUNCTIONS.values() if not f.held_out_only), None)
    if function is None or not dataset.images:
        return ""
    return f"{{{variable}: {function.name}({dataset.images[0]})}}"


def _check_label_names(dataset: Dataset, labels: dict[str, Any]) -> None:
    for name in labels:
        if name not in dataset.label_variables:
            if name in dataset.kinds:
                raise DataError(
                    f"dataset.labels.{name}: '{name}' is {kind_text(dataset.kinds[name])}, not a label; "
                    f"labels: names the spec's label variables ({quoted(dataset.label_variables) or 'none'})"
                )
            choices = dataset.label_variables or ()
            valid = suggest(str(name), choices) if choices else "the spec declares no label variables"
            raise DataError(f"dataset.labels: {name!r} is not a label variable of the spec; {valid}")
    for name in dataset.label_variables:
        if name not in labels:
            kind = kind_text(dataset.kinds[name])
            available = [f.usage for f in dataset.FUNCTIONS.values() if not f.held_out_only]
            if not available:
                raise DataError(
                    f"dataset: label variable '{name}' ({kind}) has no source: this dataset gives "
                    f"images only{dataset.NO_LABELS_HINT}"
                )
            raise DataError(
                f"dataset: label variable '{name}' ({kind}) has no source; add "
                f"labels: {_example(dataset, name)} (sources here: {', '.join(available)})"
            )


def _parse(dataset: Dataset, text: Any, key: str, held_out_allowed: bool) -> Source:
    functions = {
        name: function
        for name, function in dataset.FUNCTIONS.items()
        if held_out_allowed or not function.held_out_only
    }
    usages = ", ".join(function.usage for function in functions.values()) or "none"
    if not functions:
        raise DataError(f"{key}: this dataset gives images only, with no labels{dataset.NO_LABELS_HINT}")
    match = SOURCE_CALL.match(text) if isinstance(text, str) else None
    if match is None:
        raise DataError(f"{key}: cannot read {text!r}; expected FUNCTION(IMAGE), one of {usages}")
    name, image, label = match.group(1), match.group(2), match.group(3)
    if name not in functions:
        if name in dataset.FUNCTIONS:
            raise DataError(f"{key}: {name}(...) is allowed only under held_out:; labels: takes {usages}")
        hint = did_you_mean(name, list(functions)) or ""
        close = f"{hint} (sources here: {usages})" if hint.startswith("did you mean") else f"sources here: {usages}"
        raise DataError(f"{key}: unknown function {name!r}; {close}")
    function = functions[name]
    if function.takes_label != (label is not None):
        raise DataError(f"{key}: {name} takes {function.usage}, got {text.strip()!r}")
    if image not in dataset.images:
        what = f"'{image}' is {kind_text(dataset.kinds[image])}, not an image" if image in dataset.kinds else (
            f"{image!r} is not an image variable of the spec"
        )
        raise DataError(f"{key}: {what}; {suggest(image, dataset.images)}")
    if label is not None and not _NAME.match(label):
        raise DataError(f"{key}: {label!r} is not a variable name; {name} takes {function.usage}")
    return Source(name, image, label)

