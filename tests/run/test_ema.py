"""Moving averages of network weights (`ema: {G: 0.9}`): validation, the closed-form recurrence,
checkpoints (`G@ema`), samples and evaluation with the averages, exact resume, `translate --ema`,
and a skipped non-finite step undoing the averages and the learning-rate schedule too."""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import lossgraph
from lossgraph.train.checkpoint import latest_checkpoint, load_checkpoint, read_checkpoint_state, stored_networks
from lossgraph.cli import main
from lossgraph.data import open_dataset
from lossgraph.train.ema import EMA
from lossgraph.language.errors import LossgraphError, SpecError
from lossgraph.train.nonfinite import StepGuard
from lossgraph.train.run import RunOptions, train

TINY = Path(__file__).with_name("tiny.yaml")
DECAY = 0.9


def compile_tiny(*overrides: str):
    return lossgraph.compile(lossgraph.load(TINY, overrides=list(overrides)))


def dataset_of(program):
    spec = program.spec
    return open_dataset(spec.dataset, spec.kinds, spec.train.image_size, seed=0, base_dir=TINY.parent)


def run(program, out: Path, steps: int, **options):
    options.setdefault("progress", False)
    options.setdefault("tensorboard", False)
    options.setdefault("checkpoint_every", 5)
    return train(program, dataset_of(program), RunOptions(out_dir=out, device="cpu", steps=steps, **options))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def stored(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(latest_checkpoint(out / "checkpoints") / "nets.safetensors"))


# ----------------------------------------------------------------------------- the spec


def test_ema_maps_networks_to_decays():
    assert lossgraph.load(TINY, overrides=["+ema.G=0.999"]).ema == {"G": 0.999}
    assert lossgraph.load(TINY).ema == {}


@pytest.mark.parametrize("override, message", [
    ("+ema.Gen=0.999", "ema.Gen: unknown network 'Gen'"),
    ("+ema.G=1", "ema.G: an EMA decay is a number strictly between 0 and 1"),
    ("+ema.G=0", "ema.G: an EMA decay is a number strictly between 0 and 1"),
    ("+ema.G=slow", "ema.G: an EMA decay is a number strictly between 0 and 1"),
    ("ema=0.999", "ema: ema maps a network to the decay"),
])
def test_bad_ema_entries_are_located_errors(override, message):
    with pytest.raises(SpecError) as caught:
        lossgraph.load(TINY, overrides=[override])
    assert message in str(caught.value)
    assert "<override 1>:1:" in str(caught.value)


@pytest.mark.parametrize("override, message", [
    ("+ema.G={decay: 1.5, start: 3}", "ema.G.decay: an EMA decay is a number strictly between 0 and 1"),
    ("+ema.G={decay: 0.9, start: -2}", "ema.G.start: an EMA's start is the iteration its averaging starts at"),
    ("+ema.G={decay: 0.9, begin: 3}", "ema.G.begin: unknown key 'begin' (expected one of 'decay', 'start')"),
    ("+ema.G={start: 3}", "ema.G: missing key 'decay'"),
])
def test_an_average_with_a_start_is_checked_key_by_key(override, message):
    with pytest.raises(SpecError) as caught:
        lossgraph.load(TINY, overrides=[override])
    assert message in str(caught.value) and "problems:" not in str(caught.value)  # one error, not one per member


def test_an_average_with_a_start_copies_the_network_until_then():
    """`{decay, start: 2}`: after iterations 0 and 1 the average is the network itself; from
    iteration 2 on it follows the recurrence from the weights after iteration 1."""
    program = compile_tiny(f"+ema.G={{decay: {DECAY}, start: 2}}")
    assert program.spec.ema_settings == {"G": (DECAY, 2)}
    nets = program.build_networks(seed=0)
    trainer = program.trainer(nets)
    history = []
    for step in range(1, 6):
        trainer.step(program.example_inputs(batch_size=2, seed=step))
        history.append(snapshot(nets["G"]))
        average = {key: value.double() for key, value in trainer.ema_nets["G"].state_dict().items()}
        if step <= 2:  # iterations 0 and 1
            assert all(torch.equal(average[key], history[-1][key]) for key in average), step
    for key, expected in closed_form(DECAY, history[1:]).items():
        assert torch.allclose(average[key], expected, rtol=1e-5, atol=1e-6), key


