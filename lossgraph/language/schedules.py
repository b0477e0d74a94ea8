"""Steps or epochs: what pydantic cannot see in a spec's learning-rate schedules and `train:`.

A schedule counts steps (`constant`, `decay`) or epochs (`constant_epochs`, `decay_epochs`), and
`train:` gives `steps` or `epochs`: each in one unit, never a mix, which would leave a reader to
guess which wins. A judge is fitted for its own `steps` before any epoch starts, so its schedule
counts steps. Every problem is located at the key that breaks the rule, with the fix.
"""

from __future__ import annotations

from lossgraph.language.errors import Problems
from lossgraph.language.schema import LRScheduleSpec, Spec
from lossgraph.language.source import Source

STEP_KEYS = ("constant", "decay")
EPOCH_KEYS = ("constant_epochs", "decay_epochs")


def check_units(spec: Spec, source: Source, problems: Problems) -> None:
    """Add to `problems` every schedule or `train:` that mixes steps and epochs, or lacks its decay."""
    for name, optimizer in spec.optim.items():
        if optimizer.schedule is not None:
            _check_schedule(optimizer.schedule, ("optim", name, "schedule"), source, problems, epochs_allowed=True)
    for name, judge in spec.judges.items():
        if judge.optim.schedule is not None:
            _check_schedule(judge.optim.schedule, ("judges", name, "optim", "schedule"), source, problems,
                            epochs_allowed=False)
    given = spec.train.model_fields_set
    if spec.train.epochs is not None and "steps" in given:
        problems.add("give train.steps or train.epochs, not both", source.origin(("train", "epochs"), at_key=True),
                     "remove one: `steps: null` in a spec derived from one with steps, `train.epochs=null` on the "
                     "command line; `run --steps N` counts steps whatever the spec says")


def _check_schedule(schedule: LRScheduleSpec, path: tuple, source: Source, problems: Problems, *, epochs_allowed: bool) -> None:
    steps = [key for key in STEP_KEYS if getattr(schedule, key) is not None]
    epochs = [key for key in EPOCH_KEYS if getattr(schedule, key) is not None]
    if epochs and not epochs_allowed:
        problems.add("a judge is fitted for its steps before training, so its schedule counts steps",
                     source.origin((*path, epochs[0]), at_key=True), "write constant: and decay: instead")
    elif steps and epochs:
        problems.add("a schedule counts steps (constant, decay) or epochs (constant_epochs, decay_epochs), not both",
                     source.origin((*path, epochs[0]), at_key=True), f"drop {' and '.join(steps)} or {' and '.join(epochs)}")
    elif epochs and schedule.decay_epochs is None:
        problems.add("missing key 'decay_epochs'", source.origin(path), "add 'decay_epochs:', the epochs of linear decay")
    elif not epochs and schedule.decay is None:
        problems.add("missing key 'decay'", source.origin(path),
                     "add 'decay:' (steps of linear decay), or constant_epochs: and decay_epochs: to count epochs")
