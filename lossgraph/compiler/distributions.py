"""Metrics of the whole held-out set: `fid`, `kid`, `diversity` and `cluster_accuracy` in
`evaluate:`, lowered here.

A batch metric (`error: E[l1(G(x) - y)]`) is a formula the generated `evaluate` computes on one
held-out batch. These three are not formulas of one batch: each compares the features a network
gives of many images, over the whole held-out set, so each is an `evaluate:` entry of its own,
written as one call whose arguments are image formulas:

    fid_XY: fid(G_XY(x), y)           # Fréchet distance of generated to real features
    kid_XY: kid(G_XY(x), y)           # kernel (polynomial MMD²) distance of the same sets
    diversity: diversity(G(x, z))     # mean feature distance of 10 outputs per input, z drawn anew
    diversity: diversity(G(x, z), 5)  # ... of 5 outputs per input
    clusters: cluster_accuracy(argmax(C(x)), domain)  # clusters against true classes, best matching

`cluster_accuracy` compares labels, not features: no feature network is needed for it.

`lower_distribution` recognises the call and parses each argument as a formula, so an argument's
mistake points into it; used inside a larger formula, the name is refused by the scope
(`refuse_nested`). The arguments become `DistributionMetric.images`, which the generated
`distribution_images` / `diversity_images` compute and the run compares (train/metrics/).

`choose_features` picks the network whose features they compare, once for the spec, so every
number of a run is on one feature network: `train.features` (`inception` or a judge), else the FID
Inception network when `train.fid_weights` names its weights file, else the spec's only judge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

from lossgraph.compiler.expr import Expr
from lossgraph.compiler.formula import Scope, Site, parse
from lossgraph.compiler.graph import DistributionMetric, FeatureChoice
from lossgraph.compiler.ops import Ops
from lossgraph.language.errors import FormulaError, Origin, Problems
from lossgraph.language.names import INCEPTION
from lossgraph.language.spec import Spec


@dataclass(frozen=True)
class MetricForm:
    """How one distribution metric is written: its arguments, the last `optional` of which may be left out."""

    name: str
    arguments: tuple[str, ...]
    optional: int
    meaning: str
    features: bool = True  # compares a network's features of images (else labels)

    @property
    def signature(self) -> str:
        required = self.arguments[: len(self.arguments) - self.optional]
        optional = self.arguments[len(required):]
        return f"{self.name}({', '.join(required)}{''.join(f'[, {name}]' for name in optional)})"


FORMS = {form.name: form for form in (
    MetricForm("fid", ("generated", "real"), 0, "the Fréchet distance between Gaussians fitted to the two sets' features"),
    MetricForm("kid", ("generated", "real"), 0, "the unbiased squared MMD of the two sets' features, cubic polynomial kernel"),
    MetricForm("diversity", ("outputs", "draws"), 1,
               "the mean squared distance between unit-normalised features of outputs for one input, over pairs of draws"),
    MetricForm("cluster_accuracy", ("clusters", "classes"), 0,
               "the fraction of samples whose cluster is their class under the best one-to-one matching of clusters "
               "to classes", features=False),
)}
DEFAULT_DRAWS = 10
MAX_DRAWS = 100
EXAMPLE = "fid_XY: fid(G_XY(x), y)"

_OPENING = re.compile(r"\s*([A-Za-z_]\w*)\s*\(")
_CLOSING = {")": "(", "]": "[", "}": "{"}


def call_arguments(text: str) -> tuple[str, list[tuple[int, int]]] | None:
    """(name, the span of each argument) when `text` is one call `name(a, b)` and nothing else;
    None otherwise. Formulas hold no strings, so brackets are counted exactly."""
    match = _OPENING.match(text)
    if match is None:
        return None
    start = match.end()
    depth = 0
    spans: list[tuple[int, int]] = []
    for index in range(start, len(text)):
        char = text[index]
        if char in "([{":
            depth += 1
        elif char in _CLOSING and depth > 0:
            depth -= 1
        elif char == "," and depth == 0:
            spans.append((start, index))
            start = index + 1
        elif char == ")" and depth == 0:
            if text[index + 1:].strip():
                return None  # `fid(a, b) + 1`: a call inside a larger formula
            if text[start:index].strip() or spans:
                spans.append((start, index))
            return match.group(1), [_trimmed(text, span) for span in spans]
    return None


def _trimmed(text: str, span: tuple[int, int]) -> tuple[int, int]:
    start, end = span
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def lower_evaluate(spec: Spec, scope: Scope, formula: Callable[[tuple, str], Expr | None], problems: Problems) -> dict:
    """The spec's `evaluate:` as the Graph's `evaluate` (batch metrics, each parsed by
    `formula(path, text)`), `distributions` and `features`. Problems go to `problems`.

    The scope's `is_macro` claims the names of `FORMS`, so that inside a larger formula its
    `expand` refuses them with `refuse_nested`'s reason."""
    evaluate, distributions = [], []
    for name, text in spec.evaluate.items():
        if is_distribution(spec, text):
            metric = lower_distribution(spec, scope, name, text, problems)
            if metric is not None:
                distributions.append(metric)
        elif (expr := formula(("evaluate", name), text)) is not None:
            evaluate.append((name, expr))
    arity = {network: count for network, (count, _) in getattr(scope, "arity", {}).items()}
    return {"evaluate": tuple(evaluate), "distributions": tuple(distributions),
            "features": choose_features(spec, [m for m in distributions if FORMS[m.kind].features], arity, problems)}


