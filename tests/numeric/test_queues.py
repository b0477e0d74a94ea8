"""Queues of past values: `queues: {Q: {size: N, push: FORMULA}}`, read by losses as a constant.

The queue starts from the first batch's rows, takes each iteration's rows after its steps, keeps
the newest `size` (first in, first out), is read by the step as it stood before the iteration,
and is saved and restored with the trainer's state, so a resumed run goes on exactly.
"""

import pytest
import torch

import lossgraph
from lossgraph.language.errors import SpecError
from lossgraph.train.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import count_forwards

SPEC = """
name: queues
data: {x: image, x2: image}
networks:
  C: {arch: classifier, classes: 5, width: 8, depth: 2}
  C_ema: {average: {of: C, decay: 0.9}}
queues:
  Q: {size: 6, push: C_ema(x2)}
players:
  C:
    networks: [C]
    minimize:
      moco: E[nce(C(x), C_ema(x2), Q, 0.5)]
optim: {C: {sgd: {lr: 0.1}}}
train: {image_size: 16}
"""


def compile_text(text=SPEC):
    return lossgraph.compile(lossgraph.loads(text, "queues.yaml"))


def nce(q, k, negatives, tau):
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ negatives.T], 1) / tau
    return (torch.logsumexp(logits, 1) - logits[:, 0]).mean()


def test_the_queue_is_first_in_first_out_and_the_step_reads_it_as_it_stood():
    program = compile_text()
    nets = program.build_networks(seed=0)
    trainer = program.trainer(nets)
    expected = None
    for i in range(4):
        batch = program.example_inputs(batch_size=4, seed=i)
        with torch.no_grad():  # batch norm in training mode: the output does not read running statistics
            rows = nets["C_ema"](batch["x2"])
            q_before = nets["C"](batch["x"])
        expected = rows[-6:] if expected is None else expected  # started from the first batch
        want = nce(q_before, rows, expected, 0.5)
        stats = trainer.step(batch)
        assert stats["C/moco"] == pytest.approx(float(want), rel=1e-5)
        expected = torch.cat([expected, rows])[-6:]
        torch.testing.assert_close(trainer.queues.values["Q"], expected)
        assert not trainer.queues.values["Q"].requires_grad


def test_a_push_takes_the_steps_value_when_its_weights_are_the_iterations_last():
    """C_ema(x2) is computed in C's step and C_ema does not change before the push: the iteration
    hands that value over, one C_ema forward an iteration, not two. A push of C(x), computed in
    C's step before C's update, is computed again after it (the queue holds the updated rows)."""
    program = compile_text()
    assert [queue for queue, _ in program.phases[-1].pushes] == ["Q"] and '"push/Q": ' in program.code
    nets = program.build_networks(seed=0)
    trainer = program.trainer(nets)
    trainer.step(program.example_inputs(batch_size=4, seed=0))  # the first one also starts the queue
    counts = count_forwards(nets)
    trainer.step(program.example_inputs(batch_size=4, seed=1))
    assert counts["C_ema"] == 1
    stale = compile_text(SPEC.replace("push: C_ema(x2)", "push: C(x)"))
    assert not stale.phases[-1].pushes and '"push/' not in stale.code
    nets = stale.build_networks(seed=0)
    trainer = stale.trainer(nets)
    batch = stale.example_inputs(batch_size=4, seed=0)
    trainer.step(batch)
    with torch.no_grad():
        after = nets["C"](batch["x"])  # C as its step left it
    torch.testing.assert_close(trainer.queues.values["Q"][-4:], after)


def test_example_inputs_hold_a_queue_of_its_size_and_rows():
    program = compile_text()
    assert program.example_inputs(batch_size=3)["Q"].shape == (6, 5)
    iteration = program.code.split("def iteration")[1]
    assert 'Q = inputs["Q"]' in iteration


def test_a_checkpoint_restores_the_queue_and_the_run_goes_on_exactly(tmp_path):
    program = compile_text()
    batches = [program.example_inputs(batch_size=4, seed=i) for i in range(4)]
    nets = program.build_networks(seed=2)
    trainer = program.trainer(nets)
    for batch in batches[:2]:
        trainer.step(batch)
    folder = save_checkpoint(tmp_path, 2, nets, trainer.state_dict())
    losses = [trainer.step(batch)["C"] for batch in batches[2:]]

    resumed = program.build_networks(seed=9)
    state = load_checkpoint(folder, resumed)
    again = program.trainer(resumed)
    again.load_state_dict(state["trainer"])
    assert [again.step(batch)["C"] for batch in batches[2:]] == losses
    assert torch.equal(again.queues.values["Q"], trainer.queues.values["Q"])


def error_of(text):
    with pytest.raises(SpecError) as caught:
        compile_text(text)
    return str(caught.value)


@pytest.mark.parametrize("old, new, message, line", [
    ("push: C_ema(x2)", 'push: "C_ema(x2) + E[Q]"', "queue 'Q' is read by losses only, not by a push formula", 8),
    ("train: {", "evaluate: {q: 'E[Q]'}\ntrain: {", "queue 'Q' is read by losses only, not by evaluate:", 15),
    ("push: C_ema(x2)", 'push: "E[C_ema(x2)]"', "queue 'Q' holds one row per sample, so its push formula gives a batch of values, shape (N, ...); it gives shape ()", 8),
    ("size: 6", "size: 0", "input should be greater than 0", 8),
    ("Q, 0.5)", "Qs, 0.5)", "unknown name 'Qs' (did you mean 'Q'?)", 13),
    ("queues:\n", "let: {Q: x}\nqueues:\n", "'Q' is already declared at let.Q", 9),
])
def test_mistakes_are_located(old, new, message, line):
    assert old in SPEC
    error = error_of(SPEC.replace(old, new))
    assert message in error
    assert f"queues.yaml:{line}:" in error
