"""Macros: named formulas with parameters, and the standard library of them.

A macro is declared as `name(param, ...): formula`, in a spec's `macros:` or in
`specs/stdlib.yaml`, which every spec sees. A call `nsgan_d(D_Y, y, fake_y)` binds each parameter
to its argument, which may be a value or a network (or one head of a network, `D.src`), then
parses the body with those bindings. The body sees its parameters and the builtins, nothing else
of the spec, so a macro means the same wherever it is used. A spec's macro shadows a standard one
of the same name.

This module does not import torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Callable

from lossgraph.language.errors import Origin

_SIGNATURE = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$")


@dataclass(frozen=True)
class Macro:
    name: str
    params: tuple[str, ...]
    body: str
    locate: Callable[[tuple[int, int] | None], Origin | None]  # span of the body -> origin

    def __hash__(self) -> int:
        return hash((self.name, self.params, self.body))


def parse_signature(text: str) -> tuple[str, tuple[str, ...]]:
    """`nsgan_d(D, real, fake)` -> ("nsgan_d", ("D", "real", "fake")), or ValueError(reason)."""
    match = _SIGNATURE.match(text)
    if not match:
        raise ValueError("a macro is declared as name(param, ...): formula")
    name, inside = match.group(1), match.group(2)
    params = tuple(part.strip() for part in inside.split(",")) if inside.strip() else ()
    for param in params:
        if not param.isidentifier() or param.startswith("_"):
            raise ValueError(f"macro parameter '{param}' is not a valid name")
    if len(set(params)) != len(params):
        raise ValueError("macro parameters must differ")
    return name, params


@lru_cache(maxsize=1)
def standard_library() -> dict[str, Macro]:
    """The macros of `specs/stdlib.yaml`, shipped as package data."""
    from lossgraph.language.source import Source

    text = resources.files("lossgraph.specs").joinpath("stdlib.yaml").read_text(encoding="utf-8")
    source, data = Source.parse(text, "stdlib.yaml")
    macros = {}
    for key, body in data.get("macros", {}).items():
        name, params = parse_signature(key)
        path = ("macros", key)
        macros[name] = Macro(name, params, body, lambda span, path=path: source.origin(path, span))
    return macros