def test_an_average_of_a_network_no_player_trains_is_refused():
    overrides = ["+networks.C={arch: patchgan, width: 4, layers: 1, norm: none}",
                 "+judges.C={minimize: 'E[C(x)^2]', steps: 1}", "+ema.C=0.99"]
    with pytest.raises(SpecError, match="network 'C' is updated by no player"):
        lossgraph.load(TINY, overrides=overrides)


# ----------------------------------------------------------------------------- the average


def closed_form(decay: float, weights: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """shadow_k = decay^k w_0 + sum_i (1 - decay) decay^(k - i) w_i, over the weights w_i at the end
    of iterations i = 1..k, written out term by term."""
    steps = len(weights) - 1
    return {key: decay ** steps * weights[0][key] + sum((1 - decay) * decay ** (steps - i) * weights[i][key] for i in range(1, steps + 1))
            for key in weights[0]}


def snapshot(network: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.double().clone() for key, value in network.state_dict().items()}


@pytest.mark.parametrize("schedule", ["[D, G]", "[{D: 2}, G]"])
def test_the_average_follows_the_closed_form_recurrence_once_per_iteration(schedule):
    # a critic stepped twice per iteration still moves its average once, after its second step
    program = compile_tiny(f"schedule={schedule}", f"+ema.G={DECAY}", "+ema.D=0.5")
    nets = program.build_networks(seed=0)
    trainer = program.trainer(nets)
    history = {name: [snapshot(nets[name])] for name in ("G", "D")}
    for step in range(1, 5):
        trainer.step(program.example_inputs(batch_size=2, seed=step))
        for name in history:
            history[name].append(snapshot(nets[name]))
    for name, decay in (("G", DECAY), ("D", 0.5)):
        average = trainer.ema_nets[name].state_dict()
        for key, expected in closed_form(decay, history[name]).items():
            assert torch.allclose(average[key].double(), expected, rtol=1e-5, atol=1e-6), f"{name}.{key}"
        assert not torch.equal(average[next(iter(average))], nets[name].state_dict()[next(iter(average))])


def test_two_steps_of_one_player_move_the_average_once_per_iteration():
    """G and a second step of G's (`step_of`, StarGAN v2's latent- and reference-guided passes):
    the average moves once an iteration, towards the weights after the second step, with the
    spec's decay; never towards those between the two steps."""
    second = "+players.G2={step_of: G, minimize: {adv: 'E[(D(G(x)) - 1)^2]'}}"
    program = compile_tiny(second, "schedule=[D, G, G2]", f"+ema.G={DECAY}")
    nets = program.build_networks(seed=0)
    trainer = program.trainer(nets)
    between = []  # G's weights after each of its optimizer's steps
    trainer.optimizers["G"].register_step_post_hook(lambda *_: between.append(snapshot(nets["G"])))
    ends = [snapshot(nets["G"])]
    for step in range(1, 4):
        trainer.step(program.example_inputs(batch_size=2, seed=step))
        ends.append(snapshot(nets["G"]))
    assert len(between) == 2 * 3 and all(torch.equal(between[2 * i + 1][key], ends[i + 1][key]) for i in range(3) for key in ends[0])
    average = trainer.ema_nets["G"].state_dict()
    for key, expected in closed_form(DECAY, ends).items():
        assert torch.allclose(average[key].double(), expected, rtol=1e-5, atol=1e-6), key
    # the recurrence over both steps (the former behaviour) is another number
    twice = closed_form(DECAY, [ends[0], *between])
    assert any(not torch.allclose(average[key].double(), twice[key], rtol=1e-5, atol=1e-6) for key in twice)


def test_buffers_are_averaged_and_integer_buffers_copied():
    network = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    average = EMA(network, 0.75)
    assert average.module is not network and not any(p.requires_grad for p in average.module.parameters())
    start = copy.deepcopy(network.state_dict())
    network.train()
    network(torch.randn(8, 3))  # running statistics move; the counter becomes 1
    with torch.no_grad():
        network[0].weight.add_(1.0)
    average.update()
    state, live = average.module.state_dict(), network.state_dict()
    for key in ("0.weight", "1.running_mean", "1.running_var"):
        assert torch.allclose(state[key], 0.75 * start[key] + 0.25 * live[key])
    assert state["1.num_batches_tracked"] == 1
    average.reset()
    assert all(torch.equal(state[key], live[key]) for key in live)


def test_a_clipped_critic_averages_its_clipped_weights():
    # a decay near 0 makes the average the last weights: those after the clip, not before it
    program = compile_tiny("players.D.clip=0.01", "+ema.D=1e-6")
    nets = program.build_networks(seed=0)
    trainer = program.trainer(nets)
    for step in range(1, 4):
        trainer.step(program.example_inputs(batch_size=2, seed=step))
    live = nets["D"].state_dict()
    for key, value in trainer.ema_nets["D"].state_dict().items():
        assert value.abs().max() <= 0.01 + 1e-5
        assert torch.allclose(value, live[key], atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- runs


def test_a_run_says_where_an_average_starts(tmp_path, capsys):
    run(compile_tiny(f"+ema.G={{decay: {DECAY}, start: 2}}"), tmp_path, 3, eval_every=3)
    assert "moving averages (EMA) of G (decay 0.9, from iteration 2)" in capsys.readouterr().err


def test_a_run_saves_the_averages_and_samples_and_evaluates_with_them(tmp_path, capsys):
    program = compile_tiny(f"+ema.G={DECAY}")
    run(program, tmp_path, 6, eval_every=3)
    assert "moving averages (EMA) of G (decay 0.9)" in capsys.readouterr().err
    checkpoint = latest_checkpoint(tmp_path / "checkpoints")
    assert stored_networks(checkpoint) == ["D", "G", "G@ema"]
    tensors = stored(tmp_path)
    assert any(key.startswith("G@ema.") for key in tensors)
    assert not torch.equal(tensors["G@ema.down.0.0.weight"], tensors["G.down.0.0.weight"])
    # the averages are stored once, as networks: the trainer's state in state.pt leaves them out
    assert "ema" not in read_checkpoint_state(checkpoint)["trainer"]

    # eval.csv's last value is the held-out metric of the average, not of the trained weights
    nets = program.build_networks(seed=0)
    average = copy.deepcopy(nets["G"])
    load_checkpoint(checkpoint, {**nets, "G@ema": average})
    held_out = dataset_of(program).held_out(64)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        with torch.no_grad():
            averaged = program.evaluate({**nets, "G": average}, held_out)["error"]
            live = program.evaluate(nets, held_out)["error"]
    logged = float(read_csv(tmp_path / "eval.csv")[-1]["error"])
    assert logged == pytest.approx(averaged, rel=1e-6)
    assert logged != pytest.approx(live, rel=1e-6)


def test_resume_is_exact_with_averages_and_schedules(tmp_path):
    program = compile_tiny(f"+ema.G={DECAY}", "+ema.D=0.5", "optim.G.schedule={constant: 4, decay: 8}")
    run(program, tmp_path / "whole", 12, eval_every=4)
    run(program, tmp_path / "split", 7, eval_every=4)
    run(program, tmp_path / "split", 12, eval_every=4, resume=True)
    strip = lambda rows: [{key: value for key, value in row.items() if key != "seconds"} for row in rows]  # noqa: E731
    assert strip(read_csv(tmp_path / "split" / "metrics.csv")) == strip(read_csv(tmp_path / "whole" / "metrics.csv"))
    # the first part also evaluated at its last step, 7
    assert [row for row in read_csv(tmp_path / "split" / "eval.csv") if row["step"] != "7"] == \
        read_csv(tmp_path / "whole" / "eval.csv")
    whole, split = stored(tmp_path / "whole"), stored(tmp_path / "split")
    assert whole.keys() == split.keys() and any(key.startswith("D@ema.") for key in whole)
    for key in whole:
        assert torch.equal(whole[key], split[key]), key


def test_an_average_added_on_resume_starts_at_the_resumed_weights(tmp_path, capsys):
    from safetensors.torch import load_file

    run(compile_tiny(), tmp_path, 5)
    run(compile_tiny(f"+ema.G={DECAY}"), tmp_path, 6, resume=True, allow_spec_change=True)
    assert "has no moving average of G: starting it at the resumed weights" in capsys.readouterr().err
    at_5 = load_file(str(tmp_path / "checkpoints" / "step_000005" / "nets.safetensors"))
    at_6 = stored(tmp_path)
    for key in [key for key in at_6 if key.startswith("G.")]:
        expected = DECAY * at_5[key] + (1 - DECAY) * at_6[key]
        assert torch.allclose(at_6["G@ema." + key[2:]], expected, rtol=1e-6, atol=1e-7), key
    run(compile_tiny(), tmp_path, 7, resume=True, allow_spec_change=True)  # and dropped again: ignored
    assert stored_networks(latest_checkpoint(tmp_path / "checkpoints")) == ["D", "G"]


def test_a_skipped_step_restores_the_averages_and_the_schedule():
    program = compile_tiny(f"+ema.G={DECAY}", "optim.G.schedule={constant: 1, decay: 5}")
    nets = program.build_networks(seed=0)
    trainer = program.trainer(nets)
    trainer.step(program.example_inputs(batch_size=2, seed=1))
    state = trainer.state_dict()
    assert set(state) >= {"schedulers", "ema"}
    before = {key: value.clone() for key, value in trainer.ema_nets["G"].state_dict().items()}
    rate = trainer.optimizers["G"].param_groups[0]["lr"]
    guard = StepGuard(nets, trainer)
    guard.save()
    poisoned = program.example_inputs(batch_size=2, seed=2)
    poisoned["x"] = torch.full_like(poisoned["x"], math.nan)
    stats = trainer.step(poisoned)
    assert not math.isfinite(stats["G"])
    assert trainer.optimizers["G"].param_groups[0]["lr"] != rate  # the step moved both on
    guard.restore()
    assert trainer.optimizers["G"].param_groups[0]["lr"] == rate
    assert trainer.schedulers["G"].last_epoch == 1 and trainer.iteration == 1
    after = trainer.ema_nets["G"].state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_translate_applies_the_average_with_ema(tmp_path, capsys):
    from PIL import Image

    program = compile_tiny(f"+ema.G={DECAY}")
    out = tmp_path / "run"
    run(program, out, 5)
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    Image.new("RGB", (8, 8), (200, 40, 90)).save(image)
    assert main(["translate", str(out), "--input", str(image), "--output", str(tmp_path / "live")]) == 0
    assert main(["translate", str(out), "--input", str(image), "--output", str(tmp_path / "ema"), "--ema"]) == 0
    assert "with G's moving average" in capsys.readouterr().out

    from lossgraph.data.folders import load_image
    from lossgraph.train.images import to_uint8

    nets = program.build_networks(seed=0)
    average = copy.deepcopy(nets["G"])
    load_checkpoint(latest_checkpoint(out / "checkpoints"), {**nets, "G@ema": average})
    with torch.no_grad():
        expected = to_uint8(average.eval()(load_image(image, 8, 3)[None]))[0].numpy()
        trained = to_uint8(nets["G"].eval()(load_image(image, 8, 3)[None]))[0].numpy()
    import numpy

    written = numpy.asarray(Image.open(tmp_path / "ema" / "a.png").convert("RGB"))
    assert numpy.array_equal(written, expected)
    assert numpy.array_equal(numpy.asarray(Image.open(tmp_path / "live" / "a.png").convert("RGB")), trained)


def test_translate_ema_without_an_average_is_a_clear_error(tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "run"
    run(compile_tiny(), out, 2)
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    assert main(["translate", str(out), "--input", str(image), "--output", str(tmp_path / "o"), "--ema"]) == 2
    assert "has no moving average of G; the run kept no moving average" in capsys.readouterr().err
    with pytest.raises(LossgraphError):
        from lossgraph.train.translate import translate

        translate(out, image, tmp_path / "o", ema=True)
