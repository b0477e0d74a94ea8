"""Loading a spec: a file or a built-in spec's name, read, derived, overridden and validated.

    spec = load("specs/cyclegan.yaml")          # or load("cyclegan"): specs/ ships as package data
    spec = loads(text, "my.yaml", overrides=["train.steps=2000"])

The steps, in order: `resolve` finds the text (a file, else a built-in spec by name, with a
did-you-mean hint); `Source.parse` reads it with positions; `extends:` lays the spec over the one
it names (`_extend`: mappings merge key by key, so a term is overridden by name; any other value
replaces; `null` removes a key; `Layered` keeps each value's position in the file that wrote it);
the `KEY.PATH=VALUE` overrides apply (overrides.py); `validation.validated` checks the result
into a `Spec` and raises one `SpecError` with every problem.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path as FilePath
from typing import Any, Sequence

from lossgraph.language.errors import Problem, SpecError, did_you_mean
from lossgraph.language.overrides import apply_overrides, spec_source_and_data
from lossgraph.language.schema import Spec
from lossgraph.language.source import Layered, Source
from lossgraph.language.validation import validated

MAX_EXTENDS = 16  # a longer chain of `extends:` is refused, as a cycle would be


def builtin_specs() -> dict[str, Any]:
    """Built-in specs by name: the `specs/` folder, installed as package data."""
    folder = resources.files("lossgraph.specs")
    # stdlib.yaml holds the standard macros, not a spec
    return {entry.name[:-5]: entry for entry in folder.iterdir() if entry.name.endswith(".yaml") and entry.name != "stdlib.yaml"}


def packaged_spec(stem: str) -> tuple[str, str] | None:
    """(display path, text) of a spec shipped in a subfolder of `specs/` (`specs/photos/pix2pix.yaml`),
    named by its folder and stem (`photos/pix2pix`), or None. Checked before a built-in name, so a
    derived spec named after its parent is never taken for the parent."""
    parts = FilePath(stem).parts
    if len(parts) < 2:
        return None
    entry = resources.files("lossgraph.specs").joinpath(parts[-2], f"{parts[-1]}.yaml")
    if not entry.is_file():
        return None
    return f"{parts[-2]}/{parts[-1]}.yaml", entry.read_text(encoding="utf-8")


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
    shipped = packaged_spec(stem) if not path.exists() else None
    if shipped is not None:  # `photos/pix2pix`, or `specs/photos/pix2pix.yaml` outside a checkout
        return shipped
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
        source, data = spec_source_and_data(path_or_name)
        return validated(*apply_overrides(source, data, overrides), path_or_name.path or source.file)
    display, text = resolve(path_or_name)
    return loads(text, display, overrides)


def loads(text: str, file: str = "<spec>", overrides: Sequence[str] = ()) -> Spec:
    """A spec from YAML `text`; `file` is the name its errors and generated code give it."""
    source, data = Source.parse(text, file)
    if "extends" in data:
        source, data = _extend(source, data, file, [file])
    if overrides:
        source, data = apply_overrides(source, data, overrides)
    return validated(source, data, file)


def _extend(source: Source, data: dict, file: str, chain: list[str]) -> tuple[Layered, dict]:
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