def is_distribution(spec: Spec, text: str) -> bool:
    """Whether metric text is written as one of `FORMS` (a spec's own macro or network of that name wins)."""
    found = call_arguments(text) if isinstance(text, str) else None
    return found is not None and found[0] in FORMS and found[0] not in spec.macros and found[0] not in spec.networks


def lower_distribution(spec: Spec, scope: Scope, name: str, text: str, problems: Problems) -> DistributionMetric | None:
    """Metric `name: text`, written as one of `FORMS` (`is_distribution`), as a `DistributionMetric`
    whose arguments `scope` gave meaning; None after adding its problems to `problems`."""
    path = ("evaluate", name)

    def locate(span: tuple[int, int] | None) -> Origin:
        return spec.source.origin(path, span)

    def parse_argument(span: tuple[int, int]) -> Expr | None:
        start, end = span
        site = Site(text[start:end], lambda inner: locate((inner[0] + start, inner[1] + start)), scope.origins)
        try:
            return parse(text[start:end], scope, site)
        except FormulaError as error:
            problems.extend(error)
            return None

    found = call_arguments(text)
    assert found is not None
    kind, spans = found
    form = FORMS[kind]
    least = len(form.arguments) - form.optional
    if not least <= len(spans) <= len(form.arguments):
        count = f"{least}" if not form.optional else f"{least} or {len(form.arguments)}"
        problems.add(f"{kind} takes {count} arguments, got {len(spans)}", locate(None),
                     f"write {form.signature}: {form.meaning}")
        return None
    images = [parse_argument(span) for span in spans[: 2 if kind != "diversity" else 1]]
    if any(image is None for image in images):
        return None
    draws = 0
    if kind == "diversity":
        draws = _draws(spans, parse_argument, locate, problems)
        if draws is None or not _draws_something(spec, images[0], locate(spans[0]), problems):
            return None
    return DistributionMetric(name, kind, tuple(images), draws)


def _draws(spans: list[tuple[int, int]], parse_argument: Callable[[tuple[int, int]], Expr | None],
           locate: Callable[[tuple[int, int] | None], Origin], problems: Problems) -> int | None:
    if len(spans) < 2:
        return DEFAULT_DRAWS
    value = parse_argument(spans[1])
    if value is None:
        return None
    if value.op is not Ops.CONST or not float(value.arg).is_integer() or not 2 <= value.arg <= MAX_DRAWS:
        problems.add(f"diversity's draws is a whole number from 2 to {MAX_DRAWS}", locate(spans[1]),
                     f"e.g. diversity(G(x, z), {DEFAULT_DRAWS}): outputs compared pairwise per input")
        return None
    return int(value.arg)


def _draws_something(spec: Spec, outputs: Expr, origin: Origin, problems: Problems) -> bool:
    """diversity varies the random variables its outputs depend on, those held-out data does not give."""
    held_out = spec.dataset.get("held_out") if isinstance(spec.dataset, dict) else None
    given = set(held_out) if isinstance(held_out, dict) else set()
    drawn = {node.arg for node in outputs.walk() if node.op is Ops.RANDOM} - given
    if drawn:
        return True
    problems.add("diversity compares outputs for one input under fresh draws, but this depends on no random variable"
                 + (" the held-out data does not give" if given else ""), origin,
                 "apply the generator to a random variable: diversity(G(x, z)) with z under random:")
    return False


