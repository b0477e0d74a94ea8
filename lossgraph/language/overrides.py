"""Dotted overrides of a spec: `players.G.minimize.cycle.weight=5 train.steps=2000`.

    spec = lossgraph.load("specs/cyclegan.yaml", overrides=["train.steps=2000", "optim.D.adam.betas=[0.5, 0.99]"])
    lossgraph run specs/cyclegan.yaml players.G.minimize.cycle.weight=5 train.steps=2000

An override is `PATH=VALUE`. PATH is a dotted path into the spec's YAML mapping, applied after
`extends:` is merged and before validation, so the overridden spec is checked exactly like a
file. VALUE is YAML: a scalar (`5`, `1.0e-3`, `true`, a formula such as `E[l1(G(x) - y)]`) or a
flow collection (`[0.5, 0.99]`, `{adam: {lr: 1.0e-4}}`); quote a formula that holds `: ` or ` #`.

- A value replaces what was there (a mapping is not merged into the old one); `null` removes the
  key, as in `extends:`. Overrides apply in order, so a later one wins.
- A path may name a key the spec did not write when the schema has it (`train.steps`,
  `optim.D.adam.lr`, a network's arch option). A key of a mapping whose keys are names the
  spec chooses (players, networks, terms, lets, ...) must already exist, so a typo is an error
  with a did-you-mean hint; start the override with `+` to add one (`+players.G.minimize.idt=...`).
- A term written as a bare formula takes `.weight`, `.expr` and `.updates`: it becomes
  `{expr: <formula>, weight: ...}`.
- A list element is addressed by its index (`schedule.0=G`).
- Every problem is located in the override itself: `<override 2>:1:31: players.G.minimize.cycle.weight:
  ...` with the argument shown and a caret under the offending part, like a spec file's errors.
  Problems found by validation point into the override where the override wrote the value, and
  into the file elsewhere.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import yaml

from lossgraph.language.errors import Origin, Problem, Problems, SpecError, did_you_mean
from lossgraph.language.schema import TermSpec, model_at
from lossgraph.language.source import Layered, Source, Span, dotted

ADD_PREFIX = "+"
# Mappings whose keys are checked later against other parts of the spec (optimizer entries must
# name players, dataset keys are checked when the dataset opens): any key may be written there.
_OPEN = {("optim",), ("dataset",)}


def override_name(index: int) -> str:
    """The pseudo-file an override's errors name: `<override 1>` for the first."""
    return f"<override {index}>"


def apply_overrides(source: Any, data: dict, overrides: Sequence[str]) -> tuple[Any, dict]:
    """`data` with every override applied, and a source that locates the overridden values.

    `source` is the spec's `Source` (or the layered source of a derived spec); `data` is not
    modified. Raises `SpecError` with every malformed override or bad path, all at once.
    """
    data = copy.deepcopy(data)
    problems = Problems()
    for index, text in enumerate(overrides, start=1):
        try:
            own = _apply(data, str(text), override_name(index))
        except SpecError as error:
            problems.extend(error)
            continue
        source = Layered(own, source, file=source.file)  # errors and generated code name the spec file
    problems.raise_if_any()
    return source, data


def spec_source_and_data(spec: Any) -> tuple[Any, dict]:
    """The source positions and plain data of a loaded `Spec`, to lay overrides over."""
    data = spec.model_dump(mode="json", exclude_unset=True)
    source = spec.source
    if source is None:  # a Spec built in Python: positions in its YAML form
        source, data = Source.parse(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), spec.path or "<spec>")
    return source, data


# ----------------------------------------------------------------------------- one override


def _located(file: str, text: str, start: int, end: int, key: str = "") -> Origin:
    """An origin on the override's single line (columns of a multi-line text stop at its first line)."""
    first_line = text.split("\n", 1)[0]
    end = min(max(end, start + 1), len(first_line) + 1) if start < len(first_line) else start + 1
    return Origin(file, 1, start + 1, key, end + 1, first_line)


def _apply(data: dict, text: str, file: str) -> Source:
    """Apply one override to `data` in place; return the Source that locates what it wrote."""
    equals = text.find("=")
    if equals <= 0 or text[:equals].strip() in ("", ADD_PREFIX):
        raise SpecError(Problem("an override is KEY.PATH=VALUE", _located(file, text, 0, max(1, len(text))),
                                "e.g. train.steps=2000 or players.G.minimize.cycle.weight=5"))
    adding = text.startswith(ADD_PREFIX)
    key_start = len(ADD_PREFIX) if adding else 0
    segments = _segments(text, key_start, equals, file)
    value_text = text[equals + 1:]
    if not value_text.strip():
        raise SpecError(Problem("no value after '='", _located(file, text, equals, equals + 1),
                                "write KEY=null to remove a key"))

    path, parent, name = _walk(data, segments, text, file, adding)
    own = Source(text, file)
    # The value parsed in place: the key and '=' blanked, so YAML's marks are the argument's columns.
    value = _parse_value(own, " " * (equals + 1) + value_text, path, text, equals + 1)
    for length, (_, start, end) in enumerate(segments, start=1):
        own.keys[path[:length]] = Span(0, start, start, end, None)
    if value is None and isinstance(parent, dict):
        parent.pop(name, None)
    elif value is None:
        raise SpecError(Problem("null cannot remove a list element", _located(file, text, equals + 1, len(text)),
                                f"replace the whole list: {dotted(path[:-1])}=[...]"))
    else:
        parent[name] = value
    return own


