"""The resolved spec of a run: `RUN/spec.yaml`, and the check `--resume` makes against it.

Every run writes the spec it trains, fully resolved: `extends:` merged, overrides applied, and
the `train:` section complete, with the run's own step count and batch size (so `--steps 2000`
reads as `train.steps: 2000`). It is YAML that `lossgraph.load` reads back to an equal spec:
`resolved_data(lossgraph.load("RUN/spec.yaml")) == resolved_data(spec)` (equal as data; a
loaded spec also remembers which file it came from).

`--resume` compares the invocation's resolved spec with the run's. Changes that cannot alter the
training trajectory go through with a note: `train.steps` growing (extending a run) and the
logging, sample, evaluation and checkpoint intervals. Any other difference (an objective, a
learning rate, the batch size, the data, fewer steps) stops the resume with the differing keys
listed, unless `allow_change` (`--allow-spec-change`); the run's spec.yaml then becomes the new one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from lossgraph.language.errors import LossgraphError
from lossgraph.language.source import dotted
from lossgraph.train.protocols import Program

SPEC_FILE = "spec.yaml"
ABSENT = object()
# train: settings that never change what is trained, only when things are logged or saved
_HARMLESS = {("train", name) for name in ("log_every", "sample_every", "checkpoint_every", "eval_every")}


def resolved_data(spec: Any) -> dict[str, Any]:
    """A loaded `Spec` as plain YAML-able data: what it wrote (after extends and overrides) and
    its whole `train:` section. Keys the spec left to defaults elsewhere stay unwritten, so the
    result validates exactly like the spec did (`output:` beside `heads:` is an error, say)."""
    data = spec.model_dump(mode="json", exclude_unset=True)
    # unset optional settings (keep_best, features, fid_weights) stay out, as runs before them wrote
    # it; one of steps and epochs (language/schedules.py): epochs where the spec counts them
    data["train"] = spec.train.model_dump(mode="json", exclude_none=True,
                                          exclude={"epochs"} if spec.train.epochs is None else {"steps"})
    for name, net in data.get("networks", {}).items():
        if net.get("weights") is not None:  # absolute: RUN/spec.yaml names the file wherever it is read
            net["weights"] = str(spec.weights_file(name).resolve())
    return data


def run_spec(program: Program, steps: int, batch_size: int) -> dict[str, Any] | None:
    """The resolved spec of a run of `program`; None for a program without a lossgraph spec."""
    from lossgraph.language.spec import Spec

    spec = program.spec
    if not isinstance(spec, Spec):
        return None
    data = resolved_data(spec)
    data["train"].pop("epochs", None)  # the run's length in steps, as `--steps` gives it (train/epochs.py)
    data["train"]["steps"] = int(steps)
    data["train"]["batch_size"] = int(batch_size)
    return data


class _Dumper(yaml.SafeDumper):
    """Block style, but a list of scalars on one line: `betas: [0.5, 0.999]`."""


def _represent_list(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
    flow = all(not isinstance(item, (dict, list)) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump(data: dict[str, Any], title: str | None = None) -> str:
    """YAML text of resolved spec data, optionally under a comment line."""
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                     width=math.inf)
    head = f"# {title}\n" if title else ""
    return head + text


def write(run_dir: str | Path, data: dict[str, Any]) -> Path:
    """Write `RUN/spec.yaml` atomically."""
    from lossgraph.train.checkpoint import atomic_write_text

    path = Path(run_dir) / SPEC_FILE
    title = (f"resolved spec of this run ({data.get('name')}): extends merged, overrides applied; "
             "lossgraph run/check/show reads it")
    atomic_write_text(path, dump(data, title))
    return path


def read(path: str | Path) -> dict[str, Any]:
    """The plain data of a run's spec.yaml, as written."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise LossgraphError(f"cannot read the run's spec {path}: {error}; pass --allow-spec-change to replace it") from None
    if not isinstance(data, dict):
        raise LossgraphError(f"the run's spec {path} is not a spec mapping; pass --allow-spec-change to replace it")
    return data


# ----------------------------------------------------------------------------- differences


def _flatten(data: Any, prefix: tuple = ()) -> dict[tuple, Any]:
    if isinstance(data, dict) and data:
        out: dict[tuple, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, prefix + (key,)))
        return out
    return {prefix: data}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[tuple, Any, Any]]:
    """(path, old value, new value) of every leaf that differs; ABSENT where a side lacks it."""
    before, after = _flatten(old), _flatten(new)
    changed = []
    for path in list(before) + [path for path in after if path not in before]:
        was, now = before.get(path, ABSENT), after.get(path, ABSENT)
        if was != now or type(was) is not type(now) and not _same_number(was, now):
            changed.append((path, was, now))
    return changed


def _same_number(first: Any, second: Any) -> bool:
    numbers = (int, float)
    return (isinstance(first, numbers) and isinstance(second, numbers) and not isinstance(first, bool)
            and not isinstance(second, bool) and first == second)


def _shown(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    return json.dumps(value, ensure_ascii=False)


def describe(path: tuple, old: Any, new: Any) -> str:
    """`train.steps: 1500 -> 2000`."""
    return f"{dotted(path)}: {_shown(old)} -> {_shown(new)}"


def _harmless(path: tuple, old: Any, new: Any) -> bool:
    if path in _HARMLESS:
        return True
    return (path == ("train", "steps") and isinstance(old, int) and isinstance(new, int) and new >= old)


def check_resume(run_dir: str | Path, new: dict[str, Any], allow_change: bool = False) -> list[str]:
    """Compare a resumed run's spec.yaml with `new`; return notes for the user, or raise.

    A run without spec.yaml (written before runs recorded it) is resumed with a note.
    """
    path = Path(run_dir) / SPEC_FILE
    if not path.is_file():
        return [f"{path} is missing (a run from an older lossgraph?): resuming without comparing specs; "
                "this invocation's spec is written there"]
    try:
        old = read(path)
    except LossgraphError:
        if allow_change:
            return [f"{path} could not be read: replaced by this invocation's spec (--allow-spec-change)"]
        raise
    changes = differences(old, new)
    if not changes:
        return []
    lines = "\n  ".join(describe(*change) for change in changes)
    refused = [change for change in changes if not _harmless(*change)]
    if refused and not allow_change:
        listed = "\n  ".join(describe(*change) for change in refused)
        raise LossgraphError(
            f"the spec differs from the one {run_dir} was trained with ({path}):\n  {listed}\n"
            f"pass --allow-spec-change to resume with the new spec anyway (spec.yaml is then replaced), "
            f"or --out DIR to start a new run. Extending a run (a larger train.steps) and changing the "
            f"log/sample/eval/checkpoint intervals need no flag. Nothing was changed.")
    if refused:
        why = "--allow-spec-change"
    else:
        reasons = ["a larger train.steps extends the run"] if any(path == ("train", "steps") for path, _, _ in changes) else []
        if any(path in _HARMLESS for path, _, _ in changes):
            reasons.append("intervals do not change training")
        why = "; ".join(reasons)
    return [f"resuming with a changed spec ({why}):\n  {lines}"]