def choose_features(spec: Spec, metrics: list[DistributionMetric], arity: Mapping[str, int],
                    problems: Problems) -> FeatureChoice | None:
    """The feature network of the spec's distribution metrics (module docstring), or None with a
    problem. `arity`: how many inputs each network is applied to."""
    if not metrics:
        return None
    chosen, weights = spec.train.features, spec.train.fid_weights
    locate = spec.source.origin
    where = locate(("evaluate", metrics[0].name))
    if chosen == INCEPTION or (chosen is None and weights is not None):
        return FeatureChoice(INCEPTION, weights=weights)
    judges = list(spec.judges)
    if chosen is None and len(judges) != 1:
        names = ", ".join(metric.name for metric in metrics)
        if judges:
            problems.add(f"{names}: several judges could give the features to compare", where,
                         f"choose one with train.features: one of {', '.join(judges)}, or {INCEPTION}")
        else:
            problems.add(f"{names}: {metrics[0].kind} compares the features of a network, and this spec has none", where,
                         "give the FID Inception weights file (train.fid_weights: PATH, or run with --fid-weights PATH) "
                         "or declare a judge (judges:) whose features it compares")
        return None
    judge = chosen or judges[0]
    if judge not in spec.judges:
        return None  # names.py reported it
    if arity.get(judge, 1) != 1:
        problems.add(f"judge '{judge}' is applied to {arity[judge]} inputs, but a feature network takes one image",
                     locate(("judges", judge, "minimize")), f"choose another with train.features, or {INCEPTION}")
        return None
    return FeatureChoice("judge", judge=judge)


def refuse_nested(name: str) -> str:
    """Why a distribution metric cannot be part of a formula, for the scope's error."""
    return (f"{name}(...) is a metric of the whole held-out set, not a value inside a formula: "
            f"write it as an evaluate: entry of its own, e.g. {EXAMPLE}")


def check_images(metrics: tuple[DistributionMetric, ...], features: FeatureChoice | None, values: Mapping[Expr, object],
                 feature_channels: Mapping[str, int], fail: Callable[..., None]) -> None:
    """The shape check's part (shape_check.py, on meta tensors): every argument of a distribution
    metric is an image batch, both sets of `fid` and `kid` are alike, and their channels are those
    the feature network reads (a judge's input channels; Inception's 3, or 1 repeated)."""
    for metric in metrics:
        key = f"evaluate.{metric.name}"
        if not FORMS[metric.kind].features:
            _check_labels(metric, values, fail, key)
            continue
        roles = FORMS[metric.kind].arguments
        shapes = []
        for role, image in zip(roles, metric.images):
            shape = tuple(getattr(values.get(image), "shape", ()))
            if image in values and len(shape) != 4:
                fail(image, f"{metric.kind}'s {role} is not an image batch (N, C, H, W): shape {shape or 'a number'}",
                     "give an image formula, e.g. " + EXAMPLE, key)
            shapes.append(shape)
        if len(shapes) == 2 and all(len(shape) == 4 for shape in shapes) and shapes[0][1:] != shapes[1][1:]:
            fail(metric.images[0], f"{metric.kind} compares sets of like images, but the generated are {shapes[0][1:]} "
                                   f"and the real {shapes[1][1:]} (channels, height, width)", None, key)
        elif shapes and len(shapes[0]) == 4 and features is not None:
            channels = shapes[0][1]
            wanted = (feature_channels.get(features.judge, channels),) if features.kind == "judge" else (1, 3)
            if channels not in wanted:
                reader = f"judge '{features.judge}'" if features.kind == "judge" else "the Inception network"
                fail(metric.images[0], f"{metric.kind}'s images have {channels} channels, but {reader} reads "
                                       f"{' or '.join(map(str, wanted))}", None, key)


def _check_labels(metric: DistributionMetric, values: Mapping[Expr, object], fail: Callable[..., None], key: str) -> None:
    """cluster_accuracy's arguments are integer labels, one per sample, of one batch."""
    sizes = []
    for role, labels in zip(FORMS[metric.kind].arguments, metric.images):
        value = values.get(labels)
        if value is None:
            continue
        shape, dtype = tuple(getattr(value, "shape", ())), getattr(value, "dtype", None)
        if len(shape) != 1 or dtype is None or dtype.is_floating_point or dtype.is_complex:
            fail(labels, f"{metric.kind}'s {role} are labels, one integer per sample, but this is "
                         f"{'a number' if not shape else f'of shape {shape}'}{'' if dtype is None or len(shape) != 1 else f' and {dtype}'}",
                 "give a label: argmax(C(x)) for clusters, a label variable for classes", key)
        else:
            sizes.append(shape[0])
    if len(sizes) == 2 and sizes[0] != sizes[1]:
        fail(metric.images[0], f"{metric.kind} pairs each sample's cluster with its class, but there are {sizes[0]} "
                               f"clusters and {sizes[1]} classes", None, key)
