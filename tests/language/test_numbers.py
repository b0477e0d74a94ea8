"""Numbers in a spec: a weight, rate or count is a finite number, never a boolean read as 1.

YAML reads `.inf`, `.nan` as floats and leaves `1e400` a string that pydantic reads as inf;
pydantic reads `true` as 1 where a field holds a number. Each would train a meaningless objective
(an infinite weight makes every loss inf) or a silently different one, so `check` refuses them at
the value, in the file and in an override alike.
"""

from __future__ import annotations

import pytest

import lossgraph

SPEC = """\
name: t
data: {x: image, y: image}
networks:
  G: {arch: unet, width: 4, depth: 2}
  D: {arch: patchgan, width: 4}
players:
  D: {networks: [D], minimize: {adv: "E[relu(1 - D(y))] + E[relu(1 + D(G(x)))]"}}
  G:
    networks: [G]
    minimize:
      adv: -E[D(G(x))]
      l1: {weight: WEIGHT, expr: "E[l1(G(x) - y)]"}
optim:
  G: {adam: {lr: LR}}
train: {steps: STEPS, batch_size: 2, image_size: 16}
"""


def spec(weight="10", lr="2.0e-4", steps="10") -> str:
    return SPEC.replace("WEIGHT", weight).replace("LR", lr).replace("STEPS", steps)


def refusal(text: str, overrides=()) -> str:
    with pytest.raises(lossgraph.SpecError) as info:
        lossgraph.loads(text, "t.yaml", overrides)
    return str(info.value)


def test_finite_numbers_load():
    loaded = lossgraph.loads(spec(), "t.yaml")
    assert loaded.players["G"].minimize["l1"].weight == 10
    assert loaded.train.steps == 10


@pytest.mark.parametrize("written, shown", [(".inf", "inf"), ("-.inf", "-inf"), (".nan", "nan")])
def test_an_infinite_or_nan_weight_is_refused_at_the_value(written, shown):
    text = spec(weight=written)
    col = text.splitlines()[11].index(written) + 1
    message = refusal(text)
    assert f"t.yaml:12:{col}: players.G.minimize.l1.weight: {shown} is not a finite number" in message


def test_a_number_too_large_for_a_float_is_refused():
    text = spec(weight="1e400")  # YAML 1.1 leaves it a string; pydantic would read it as inf
    col = text.splitlines()[11].index("1e400") + 1
    assert f"t.yaml:12:{col}: players.G.minimize.l1.weight: 1e400 reads as inf, not a finite number" in refusal(text)


def test_an_infinite_learning_rate_is_refused():
    assert "t.yaml:14:" in refusal(spec(lr=".inf")) and "optim.G.adam.lr: inf is not a finite number" in refusal(spec(lr=".inf"))


def test_nan_inside_a_weight_schedule_is_refused():
    message = refusal(spec(weight="{linear: [0, .nan], steps: 100}"))
    assert "players.G.minimize.l1.weight.linear[1]: nan is not a finite number" in message


@pytest.mark.parametrize("written, key, line", [("true", "players.G.minimize.l1.weight", 12), ("false", "players.G.minimize.l1.weight", 12)])
def test_a_boolean_weight_is_refused(written, key, line):
    assert f"t.yaml:{line}:" in refusal(spec(weight=written))
    assert f"{key}: {written} is a boolean, but a number goes here" in refusal(spec(weight=written))


def test_a_boolean_step_count_is_refused():
    assert "train.steps: true is a boolean, but a number goes here" in refusal(spec(steps="true"))


def test_overrides_are_checked_the_same_way():
    assert "<override 1>:1:" in refusal(spec(), ["players.G.minimize.l1.weight=.inf"])
    assert "train.steps: true is a boolean" in refusal(spec(), ["train.steps=true"])


def test_booleans_where_the_spec_takes_booleans_stay_valid():
    text = spec().replace("{arch: unet, width: 4, depth: 2}", "{arch: unet, width: 4, depth: 2, bias: true}")
    assert lossgraph.loads(text, "t.yaml").networks["G"].model_extra["bias"] is True
