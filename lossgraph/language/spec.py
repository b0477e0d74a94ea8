"""The spec: a YAML file checked into pydantic models, every value traceable to file:line:col.

One import for what the rest of lossgraph needs of a spec; each idea lives in its own module:

- `schema.py`: the models (`Spec`, `NetworkSpec`, `PlayerSpec`, ...) and `model_at`, the model of
  the mapping at a dotted path;
- `loading.py`: `load`, `loads`, `resolve`, `builtin_specs`, and `extends:`;
- `overrides.py`: `KEY.PATH=VALUE` overrides, applied after `extends:`;
- `validation.py`: pydantic's errors located in the file; `names.py`: the checks that need the
  whole spec (names unique, players naming declared networks, schedules naming players, ...).

Formulas stay text here; `compiler/passes/lower.py` turns them into IR, and refuses a name that a
formula gives a meaning of its own (`E`, the builtins).
"""

from lossgraph.language.loading import builtin_specs, load, loads, resolve
from lossgraph.language.schema import (
    AdamSpec,
    JudgeSpec,
    LRScheduleSpec,
    NetworkSpec,
    OptimizerSpec,
    PlayerSpec,
    RMSpropSpec,
    SGDSpec,
    Spec,
    TermSpec,
    TrainSpec,
    model_at,
)

__all__ = [
    "AdamSpec",
    "JudgeSpec",
    "LRScheduleSpec",
    "NetworkSpec",
    "OptimizerSpec",
    "PlayerSpec",
    "RMSpropSpec",
    "SGDSpec",
    "Spec",
    "TermSpec",
    "TrainSpec",
    "builtin_specs",
    "load",
    "loads",
    "model_at",
    "resolve",
]
