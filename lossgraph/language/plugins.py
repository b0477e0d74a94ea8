"""Users' own networks: modules named by `--import`, installed packages' entry points, and the
run folder's record of both.

- `import_modules(["my_nets"])` imports each module as `python -m` would find it (the current
  directory first on `sys.path`), before any spec is read; the module calls
  `lossgraph.register_arch`. Each arch it registers is marked as coming from `--import my_nets`.
  A module that cannot be imported is a `LossgraphError` naming it and the reason.
- `load_archs(spec)` loads, for each arch the spec names that is not registered, the
  `lossgraph.archs` entry point of that name (nets.registry); a broken one is a `SpecError` at
  the network's `arch:` line. Nothing else is ever imported: a spec cannot name a module.
- `write_record(RUN, spec, imports)` leaves `RUN/imports.json` when a run uses `--import` or an
  arch that is not built in: `{"imports": ["my_nets"], "archs": {"my_patchgan": "--import my_nets"}}`.
  `require_archs(spec, RUN)` reads it back when a resumed or translated run names an arch that is
  not registered, and says which `--import` to add.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import sysconfig
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from lossgraph.language.errors import LossgraphError, Problems, SpecError
from lossgraph.language.schema import Spec

RECORD_FILE = "imports.json"
IMPORT_SOURCE = "--import "


def import_modules(names: Sequence[str]) -> None:
    """Import each of `names` (dotted module names) in order, the current directory searched first."""
    if not names:
        return
    from lossgraph import nets  # the registry; imported here so that a command without --import stays light

    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    for name in names:
        before = dict(nets.ARCHS)
        _import(name)
        for arch_name, arch in list(nets.ARCHS.items()):
            if before.get(arch_name) is not arch:
                nets.ARCHS[arch_name] = replace(arch, source=IMPORT_SOURCE + name)


def _import(name: str) -> None:
    # NOTE: `my_nets.py` is a valid dotted name (module `py` of package `my_nets`), so a file
    # name given for a module is caught by its suffix, before and after trying it
    as_file = ""
    if name.endswith(".py"):
        as_file = f" (--import takes a module name, not a file: --import {Path(name).with_suffix('').as_posix().replace('/', '.')})"
    if not all(part.isidentifier() for part in name.split(".")):
        raise LossgraphError(f"--import {name}: not a module name{as_file or ' (dotted Python identifiers, e.g. my_nets)'}")
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and (name == error.name or name.startswith(error.name + ".")):
            raise LossgraphError(f"--import {name}: no module named '{error.name}' in the current directory "
                                 f"({os.getcwd()}) or on the Python path{as_file}") from error
        raise LossgraphError(f"--import {name}: importing it failed: {error}{_where(error)}") from error
    except Exception as error:  # noqa: BLE001 - whatever the user's module raises, name the module and the reason
        raise LossgraphError(f"--import {name}: importing it raised {type(error).__name__}{_where(error)}: {error}") from error


def _where(error: BaseException) -> str:
    """` (my_nets.py:12)`: the innermost line of the failure in the user's code (outside Python's
    own library, installed packages, lossgraph and nets), or nothing."""
    if isinstance(error, SyntaxError) and error.filename:
        return f" ({error.filename}:{error.lineno})"
    import lossgraph.nets as nets

    skipped = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    skipped |= {str(Path(__file__).parents[1]), str(Path(nets.__file__).parent)}  # lossgraph and nets
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if not frame.filename.startswith("<") and not any(frame.filename.startswith(path) for path in skipped)]
    return f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def load_archs(spec: Spec) -> None:
    """Load the entry point of each arch `spec` names that is not registered; a broken one is
    reported at the network's `arch:`. Unknown names are left to the shape check."""
    import lossgraph.nets as nets

    problems = Problems()
    for name, network in spec.networks.items():
        try:
            nets.find_arch(network.arch)
        except nets.ArchLoadError as error:
            problems.add(str(error), spec.source.origin(("networks", name, "arch")))
    problems.raise_if_any()


def write_record(run: str | os.PathLike, spec: Spec, imports: Sequence[str]) -> Path | None:
    """`RUN/imports.json`: the `--import` modules and where each arch `spec` uses that is not
    built in came from; written when there is either (or a record to update), else nothing."""
    import lossgraph.nets as nets

    path = Path(run) / RECORD_FILE
    networks = getattr(spec, "networks", None) or {}  # a test's stand-in program may have no spec networks
    archs = {network.arch: nets.ARCHS[network.arch].source for network in networks.values()
             if network.arch in nets.ARCHS and not nets.ARCHS[network.arch].builtin}
    if not imports and not archs and not path.exists():
        return None
    record = {"imports": list(imports), "archs": dict(sorted(archs.items()))}
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def read_record(run: str | os.PathLike) -> dict[str, Any] | None:
    """The run's `imports.json`, or None when it has none (or one that does not read as a record)."""
    try:
        record = json.loads((Path(run) / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    imports = [name for name in record.get("imports", []) if isinstance(name, str)]
    archs = {name: source for name, source in (record.get("archs") or {}).items() if isinstance(source, str)}
    return {"imports": imports, "archs": archs}


def require_archs(spec: Spec, run: str | os.PathLike) -> None:
    """Before compiling a run's spec (`--resume`, `translate`): an arch the spec names that is
    neither registered nor offered by an entry point, but that the run's record knows, is an
    error saying which `--import` to add (or which package to install)."""
    import lossgraph.nets as nets

    record = read_record(run)
    if record is None:
        return
    problems = Problems()
    for name, network in spec.networks.items():
        try:
            if nets.find_arch(network.arch) is not None:
                continue
        except nets.ArchLoadError:
            continue  # load_archs reports it, at the same place
        source = record["archs"].get(network.arch)
        if source is None and not record["imports"]:
            continue
        if record["imports"]:
            hint = f"the run was started with {' '.join(IMPORT_SOURCE + module for module in record['imports'])}: add that to this command"
        else:
            hint = "install the package that offers it, or register it before this command"
        came = f" (from {source})" if source else ""
        problems.add(f"unknown arch '{network.arch}': run {run} was trained with it{came}, "
                     f"but nothing registered it in this command", spec.source.origin(("networks", name, "arch")), hint)
    problems.raise_if_any(SpecError)


__all__ = ["RECORD_FILE", "import_modules", "load_archs", "read_record", "require_archs", "write_record"]