def _segments(text: str, start: int, end: int, file: str) -> list[tuple[str, int, int]]:
    """The dotted key's parts with their columns: [(part, start, end), ...]."""
    parts = []
    position = start
    for part in text[start:end].split("."):
        stripped = part.strip()
        if not stripped:
            raise SpecError(Problem("empty key in the override's path", _located(file, text, position, position + max(1, len(part))),
                                    "separate keys with single dots: players.G.minimize.cycle.weight=5"))
        offset = position + (len(part) - len(part.lstrip()))
        parts.append((stripped, offset, offset + len(stripped)))
        position += len(part) + 1
    return parts


def _walk(data: dict, segments: list[tuple[str, int, int]], text: str, file: str, adding: bool) -> tuple[tuple, Any, Any]:
    """Follow the path to the container of its last key; return (data path, container, key)."""
    node: Any = data
    path: tuple = ()
    for index, (part, start, end) in enumerate(segments):
        last = index == len(segments) - 1
        where = _located(file, text, start, end, dotted(path + (part,)))
        if _is_term(path) and isinstance(node, str):
            # a bare formula term gains fields: `cycle: E[...]` -> `{expr: E[...], weight: ...}`
            node = {"expr": node}
            _container(data, path[:-1])[path[-1]] = node
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SpecError(Problem(f"{dotted(path) or 'the spec'} is a list of {len(node)}: '{part}' is not an index of it", where,
                                        f"use 0 to {len(node) - 1}, or replace the whole list: {dotted(path)}=[...]" if node else f"replace the whole list: {dotted(path)}=[...]"))
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
            if part not in node and not adding:
                model = model_at(path)
                allowed = model is not None and (part in model.model_fields or model.model_config.get("extra") == "allow")
                if not allowed and not any(path[:len(open_)] == open_ for open_ in _OPEN):
                    if model is not None:
                        choices = [name for name in model.model_fields] + list(node)
                        raise SpecError(Problem(f"unknown key '{part}'", where, did_you_mean(part, choices)))
                    hint = did_you_mean(part, node) if node else None
                    add = f"start the override with + to add '{part}'"
                    if hint is None or not hint.startswith("did you mean"):
                        hint = f"{hint}, or {add}" if hint else add
                    raise SpecError(Problem(f"no '{part}' in {dotted(path)}", where, hint))
            if not last and part not in node:
                node[part] = {}  # a section the spec left to its defaults (train:, optim.D.adam:)
        else:
            what = ("true/false" if isinstance(node, bool) else "a number" if isinstance(node, (int, float))
                    else "a string" if isinstance(node, str) else "null" if node is None else type(node).__name__)
            hint = f"{dotted(path)} takes {', '.join(TermSpec.model_fields)}" if _is_term(path) else f"replace it whole: {dotted(path)}=..."
            raise SpecError(Problem(f"{dotted(path)} is {what}, not a mapping: it has no '{part}'", where, hint))
        if last:
            return path + (key,), node, key
        node = node[key]
        path = path + (key,)
    raise AssertionError("unreachable: an override has at least one key")


def _is_term(path: tuple) -> bool:
    return len(path) == 4 and path[0] == "players" and path[2] in ("minimize", "maximize")


def _container(data: dict, path: tuple) -> Any:
    node: Any = data
    for key in path:
        node = node[key]
    return node


def _parse_value(own: Source, padded: str, path: tuple, text: str, value_start: int) -> Any:
    """The YAML value of an override, its positions recorded in `own` under `path`."""
    loader = None
    try:
        loader = yaml.SafeLoader(padded)
        node = loader.get_single_node()
        if node is None:
            return None
        return own._walk(node, path, loader, 0)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        column = mark.column if mark is not None and mark.line == 0 else value_start
        problem = error.problem or error.context or "cannot read the value"
        raise SpecError(Problem(f"invalid YAML value: {problem}", _located(own.file, text, column, column + 1),
                                "quote a formula that holds ': ' or ' #'")) from None
    except yaml.YAMLError as error:
        raise SpecError(Problem(f"invalid YAML value: {error}", _located(own.file, text, value_start, len(text)))) from None
    finally:
        if loader is not None:
            loader.dispose()
