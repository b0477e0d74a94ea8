"""Fixed networks inside a loss: a network loaded from a weights file and marked `fixed: true`, or a
judge, read by a player's term (a perceptual or feature-matching loss). Never updated: no optimizer
holds its parameters, they and its buffers are unchanged by steps; the gradient flows through it to
the generator; the file is read without running code.
"""

import copy
import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lossgraph

SPEC = """
name: perceptual
data: {x: image, y: image}
networks:
  G: {arch: unet, width: 8, depth: 2}
  F: {arch: patchgan, width: 4, weights: features.pt, fixed: true}   # a feature network, loaded
players:
  G:
    networks: [G]
    minimize:
      features: E[l1(F(G(x)) - F(y))]     # the gradient reaches G through F
train: {image_size: 16}
"""


def write_spec(folder, text=SPEC, name="perceptual.yaml"):
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def program(tmp_path):
    """The spec, with F's weights saved beside it: the arch's own weights, doubled (so they differ
    from what build_networks would draw)."""
    plain = lossgraph.compile(lossgraph.loads(SPEC.replace(", weights: features.pt", ""), "plain.yaml"))
    weights = {key: 2 * value for key, value in plain.build_networks(seed=9)["F"].state_dict().items()}
    torch.save(weights, tmp_path / "features.pt")
    return lossgraph.compile(str(write_spec(tmp_path))), weights


def test_a_fixed_network_starts_from_its_weights_file(program):
    program, weights = program
    F = program.build_networks(seed=0)["F"]
    assert all(torch.equal(F.state_dict()[key], value) for key, value in weights.items())
    assert not any(parameter.requires_grad for parameter in F.parameters())


def test_steps_never_update_a_fixed_network_and_no_optimizer_holds_it(program):
    program, _ = program
    nets = program.build_networks(seed=0)
    before = copy.deepcopy(nets)
    trainer = program.trainer(nets)
    held = {id(p) for optimizer in trainer.optimizers.values() for group in optimizer.param_groups for p in group["params"]}
    assert held.isdisjoint(id(p) for p in nets["F"].parameters())
    assert not nets["F"].training  # batch statistics, were there any, stay as loaded
    inputs = program.example_inputs(batch_size=2, seed=1)
    for _ in range(3):
        trainer.step(inputs)
    assert all(torch.equal(a, b) for a, b in zip(nets["F"].state_dict().values(), before["F"].state_dict().values()))
    assert any(not torch.equal(a, b) for a, b in zip(nets["G"].parameters(), before["G"].parameters()))


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16))
def test_the_gradient_flows_through_the_fixed_network_to_the_generator(program, seed):
    program, _ = program
    nets = {name: net.double() for name, net in program.build_networks(seed=seed).items()}
    inputs = {k: v.double() for k, v in program.example_inputs(batch_size=2, seed=seed).items()}
    got = program.losses(nets, inputs)["G/features"]
    F, G = nets["F"], nets["G"]
    want = (F(G(inputs["x"])) - F(inputs["y"])).abs().mean()  # the formula, written out
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(got, list(G.parameters()))
    expected = torch.autograd.grad(want, list(G.parameters()))
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert any(g.abs().sum() > 0 for g in grads)


def test_a_runs_resolved_spec_names_the_weights_file_wherever_it_is_read(program, tmp_path):
    from lossgraph.train.resolved import dump, resolved_data

    program, weights = program
    data = resolved_data(program.spec)
    assert data["networks"]["F"]["weights"] == str((tmp_path / "features.pt").resolve())
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    again = lossgraph.compile(str(write_spec(elsewhere, dump(data), "spec.yaml")))
    F = again.build_networks()["F"]
    assert all(torch.equal(F.state_dict()[key], value) for key, value in weights.items())


def test_safetensors_weights_load_too(tmp_path):
    from safetensors.torch import save_file

    plain = lossgraph.compile(lossgraph.loads(SPEC.replace(", weights: features.pt", ""), "plain.yaml"))
    weights = {key: value.contiguous() for key, value in plain.build_networks(seed=3)["F"].state_dict().items()}
    save_file(weights, str(tmp_path / "features.safetensors"))
    program = lossgraph.compile(str(write_spec(tmp_path, SPEC.replace("features.pt", "features.safetensors"))))
    F = program.build_networks(seed=0)["F"]
    assert all(torch.equal(F.state_dict()[key], value) for key, value in weights.items())


class Payload:
    """A pickle that would run code when loaded, were it loaded without weights_only."""

    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize(("content", "message"), [
    (None, "no weights file"),
    ({"not.a.layer": torch.zeros(2)}, "do not fit network 'F' (patchgan)"),
    ("payload", "cannot read the weights of network 'F'"),
    ({"a": 1}, "holds no state dict"),
])
def test_weights_file_mistakes_are_located(tmp_path, capsys, content, message):
    if content == "payload":
        (tmp_path / "features.pt").write_bytes(pickle.dumps({"x": Payload()}))
    elif content is not None:
        torch.save(content, tmp_path / "features.pt")
    with pytest.raises(lossgraph.SpecError) as error:
        program = lossgraph.compile(str(write_spec(tmp_path)))  # a missing file: refused here
        program.build_networks()                                 # a wrong one: when the weights are read
    text = str(error.value)
    assert message in text and "perceptual.yaml:6:42:" in text and "networks.F.weights" in text, text
    assert "this must never run" not in capsys.readouterr().out


@pytest.mark.parametrize(("change", "message"), [
    (("networks: [G]", "networks: [G, F]"), "network 'F' is fixed, but player 'G' updates it"),
    (("train:", "judges: {F: {minimize: \"E[F(y)]\"}}\ntrain:"), "network 'F' is fixed, but it is a judge"),
])
def test_a_fixed_network_is_updated_by_nobody(tmp_path, change, message):
    torch.save({}, tmp_path / "features.pt")
    with pytest.raises(lossgraph.SpecError, match=message):
        lossgraph.compile(str(write_spec(tmp_path, SPEC.replace(*change))))


def test_a_judge_inside_a_loss_is_fitted_then_held_fixed():
    """A judge (fitted before training) may be read by a loss: StarGAN's classifier as a term."""
    program = lossgraph.compile("stargan", ["+players.G.minimize.judged=E[ce(C(fake), c_t)]", "judges.C.steps=2"])
    nets = program.build_networks(seed=0)
    trainer = program.trainer(nets)
    inputs = program.example_inputs(batch_size=2, seed=1)
    trainer.fit_judges(lambda step: {k: v for k, v in inputs.items() if k in ("x", "c_s")})
    fitted = copy.deepcopy(nets["C"].state_dict())
    assert not nets["C"].training
    stats = trainer.step(inputs)
    assert "G/judged" in stats
    assert all(torch.equal(a, fitted[key]) for key, a in nets["C"].state_dict().items())
    held = {id(p) for optimizer in trainer.optimizers.values() for group in optimizer.param_groups for p in group["params"]}
    assert held.isdisjoint(id(p) for p in nets["C"].parameters())
