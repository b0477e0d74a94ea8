"""The registry of architectures: every name a spec's `arch:` may give, built-in or a user's own.

`ARCHS` maps a name to an `Arch`. The built-in archs are entered by `nets/__init__.py`; a user
adds one with `register_arch(name, builder, role=..., output_range=...)` (re-exported as
`lossgraph.register_arch`), and an installed package offers one through the entry-point group
`lossgraph.archs` (`my_patchgan = "my_package.nets:build_patchgan"`).

A builder is called as `builder(in_channels=, out_channels=, image_size=, **options)` and returns
an `nn.Module` (a module class is a builder). The options a spec may give are the builder's
keyword parameters other than those three, each with its default (`REQUIRED` when it has none);
a builder taking `**kwargs` accepts any option.

Invariants:
- Entry points are read only when a name is not registered (`find_arch`), so that starting
  lossgraph imports no plug-in; a loaded one stays registered. The entry point's object may carry
  `lossgraph_role` and `lossgraph_output_range` attributes, read as `register_arch`'s arguments.
- A built-in name cannot be replaced; registering a taken name with another builder needs
  `replace=True`. Registering the same builder again is a no-op, so importing twice is harmless.
- This module never imports lossgraph (nets stands alone); its errors are `ValueError`s.
"""

from __future__ import annotations

import difflib
import inspect
import math
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

from torch import nn

ROLES = ("generator", "discriminator", "encoder", "classifier")
ENTRY_POINT_GROUP = "lossgraph.archs"
SIZES = ("in_channels", "out_channels", "image_size")  # what lossgraph passes every builder
BUILT_IN = "built-in"


class _Required:
    """The default of an option the builder has no default for: a spec must give it."""

    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = _Required()


class ArchLoadError(ValueError):
    """An installed package's `lossgraph.archs` entry point that cannot be loaded."""


@dataclass(frozen=True)
class Arch:
    """One registered architecture; `options` maps each option name to its default (read it through
    `options_of`, which copies, rather than changing it here).

    `role` is one of `ROLES`, or None for a user's arch registered without one. `output_range`
    is the (low, high) interval every output lies in (the built-in generators' tanh: (-1, 1)),
    or None when nothing bounds it. `any_option`: the builder takes `**options`, so a spec may
    give options beyond those named. `source` says where the arch came from: "built-in",
    "--import my_nets", "entry point 'name = module:builder' of package P", or the builder's
    dotted name when registered by other code.
    """

    name: str
    role: str | None
    builder: Callable[..., nn.Module]
    options: dict[str, object] = field(hash=False)
    doc: str
    output_range: tuple[float, float] | None = None
    any_option: bool = False
    source: str = BUILT_IN

    @property
    def builtin(self) -> bool:
        return self.source == BUILT_IN


ARCHS: dict[str, Arch] = {}


def describe(name: str, role: str | None, builder: Callable[..., nn.Module], *,
             output_range: object = None, source: str = BUILT_IN) -> Arch:
    """An `Arch` whose options and doc come from `builder`'s signature and docstring; every
    argument checked, each mistake a `ValueError` that says what was expected."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"an arch name must be an identifier (letters, digits, _; not starting with a digit), got {name!r}")
    if not callable(builder):
        raise ValueError(f"the builder of arch '{name}' must be callable (a module class or a function "
                         f"returning an nn.Module), got {type(builder).__name__} {builder!r}")
    if role is not None and role not in ROLES:
        raise ValueError(f"the role of arch '{name}' must be one of {', '.join(ROLES)} or None, got {role!r}")
    try:
        parameters = list(inspect.signature(builder).parameters.values())
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot read the signature of arch '{name}''s builder {dotted_name(builder)}: {error}") from error
    by_keyword = {p.name: p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    any_option = any(p.kind is p.VAR_KEYWORD for p in parameters)
    lacking = [size for size in SIZES if size not in by_keyword and not any_option]
    if lacking:
        raise ValueError(f"the builder of arch '{name}', {dotted_name(builder)}, must accept "
                         f"{', '.join(f'{size}=' for size in SIZES)} as keywords; it lacks {', '.join(lacking)}")
    positional = [p.name for p in parameters if p.kind is p.POSITIONAL_ONLY and p.default is p.empty]
    if positional:
        raise ValueError(f"the builder of arch '{name}', {dotted_name(builder)}, has positional-only parameters "
                         f"lossgraph cannot pass: {', '.join(positional)}")
    options = {p.name: (REQUIRED if p.default is p.empty else p.default)
               for p in by_keyword.values() if p.name not in SIZES}
    text = inspect.getdoc(builder) or ""
    doc = " ".join(text.split("\n\n")[0].split()) or dotted_name(builder)
    return Arch(name, role, builder, options, doc, _checked_range(name, output_range), any_option, source)


def _checked_range(name: str, output_range: object) -> tuple[float, float] | None:
    if output_range is None:
        return None
    try:
        low, high = output_range  # type: ignore[misc]
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        raise ValueError(f"the output_range of arch '{name}' must be a (low, high) pair of numbers or None, "
                         f"got {output_range!r}") from None
    if math.isnan(low) or math.isnan(high) or not low < high:
        raise ValueError(f"the output_range of arch '{name}' must have low < high, got {output_range!r}")
    return (low, high)


def dotted_name(builder: object) -> str:
    """`module.qualname` of a builder, or its repr when it has none (a functools.partial)."""
    qualname = getattr(builder, "__qualname__", None)
    module = getattr(builder, "__module__", None)
    return f"{module}.{qualname}" if qualname and module else repr(builder)


def register_arch(name: str, builder: Callable[..., nn.Module], *, role: str | None = None,
                  output_range: tuple[float, float] | None = None, replace: bool = False) -> Arch:
    """Make `name` an arch specs can use: `networks: {D: {arch: name, width: 16}}`.

    `builder(in_channels=, out_channels=, image_size=, **options)` returns an `nn.Module` (one
    returning a tuple serves a network with `heads:`); the spec's options are its other keyword
    parameters. `role` (one of `ROLES`, or None) gives the default `out_channels`: the image's
    channels for a generator, 1 otherwise; without a role, the builder's own default for
    `out_channels`, else the spec must give `out_channels:`. `output_range` is the interval every
    output lies in, `(-1.0, 1.0)` for a tanh output, or None. The module keeps the initial weights
    the builder gave it (lossgraph seeds the RNG per network before calling it).

    Registering the same builder under the same name again does nothing; another builder under a
    taken name raises `ValueError` unless `replace=True`; built-in names cannot be replaced.
    """
    arch = describe(name, role, builder, output_range=output_range, source=dotted_name(builder))
    existing = ARCHS.get(name)
    if existing is not None:
        if existing.builtin:
            raise ValueError(f"'{name}' is a built-in arch and cannot be replaced; register yours under another name")
        if (existing.builder, existing.role, existing.output_range) == (arch.builder, arch.role, arch.output_range):
            return existing
        if not replace:
            raise ValueError(f"arch '{name}' is registered already (by {existing.source}); "
                             f"pass replace=True to replace it, or choose another name")
    ARCHS[name] = arch
    return arch


def arch_entry_points() -> list[metadata.EntryPoint]:
    """The installed packages' entry points in the group `lossgraph.archs` (read, not loaded)."""
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _package(entry_point: metadata.EntryPoint) -> str:
    distribution = getattr(entry_point, "dist", None)
    return distribution.name if distribution is not None else "(unknown package)"


