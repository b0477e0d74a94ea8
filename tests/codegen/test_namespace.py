"""Spec names never shadow the generated code's own names (Note [Generated code's own names]).

Every name the emitted modules use that the spec does not give them (imports, function
parameters, runtime helpers, loop variables, builtins) is collected from the generated source of
every shipped spec; a spec that uses each of them as a data, random, let and network name must
compile, train an iteration and give the same losses as the same spec under plain names.
"""

import ast
import builtins
import re

import pytest
import torch

import lossgraph
from lossgraph.compiler.codegen import GENERATED_NAMES
from lossgraph.compiler.ops import BUILTINS
from tests.conftest import SPECS

# Exercises every kind of generated line: a history pool, a repeated phase (loop variable), a
# batched pair, a gradient penalty, a frozen network (updates:), heads, a random draw, a let.
BASE = """
name: clash
data: {AA: image, BB: image}
random: {RR: normal(4)}
networks:
  NG: {arch: unet}
  NE: {arch: encoder, latent: 4, heads: {mu: raw, logvar: raw}}
  ND: {arch: patchgan, output: raw}
let:
  LL: NG(AA, RR)
players:
  D:
    networks: [ND]
    minimize:
      adv: E[(ND(BB) - 1)^2] + E[ND(LL)^2]
      gp: {weight: 10, expr: "gp(ND, BB, LL)"}
    pool: {LL: 4}
  G:
    networks: [NG, NE]
    minimize:
      adv: E[(ND(LL) - 1)^2]
      latent: {weight: 0.5, expr: "E[l1(RR - NE.mu(LL))]", updates: [NG]}
      kl: {weight: 0.01, expr: "E[kl(NE.mu(BB), NE.logvar(BB))]"}
schedule: [{D: 2}, G]
train: {image_size: 32}
"""
ROLES = {"data": "AA", "random": "RR", "let": "LL", "network": "ND"}


def used_names(code: str) -> set[str]:
    """Names a generated module uses that no assignment in it makes: imports, parameters, loop
    variables and helpers."""
    tree = ast.parse(code)
    names = set()
    for function in (node for node in tree.body if isinstance(node, ast.FunctionDef)):
        stored = {node.id for node in ast.walk(function) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
        loaded = {node.id for node in ast.walk(function) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
        names |= {arg.arg for arg in function.args.args}
        names |= {target.id for node in ast.walk(function) if isinstance(node, ast.For) for target in [node.target] if isinstance(target, ast.Name)}
        names |= loaded - stored
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def module_names() -> set[str]:
    found = set()
    for spec in SPECS:
        found |= used_names(lossgraph.compile(str(spec)).code)
    found |= used_names(lossgraph.compile(lossgraph.loads(BASE, "clash.yaml")).code)
    return found


def test_generated_names_are_known():
    """Every name the generated code uses itself is in GENERATED_NAMES or is a Python builtin."""
    unknown = {name for name in module_names() if name not in GENERATED_NAMES and not hasattr(builtins, name)}
    assert not unknown, f"names the generated code uses but codegen does not keep apart: {sorted(unknown)}"


def _clashing_names() -> list[str]:
    spec_names = sorted(name for name in module_names() | GENERATED_NAMES
                        if name.isidentifier() and name != "E" and name not in BUILTINS)
    return spec_names


def _renamed(role: str, name: str) -> str:
    return re.sub(rf"\b{ROLES[role]}\b", name, BASE)


def _stats(program, nets, inputs):
    torch.manual_seed(0)
    trainer = program.trainer({key: value for key, value in nets.items()})
    return trainer.step(inputs)


@pytest.fixture(scope="module")
def base():
    program = lossgraph.compile(lossgraph.loads(BASE, "clash.yaml"))
    nets = program.build_networks(seed=0)
    inputs = program.example_inputs(batch_size=4, seed=0)
    torch.manual_seed(0)  # the gradient penalty's mixing weights
    losses = program.losses(nets, inputs)
    return program, nets, inputs, losses


@pytest.mark.parametrize("name", _clashing_names())
@pytest.mark.parametrize("role", sorted(ROLES))
def test_spec_names_never_shadow_generated_code(base, role, name):
    program0, nets0, inputs0, losses0 = base
    program = lossgraph.compile(lossgraph.loads(_renamed(role, name), "clash.yaml"))
    old = ROLES[role]
    rename = lambda key: name if key == old else key  # noqa: E731
    nets = {rename(key): net for key, net in nets0.items()}
    inputs = {rename(key): value for key, value in inputs0.items()}
    torch.manual_seed(0)
    losses = program.losses(nets, inputs)
    assert losses.keys() == losses0.keys()
    for key in losses0:
        assert torch.allclose(losses[key], losses0[key], rtol=1e-5, atol=1e-6), key
    if role == "network":
        assert f'nets["{name}"]' in program.code
    elif role != "let":
        assert f'inputs["{name}"]' in program.code


@pytest.mark.parametrize("name", ["parameters", "optimizers", "pools", "batched", "torch", "_"])
def test_an_iteration_trains_with_clashing_names(base, name):
    """The regression: data or a let named like the iteration's parameters crashed inside it."""
    program0, nets0, inputs0, _ = base
    import copy

    for role in ("data", "let", "network"):
        program = lossgraph.compile(lossgraph.loads(_renamed(role, name), "clash.yaml"))
        old = ROLES[role]
        nets = {(name if key == old else key): copy.deepcopy(net) for key, net in nets0.items()}
        inputs = {(name if key == old else key): value for key, value in inputs0.items()}
        stats = _stats(program, nets, inputs)
        expected = _stats(program0, copy.deepcopy(nets0), inputs0)
        for key in expected:
            assert stats[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), (role, key)
