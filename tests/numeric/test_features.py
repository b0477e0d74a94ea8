"""Macros, gp, frozen networks in a term, weight clipping, schedule repeats and history pools."""

import pytest
import torch

import lossgraph
from lossgraph.train.pool import ImagePool

BASE = """
name: features
data: {x: image, y: image}
networks:
  G: {arch: unet, width: 8, depth: 2}
  D: {arch: patchgan, width: 8, output: %(output)s}
let:
  fake: G(x)
players:
  D:
    networks: [D]
    %(d_sense)s:
      adv: %(d_term)s
  G:
    networks: [G]
    minimize:
      adv: %(g_term)s
train: {image_size: 16}
"""


def compile_spec(output="probability", d_sense="maximize", d_term="E[log(D(y))] + E[log(1 - D(fake))]", g_term="-E[log(D(fake))]", extra=""):
    text = BASE % dict(output=output, d_sense=d_sense, d_term=d_term, g_term=g_term) + extra
    return lossgraph.compile(lossgraph.loads(text, "features.yaml"))


def test_standard_macros_equal_the_formulas_they_name():
    written = compile_spec()
    macro = compile_spec(d_term="nsgan_d(D, y, fake)", g_term="nsgan_g(D, fake)")
    nets = written.build_networks(seed=0)
    inputs = written.example_inputs(batch_size=2)
    a, b = written.losses(nets, inputs), macro.losses(nets, inputs)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_a_spec_macro_shadows_the_standard_one_and_binds_networks():
    extra = "macros:\n  nsgan_g(N, v): -E[log(N(v))] * 2\n"
    program = compile_spec(g_term="nsgan_g(D, fake)", extra=extra)
    nets = program.build_networks(seed=0)
    inputs = program.example_inputs(batch_size=2)
    reference = compile_spec()
    torch.testing.assert_close(program.losses(nets, inputs)["G"], 2 * reference.losses(nets, inputs)["G"])


@pytest.mark.parametrize(("term", "message"), [
    ("nsgan_g(D)", "macro nsgan_g(D, fake) takes 2 arguments, got 1"),
    ("nsgan_g(fake, D)", "in macro 'nsgan_g'"),
    ("loop(D, fake)", "macro 'loop' expands into itself: loop -> loop"),
    ("uses_global(D, fake)", "unknown name 'y' in macro 'uses_global'"),
])
def test_macro_errors_are_located_at_the_call(term, message):
    extra = "macros:\n  loop(D, v): loop(D, v)\n  uses_global(D, v): E[D(y)]\n"
    with pytest.raises(lossgraph.SpecError) as error:
        compile_spec(g_term=term, extra=extra)
    text = str(error.value)
    assert message in text
    assert "features.yaml:" in text and "players.G.minimize.adv" in text


def test_gradient_penalty_is_the_wgan_gp_formula_and_double_backward_works():
    program = compile_spec(output="raw", d_sense="minimize", d_term="wgan_gp_d(D, y, fake)", g_term="wgan_g(D, fake)")
    assert "mix = interpolate(y, fake)" in program.code  # the standard library's gp, written with grad
    assert "torch.autograd.grad(D_mix_in.sum(), mix_in, create_graph=True)[0]" in program.code
    nets = program.build_networks(seed=0)
    inputs = program.example_inputs(batch_size=3, seed=1)
    torch.manual_seed(5)
    got = program.losses(nets, inputs)["D"]
    torch.manual_seed(5)
    D, fake = nets["D"], nets["G"](inputs["x"])
    alpha = torch.rand(3, 1, 1, 1)
    mixed = (alpha * inputs["y"] + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(mixed).sum(), mixed, create_graph=True)
    penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    want = D(fake).mean() - D(inputs["y"]).mean() + 10 * penalty
    torch.testing.assert_close(got, want)
    got.backward()  # through the penalty's own backward: double backward
    assert all(p.grad is not None for p in D.parameters())


def test_a_term_that_updates_some_networks_leaves_the_others_untouched():
    text = """
name: frozen
data: {x: image}
networks:
  G: {arch: unet, width: 8, depth: 2}
  R: {arch: unet, width: 8, depth: 2}
  D: {arch: patchgan, width: 8}
players:
  G:
    networks: [G, R]
    minimize:
      both: E[l1(R(G(x)) - x)]
      g_only: {expr: "E[l1(R(G(x)))]", updates: [G]}
  D:
    networks: [D]
    minimize:
      adv: E[D(G(x))]
train: {image_size: 16}
"""
    program = lossgraph.compile(lossgraph.loads(text, "frozen.yaml"))
    assert "torch.func.functional_call(R, frozen(R), (" in program.code
    nets = program.build_networks(seed=0)
    losses = program.losses(nets, program.example_inputs(batch_size=2))
    g_only = losses["G/g_only"]
    grads_r = torch.autograd.grad(g_only, list(nets["R"].parameters()), allow_unused=True)
    grads_g = torch.autograd.grad(g_only, list(nets["G"].parameters()), allow_unused=True)
    assert all(g is None or torch.count_nonzero(g) == 0 for g in grads_r)
    assert any(g is not None and torch.count_nonzero(g) > 0 for g in grads_g)


