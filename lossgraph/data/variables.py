"""The data variables a dataset serves, checked once, and the wording of data messages.

`as_kinds` turns a spec's data variables into `{name: Kind}` and refuses what no dataset can
serve; `quoted`, `suggest` and `kind_text` word the `DataError`s of every data module alike.
"""

from __future__ import annotations

from typing import Any, Mapping

from lossgraph.language.errors import DataError, did_you_mean
from lossgraph.language.kinds import DATA_KINDS, Kind, parse_data_kind

IMAGE = Kind("image", 3)
CHANNELS = (1, 3)


def quoted(names: Any) -> str:
    return ", ".join(f"'{name}'" for name in names)


def suggest(name: str, choices: Any) -> str:
    """`did you mean 'x'? (expected one of ...)`, or just the valid choices when none is close."""
    choices = list(choices)
    if not choices:
        return "there is nothing to choose from"
    hint = did_you_mean(name, choices)
    valid = f"expected one of {quoted(choices)}"
    return valid if hint is None or hint.startswith("expected") else f"{hint} ({valid})"


def kind_text(kind: Kind) -> str:
    if kind.kind == "image":
        return "image" if kind.size == 3 else f"image({kind.size})"
    return f"{kind.kind}({kind.size})"


def as_kinds(variables: Any) -> dict[str, Kind]:
    """The data variables as {name: Kind}: a list of names means images; a mapping gives kinds.

    A kind is a `lossgraph.kinds.Kind` (anything with `.kind` and `.size`) or its spec text
    (`"image"`, `"label(3)"`). Only what every dataset can serve passes: images of 1 or 3
    channels and labels; vectors are refused here, since no source provides them yet.
    """
    if isinstance(variables, Mapping):
        items = list(variables.items())
    elif isinstance(variables, (list, tuple)):
        items = [(name, IMAGE) for name in variables]
        names = [name for name, _ in items]
        if len(set(map(repr, names))) != len(names):
            raise DataError(f"dataset: the data variables must have distinct names; got {names}")
    else:
        raise DataError(
            f"dataset: expected the data variables as a list of image names or a mapping "
            f"{{name: kind}}, got {type(variables).__name__}"
        )
    kinds: dict[str, Kind] = {}
    for name, kind in items:
        if not isinstance(name, str) or not name:
            raise DataError(f"dataset: a data variable needs a non-empty name, got {name!r}")
        if isinstance(kind, str):
            try:
                kind = parse_data_kind(kind)
            except ValueError as error:
                raise DataError(f"dataset: data variable '{name}': {error}") from None
        if not hasattr(kind, "kind") or not hasattr(kind, "size"):
            raise DataError(
                f"dataset: data variable '{name}' has kind {kind!r}; expected a Kind or one of "
                f"{quoted(DATA_KINDS)} (e.g. image, label(3))"
            )
        if kind.kind not in DATA_KINDS:
            raise DataError(f"dataset: data variable '{name}' has kind {kind.kind!r}; {suggest(str(kind.kind), DATA_KINDS)}")
        if kind.kind == "vector":
            raise DataError(
                f"dataset: data variable '{name}' is {kind_text(kind)}, but no dataset provides vectors "
                f"(builtin shapes and folders give images and labels); make it a random variable"
            )
        if kind.kind == "image" and kind.size not in CHANNELS:
            raise DataError(
                f"dataset: image variable '{name}' has {kind.size} channels; datasets give 3 (RGB, "
                f"`image`) or 1 (grey, `image(1)`)"
            )
        if kind.kind == "label" and kind.size < 1:
            raise DataError(f"dataset: label variable '{name}' needs at least 1 class, got {kind.size}")
        kinds[name] = Kind(kind.kind, int(kind.size))
    if not kinds:
        raise DataError("dataset: the spec has no data variables to serve")
    return kinds
