"""Steps or epochs: what pydantic cannot see in a spec's learning-rate schedules and `train:`.

A schedule counts steps (`constant`, `decay`) or epochs (`constant_epochs`, `decay_epochs`), or
multiplies the rate by `gamma` at steps (`every` or `milestones`), and `train:` gives `steps` or
`epochs`: each in one form, never a mix, which would leave a reader to guess which wins. A judge is fitted for its own `steps` before any epoch starts, so its schedule
counts steps. Every problem is located at the key that breaks the rule, with the fix.
"""

from __future__ import annotations

from lossgraph.language.errors import Problems
from lossgraph.language.rates import LRScheduleSpec
from lossgraph.language.schema import Spec
from lossgraph.language.source import Source

STEP_KEYS = ("constant", "decay")
EPOCH_KEYS = ("constant_epochs", "decay_epochs")
DROP_KEYS = ("every", "milestones", "gamma")


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
    drops = [key for key in DROP_KEYS if getattr(schedule, key) is not None]
    if drops:
        _check_drops(schedule, steps + epochs, path, source, problems)
    elif epochs and not epochs_allowed:
        problems.add("a judge is fitted for its steps before training, so its schedule counts steps",
                     source.origin((*path, epochs[0]), at_key=True), "write constant: and decay: instead")
    elif steps and epochs:
        problems.add("a schedule counts steps (constant, decay) or epochs (constant_epochs, decay_epochs), not both",
                     source.origin((*path, epochs[0]), at_key=True), f"drop {' and '.join(steps)} or {' and '.join(epochs)}")
    elif epochs and schedule.decay_epochs is None:
        problems.add("missing key 'decay_epochs'", source.origin(path), "add 'decay_epochs:', the epochs of linear decay")
    elif not epochs and schedule.decay is None:
        problems.add("missing key 'decay'", source.origin(path),
                     "add 'decay:' (steps of linear decay), or constant_epochs: and decay_epochs: to count epochs, "
                     "or every: (or milestones:) and gamma: for a step schedule")


def _check_drops(schedule: LRScheduleSpec, linear: list[str], path: tuple, source: Source, problems: Problems) -> None:
    """A step schedule: `gamma` with exactly one of `every` and `milestones` (rising), nothing else."""
    if linear:
        problems.add("a schedule is a linear decay (constant, decay, constant_epochs, decay_epochs) or a step schedule "
                     "(every or milestones, with gamma), not both",
                     source.origin((*path, linear[0]), at_key=True), f"drop {' and '.join(linear)}")
    elif schedule.every is not None and schedule.milestones is not None:
        problems.add("a step schedule drops the rate every N steps or at listed milestones, not both",
                     source.origin((*path, "milestones"), at_key=True), "drop every: or milestones:")
    elif schedule.gamma is None:
        problems.add("missing key 'gamma'", source.origin(path), "add 'gamma:', the factor the rate is multiplied by "
                     "at each drop (0.5 halves it)")
    elif schedule.every is None and schedule.milestones is None:
        problems.add("a step schedule needs every: N (drop every N steps) or milestones: [N1, N2, ...]",
                     source.origin((*path, "gamma"), at_key=True), "add every: or milestones:")
    elif schedule.milestones is not None and any(b <= a for a, b in zip(schedule.milestones, schedule.milestones[1:])):
        problems.add(f"milestones must rise; got {schedule.milestones}",
                     source.origin((*path, "milestones")), f"write them in order: {sorted(set(schedule.milestones))}")
