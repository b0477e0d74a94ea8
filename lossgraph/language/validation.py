"""Validation: a spec's plain data checked into a `Spec`, each pydantic error located in its file.

pydantic reports an error at a `loc` such as `('players', 'G', 'minimize', 'cycle', 'str')`;
`_data_path` keeps the parts that address the data (dropping union-member tags) so the source
points at the value, or at the key for an unknown key, with the keys its model has as the hint.
A union reports one error per member; one is kept. Numbers are checked on the data itself:
`_check_finite` refuses inf and nan anywhere (`.inf`, `.nan`), and `_check_numbers_read` a
`true` that pydantic read as the number 1 (`weight: true`) and a string it read as an infinite
number (`1e400`, which YAML leaves a string). Then `names.check_names` checks what needs the
whole spec, `dataset_options.check_dataset_options` the dataset's load_size, crop_size and flip,
`schedules.check_units` that steps and epochs are not mixed, and every problem is raised together.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from lossgraph.language.dataset_options import check_dataset_options
from lossgraph.language.errors import Problems, did_you_mean
from lossgraph.language.names import check_names
from lossgraph.language.schedules import check_units
from lossgraph.language.schema import EmaSpec, Spec, TermSpec, WeightSchedule, model_at
from lossgraph.language.source import Layered, Source


def validated(source: Source | Layered, data: dict, file: str) -> Spec:
    """`data` as a `Spec` that remembers `source` and `file`, or one `SpecError` with every problem."""
    problems = Problems()
    if isinstance(data, dict) and set(data) == {"macros"}:  # e.g. specs/stdlib.yaml
        problems.add("a macro library, not a spec: the file has no name, data, networks or players",
                     source.origin(("macros",), at_key=True),
                     "specs call the standard library's macros (specs/stdlib.yaml) by name, and declare their own under `macros:`")
        problems.raise_if_any()
    _check_finite(data, (), source, problems)
    problems.raise_if_any()
    try:
        spec = Spec.model_validate(data)
    except ValidationError as error:
        _collect_validation(error, source, data, problems)
        problems.raise_if_any()
        raise  # unreachable: a ValidationError always has errors
    _check_numbers_read(data, spec, (), source, problems)
    problems.raise_if_any()
    spec._source = source
    spec._path = file
    check_names(spec, source, problems)
    check_dataset_options(spec, source, problems)
    check_units(spec, source, problems)
    problems.raise_if_any()
    return spec


def _check_finite(data: Any, path: tuple, source: Source | Layered, problems: Problems) -> None:
    """Every number in the spec is finite: YAML reads `.inf`, `.nan` and `1e400` as floats that no
    weight, rate or option means (an infinite weight would make every loss inf or nan)."""
    if isinstance(data, float) and not math.isfinite(data):
        problems.add(f"{data} is not a finite number", source.origin(path),
                     "write a finite number; YAML reads .inf, .nan and values beyond about 1.8e308 as infinite or not a number")
    elif isinstance(data, dict):
        for key, value in data.items():
            _check_finite(value, path + (key,), source, problems)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _check_finite(value, path + (i,), source, problems)


_UNREADABLE = object()


def _check_numbers_read(data: Any, value: Any, path: tuple, source: Source | Layered, problems: Problems) -> None:
    """A `true` or `false` where the spec's model holds a number: pydantic reads a YAML boolean as
    1 or 0 for an int or float field (`weight: true` would be weight 1); and a string it read as a
    number that is not finite. `value` is the validated counterpart of `data`; where the two cannot
    be walked together the check stops."""
    if isinstance(data, str) and isinstance(value, float) and not math.isfinite(value):
        problems.add(f"{data} reads as {value}, not a finite number", source.origin(path), "write a finite number")
        return
    if isinstance(data, bool):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            problems.add(f"{str(data).lower()} is a boolean, but a number goes here", source.origin(path),
                         f"write the number itself, e.g. {int(data)}")
        return
    if isinstance(data, dict):
        for key, item in data.items():
            _check_numbers_read(item, _part(value, key), path + (key,), source, problems)
    elif isinstance(data, list) and isinstance(value, (list, tuple)) and len(value) == len(data):
        for i, item in enumerate(data):
            _check_numbers_read(item, value[i], path + (i,), source, problems)


def _part(value: Any, key: Any) -> Any:
    if value is _UNREADABLE:
        return value
    if isinstance(value, dict):
        return value.get(key, _UNREADABLE)
    if isinstance(getattr(value, "model_fields", None), dict) and key in type(value).model_fields:
        return getattr(value, key)
    return _UNREADABLE


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
            model = model_at(path[:-1])
            fields = list(model.model_fields) if model else []
            if (path, kind) in seen:
                continue
            seen.add((path, kind))
            problems.add(f"unknown key '{path[-1]}'", source.origin(path, at_key=True), did_you_mean(str(path[-1]), fields))
            continue
        if (path, "value") in seen:
            continue  # a union reports one error per member; one is enough
        if kind == "string_type" and model_at(path) is TermSpec and isinstance(_value_at(data, path), dict):
            continue  # a term written as a mapping: the TermSpec member's errors say what is wrong
        if kind == "float_type" and model_at(path) in (WeightSchedule, EmaSpec) and isinstance(_value_at(data, path), dict):
            continue  # a weight or an average written as a mapping: its model's errors say what is wrong
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
            return (f"an EMA decay is a number strictly between 0 and 1, e.g. 0.999, or {{decay: 0.999, start: 1000}} "
                    f"({item['msg'][0].lower() + item['msg'][1:]})")
        if len(path) == 3 and path[2] in ("decay", "start"):
            return ("an EMA decay is a number strictly between 0 and 1" if path[2] == "decay" else
                    "an EMA's start is the iteration its averaging starts at, a whole number >= 0") + \
                f" ({item['msg'][0].lower() + item['msg'][1:]})"
        return "ema maps a network to the decay of its weights' moving average, e.g. {G_XY: 0.999}"
    message = item["msg"].removeprefix("Value error, ")  # a validator's own words
    return message[0].lower() + message[1:]
