"""The schema's path table: `model_at` names the model of the mapping at a dotted path of a spec.

Loading answers an unknown key with the keys of the model at its parent, and an override may add
a key only where a model has it, so the table must reach every model the schema nests.
"""

from __future__ import annotations

import types
import typing

import pytest
from pydantic import BaseModel

import lossgraph
from lossgraph.language.averages import AverageSpec
from lossgraph.language.queues import QueueSpec
from lossgraph.language import schema
from lossgraph.language.schema import (
    AdamSpec,
    EmaSpec,
    JudgeSpec,
    KeepBestSpec,
    LRScheduleSpec,
    NetworkSpec,
    OptimizerSpec,
    PlayerSpec,
    RMSpropSpec,
    SGDSpec,
    Spec,
    TermSpec,
    TrainSpec,
    WeightSchedule,
    model_at,
)


@pytest.mark.parametrize(
    "path, model",
    [
        ((), Spec),
        (("networks", "G_XY"), NetworkSpec),
        (("players", "D"), PlayerSpec),
        (("players", "G", "minimize", "cycle"), TermSpec),
        (("players", "G", "maximize", "adv"), TermSpec),
        (("optim", "D"), OptimizerSpec),
        (("optim", "D", "adam"), AdamSpec),
        (("optim", "G", "rmsprop"), RMSpropSpec),
        (("optim", "G", "sgd"), SGDSpec),
        (("optim", "G", "schedule"), LRScheduleSpec),
        (("train",), TrainSpec),
        (("judges", "C"), JudgeSpec),
        (("judges", "C", "optim"), OptimizerSpec),
        (("judges", "C", "optim", "sgd"), SGDSpec),
    ],
)
def test_model_at(path, model):
    assert model_at(path) is model


@pytest.mark.parametrize(
    "path",
    [("data",), ("let",), ("players",), ("players", "G", "minimize"), ("networks",), ("optim", "D", "adam", "lr"), ("dataset",), ("nope",)],
)
def test_no_model_where_the_spec_chooses_the_keys_or_at_a_value(path):
    assert model_at(path) is None


def _nested(model: type[BaseModel], path: tuple) -> list[tuple[tuple, type[BaseModel]]]:
    """(path, model) for `model` and every model its fields hold, `*` for keys the spec chooses."""
    found = [(path, model)]
    for name, field in model.model_fields.items():
        found.extend(_within(field.annotation, path + (name,)))
    return found


def _within(annotation, path: tuple) -> list[tuple[tuple, type[BaseModel]]]:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _nested(annotation, path)
    if origin is dict:
        return _within(typing.get_args(annotation)[1], path + ("*",))
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return [item for arg in typing.get_args(annotation) for item in _within(arg, path)]
    return []  # a scalar, or a list (no list of the schema holds a model)


def test_the_table_reaches_every_model_the_schema_nests():
    nested = _nested(Spec, ())
    assert {model for _, model in nested} == {
        Spec, NetworkSpec, PlayerSpec, TermSpec, WeightSchedule, OptimizerSpec, AdamSpec, RMSpropSpec, SGDSpec, LRScheduleSpec, TrainSpec, JudgeSpec,
        KeepBestSpec, AverageSpec, QueueSpec, EmaSpec,
    }
    for path, model in nested:
        concrete = tuple("K" if part == "*" else part for part in path)
        assert model_at(concrete) is model, path
    assert set(schema.MODELS_BY_PATH) == {path for path, _ in nested}


def test_an_unknown_key_of_a_judges_optimizer_gets_a_hint():
    text = """\
name: t
data: {x: image, c: label(3)}
networks:
  G: {arch: unet}
  D: {arch: patchgan}
  C: {arch: classifier}
judges:
  C: {minimize: "E[ce(C(x), c)]", optim: {sgd: {lr: 0.1, momentun: 0.9}}}
players:
  D: {networks: [D], minimize: {adv: "E[D(x)] - E[D(G(x))]"}}
  G: {networks: [G], minimize: {adv: "E[D(G(x))]"}}
"""
    with pytest.raises(lossgraph.SpecError) as info:
        lossgraph.loads(text, "t.yaml")
    col = text.splitlines()[7].index("momentun") + 1
    assert f"t.yaml:8:{col}: judges.C.optim.sgd.momentun: unknown key 'momentun' (did you mean 'momentum'?)" in str(info.value)