def _load_entry_point(name: str) -> Arch | None:
    """The arch an installed package offers as `name`, loaded and registered; None if none does."""
    offered = [entry_point for entry_point in arch_entry_points() if entry_point.name == name]
    if not offered:
        return None
    if len(offered) > 1:
        packages = ", ".join(f"{_package(e)} ({e.value})" for e in offered)
        raise ArchLoadError(f"arch '{name}' is offered by several installed packages' {ENTRY_POINT_GROUP} "
                            f"entry points: {packages}; uninstall all but one")
    entry_point = offered[0]
    where = f"entry point '{entry_point.name} = {entry_point.value}' of package {_package(entry_point)}"
    try:
        builder = entry_point.load()
    except Exception as error:  # noqa: BLE001 - whatever a plug-in's import raises, say which plug-in
        raise ArchLoadError(f"arch '{name}': cannot load {where} (group {ENTRY_POINT_GROUP}): "
                            f"{type(error).__name__}: {error}") from error
    existing = ARCHS.get(name)
    if existing is not None:  # the package registered it itself while being imported
        return existing
    try:
        arch = describe(name, getattr(builder, "lossgraph_role", None), builder,
                        output_range=getattr(builder, "lossgraph_output_range", None), source=where)
    except ValueError as error:
        raise ArchLoadError(f"{error} (from {where})") from error
    ARCHS[name] = arch
    return arch


def find_arch(name: object) -> Arch | None:
    """The arch registered as `name`, else the one an installed package's entry point offers
    (loaded and registered now), else None. A broken entry point raises `ArchLoadError`."""
    if not isinstance(name, str):
        return None
    return ARCHS.get(name) or _load_entry_point(name)


# not lossgraph.language.errors.did_you_mean: nets never imports lossgraph (it stands alone)
def _suggestion(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def lookup(arch: object) -> Arch:
    """`find_arch`, with a `ValueError` naming the known archs when there is none."""
    found = find_arch(arch)
    if found is None:
        names = sorted(ARCHS)
        hint = _suggestion(str(arch), names)
        raise ValueError(f"unknown arch {arch!r}{hint}; known archs: {', '.join(names)}")
    return found


def options_of(arch: str) -> dict[str, object]:
    """The option names of `arch` with their defaults (`REQUIRED` for none; a copy, safe to change)."""
    return dict(lookup(arch).options)


def accepts_option(arch: str, option: str) -> bool:
    """Whether a spec may give `option` to `arch`: a named option, or any when the builder takes `**options`."""
    entry = lookup(arch)
    return option in entry.options or entry.any_option


def default_out_channels(arch: str, image_channels: int) -> int | None:
    """The `out_channels` a network of `arch` gets when its spec gives none, or None when the
    spec must give one: `image_channels` for a generator, 1 for any other role; for an arch
    registered without a role, the builder's own default for `out_channels` if it has one."""
    entry = lookup(arch)
    if entry.role == "generator":
        return image_channels
    if entry.role is not None:
        return 1
    try:
        parameter = inspect.signature(entry.builder).parameters.get("out_channels")
    except (TypeError, ValueError):
        return None
    default = None if parameter is None else parameter.default
    if isinstance(default, int) and not isinstance(default, bool) and default >= 1:
        return default
    return None