def test_updates_must_name_the_players_own_networks():
    with pytest.raises(lossgraph.SpecError, match="term 'adv' can only update networks of player 'G'"):
        compile_spec(g_term='{expr: "-E[log(D(fake))]", updates: [D]}')


def test_clip_bounds_every_weight_after_the_step():
    extra_clip = compile_spec(output="raw", d_sense="maximize", d_term="wgan_d(D, y, fake)", g_term="wgan_g(D, fake)")
    text = BASE % dict(output="raw", d_sense="maximize", d_term="wgan_d(D, y, fake)", g_term="wgan_g(D, fake)")
    text = text.replace("    maximize:\n      adv: wgan_d", "    clip: 0.01\n    maximize:\n      adv: wgan_d")
    program = lossgraph.compile(lossgraph.loads(text, "clip.yaml"))
    assert extra_clip.code != program.code
    trainer = program.trainer(program.build_networks(seed=0))
    trainer.step(program.example_inputs(batch_size=2))
    assert all(float(p.abs().max()) <= 0.01 for p in trainer.nets["D"].parameters())
    assert any(float(p.abs().max()) > 0.01 for p in trainer.nets["G"].parameters())


def test_schedule_repeats_a_players_step():
    text = (BASE % dict(output="probability", d_sense="maximize", d_term="nsgan_d(D, y, fake)", g_term="nsgan_g(D, fake)")) + "schedule: [{D: 3}, G]\n"
    program = lossgraph.compile(lossgraph.loads(text, "repeat.yaml"))
    trainer = program.trainer(program.build_networks(seed=0))
    trainer.step(program.example_inputs(batch_size=2))
    steps = lambda player: int(next(iter(trainer.optimizers[player].state.values()))["step"])  # noqa: E731
    assert steps("D") == 3 and steps("G") == 1


def test_history_pool_fills_then_mixes_and_keeps_batch_size():
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.randn(3, 3, 4, 4)
    assert torch.equal(pool.query(first), first)
    second = torch.randn(3, 3, 4, 4)
    out = pool.query(second)
    assert out.shape == second.shape and len(pool.images) == 4
    older = [torch.equal(image, old) for image in out for old in first]
    assert any(older) or torch.equal(out[1:], second[1:])
    restored = ImagePool(1)
    restored.load_state_dict(pool.state_dict())
    assert restored.size == 4 and all(torch.equal(a, b) for a, b in zip(restored.images, pool.images))


def test_cyclegan_pools_images_in_training_but_not_in_losses():
    program = lossgraph.compile("cyclegan")
    assert 'fake_y_pool = pools["D"]["fake_y"].query(fake_y)' in program.code
    trainer = program.trainer(program.build_networks(seed=0))
    trainer.step(program.example_inputs(batch_size=2))
    assert len(trainer.pools["D"]["fake_y"].images) == 2
    assert "pools" not in program.code.split("def iteration")[0]  # losses() computes the formula


DERIVED = """extends: discogan
name: discogan-ls
networks:
  D_X: {arch: patchgan, output: raw}
  D_Y: {arch: patchgan, output: raw}
players:
  D:
    maximize: null
    minimize:
      adv_Y: lsgan_d(D_Y, y, fake_y)
      adv_X: lsgan_d(D_X, x, fake_x)
  G:
    minimize:
      adv: lsgan_g(D_Y, fake_y) + lsgan_g(D_X, fake_x)
"""


def test_extends_overrides_terms_by_name_and_keeps_the_rest(tmp_path):
    path = tmp_path / "derived.yaml"
    path.write_text(DERIVED)
    spec = lossgraph.load(str(path))
    assert spec.name == "discogan-ls" and spec.players["D"].sense == "minimize"
    assert spec.players["G"].terms["recon"].expr.startswith("E[l2sq(")  # kept from the base
    assert spec.networks["G_XY"].arch == "unet"
    program = lossgraph.compile(spec)
    assert "D/adv_Y" in program.losses(program.build_networks(seed=0), program.example_inputs(batch_size=2))


def test_extends_locates_errors_in_the_file_that_wrote_them(tmp_path):
    path = tmp_path / "derived.yaml"
    path.write_text(DERIVED.replace("lsgan_d(D_X, x, fake_x)", "lsgan_d(D_X, x, fake_Z)"))
    with pytest.raises(lossgraph.SpecError) as error:
        lossgraph.compile(str(path))
    assert f"{path}:11:" in str(error.value) and "did you mean 'fake_x'?" in str(error.value)


def test_extends_cycles_and_unknown_bases_are_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    with pytest.raises(lossgraph.SpecError, match="extends forms a cycle"):
        lossgraph.load(str(tmp_path / "a.yaml"))
    (tmp_path / "c.yaml").write_text("extends: discogen\nname: c\n")
    with pytest.raises(lossgraph.SpecError, match="did you mean 'discogan'"):
        lossgraph.load(str(tmp_path / "c.yaml"))
