"""Several processes (`torchrun --nproc_per_node 2 -m lossgraph run SPEC`, gloo on the CPU) train
exactly as one process does on the same global batch; rank 0 alone writes; a resumed run goes on
as the uninterrupted one.

The spec has no batch norm (batch statistics are per process, so it would differ by design) and
exercises what data parallelism could get wrong: a random variable (drawn at the global batch size
from the shared stream, each process keeping its slice), a history pool (per process; it is
still filling within these steps, so it returns its input), a frozen application (`updates:`), an
encoder head no loss uses (its parameters get no gradient, which DDP must be told), and networks
called with autograd in another player's step (D in G's step).
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lossgraph.train.checkpoint import latest_checkpoint, read_checkpoint_state
from lossgraph.train.distributed import Distributed
from lossgraph.language.errors import LossgraphError

ROOT = Path(__file__).resolve().parents[2]
STEPS = 12

SPEC = """\
name: tiny-ddp
data: {x: image, y: image}
dataset: {builtin: shapes, pairing: unpaired, size: 64, test_size: 4}
random: {n: normal_like(x)}
networks:
  G: {arch: unet, width: 4, depth: 1, norm: none}
  D: {arch: patchgan, width: 4, layers: 1, norm: none}
  Enc: {arch: encoder, width: 4, depth: 1, latent: 4, norm: none, heads: {mu: raw, logvar: raw}}
let:
  fake_y: G(x + 0.1 * n)
players:
  D:
    networks: [D]
    pool: {fake_y: 50}
    minimize:
      adv: E[(D(y) - 1)^2] + E[D(fake_y)^2]
  G:
    networks: [G, Enc]
    minimize:
      adv: E[(D(fake_y) - 1)^2]
      l1: {weight: 10, expr: "E[l1(fake_y - x)]"}
      code: E[Enc.mu(y)^2]
      latent: {expr: "E[Enc.mu(fake_y)^2]", updates: [G]}
schedule: [D, G]
optim:
  D: {adam: {lr: 1.0e-3, betas: [0.5, 0.999]}}
  G: {adam: {lr: 1.0e-3, betas: [0.5, 0.999]}}
train: {steps: 12, batch_size: 4, image_size: 8, log_every: 1, sample_every: 1000, checkpoint_every: 6, eval_every: 1000}
samples: [x, fake_y]
evaluate:
  error: E[l1(fake_y - y)]
"""


def _environment() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CI="1",
                PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _run_arguments(spec: Path, out: Path | str, *extra: str) -> list[str]:
    return ["run", str(spec), "--device", "cpu", "--no-progress", "--out", str(out), *extra]


def torchrun(spec: Path, out: Path, *extra: str, succeeds: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "lossgraph", *_run_arguments(spec, out, *extra)]
    done = subprocess.run(command, env=_environment(), cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert (done.returncode == 0) == succeeds, done.stdout + done.stderr
    return done


def one_process(spec: Path, out: Path, *extra: str) -> None:
    command = [sys.executable, "-m", "lossgraph", *_run_arguments(spec, out, *extra)]
    done = subprocess.run(command, env=_environment(), cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return [{key: value for key, value in row.items() if key != "seconds"} for row in csv.DictReader(handle)]


def assert_same_metrics(expected: Path, actual: Path) -> None:
    want, got = rows(expected), rows(actual)
    assert [row["step"] for row in got] == [row["step"] for row in want]
    assert list(got[0]) == list(want[0])
    for row_want, row_got in zip(want, got):
        for key, value in row_want.items():
            if value == "":  # a step a warm-up leaves out
                assert row_got[key] == "", (row_want["step"], key)
                continue
            assert float(row_got[key]) == pytest.approx(float(value), rel=1e-5, abs=1e-6), (row_want["step"], key)


def assert_same_runs(one: Path, two: Path) -> None:
    """The same metrics at every step, and the same networks at the end."""
    assert_same_metrics(one / "metrics.csv", two / "metrics.csv")
    expected, actual = final_networks(one), final_networks(two)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)


def assert_trains_as_one_process(spec: Path, folder: Path, steps: int = 6) -> None:
    """`spec` run for `steps` steps in one process and under torchrun in two: the same run."""
    one_process(spec, folder / "one", "--steps", str(steps))
    torchrun(spec, folder / "two", "--steps", str(steps))
    assert_same_runs(folder / "one", folder / "two")


def final_networks(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(latest_checkpoint(run / "checkpoints") / "nets.safetensors"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("distributed")
    spec = folder / "tiny-ddp.yaml"
    spec.write_text(SPEC)
    one_process(spec, folder / "one")
    done = torchrun(spec, folder / "two")
    return {"spec": spec, "one": folder / "one", "two": folder / "two", "stdout": done.stdout}


def test_two_processes_train_as_one_process_on_the_same_global_batch(runs):
    assert_same_metrics(runs["one"] / "metrics.csv", runs["two"] / "metrics.csv")
    assert len(rows(runs["two"] / "metrics.csv")) == STEPS
    assert_same_metrics(runs["one"] / "eval.csv", runs["two"] / "eval.csv")
    one, two = final_networks(runs["one"]), final_networks(runs["two"])
    assert set(one) == set(two)
    for key in one:  # gradients averaged over processes before every optimizer step
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6, msg=key)


def test_rank_0_alone_prints_and_the_run_folder_matches_one_process(runs):
    assert runs["stdout"].count("held-out metrics at step 12") == 1
    files = lambda run: sorted(str(path.relative_to(run)) for path in run.rglob("*") if "tensorboard" not in path.parts)
    assert files(runs["two"]) == files(runs["one"])
    state = read_checkpoint_state(latest_checkpoint(runs["two"] / "checkpoints"))
    assert state["world_size"] == 2
    pools = state["rank_pools"]  # each process's history pool, its own slices of the fakes
    assert len(pools) == 2 and [len(pool["D"]["fake_y"]["images"]) for pool in pools] == [STEPS * 2, STEPS * 2]
    assert not torch.equal(pools[0]["D"]["fake_y"]["images"][0], pools[1]["D"]["fake_y"]["images"][0])


def test_rank_1_writes_nothing_to_the_run_folder(runs, tmp_path):
    # Two processes started by hand, each in its own working folder with the same relative --out:
    # what rank 1 wrote would land in its own folder.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = []
    for rank in (0, 1):
        cwd = tmp_path / f"rank{rank}"
        cwd.mkdir()
        env = dict(_environment(), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        command = [sys.executable, "-m", "lossgraph", *_run_arguments(runs["spec"], "run", "--steps", "3")]
        processes.append(subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
    outputs = [process.communicate(timeout=240) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert (tmp_path / "rank0" / "run" / "metrics.csv").is_file()
    assert latest_checkpoint(tmp_path / "rank0" / "run" / "checkpoints") is not None
    assert sorted(path.name for path in (tmp_path / "rank1").iterdir()) == []
    assert outputs[1][0] == ""  # rank 1 prints no summary
    assert "held-out metrics" in outputs[0][0]


def test_a_resumed_two_process_run_goes_on_as_the_uninterrupted_one(runs, tmp_path):
    torchrun(runs["spec"], tmp_path / "run", "--steps", "6")
    torchrun(runs["spec"], tmp_path / "run", "--steps", str(STEPS), "--resume")
    assert_same_metrics(runs["two"] / "metrics.csv", tmp_path / "run" / "metrics.csv")
    one, resumed = final_networks(runs["two"]), final_networks(tmp_path / "run")
    for key in one:
        torch.testing.assert_close(resumed[key], one[key], rtol=1e-5, atol=1e-6, msg=key)


def test_the_global_batch_must_divide_among_the_processes():
    group = Distributed(rank=1, world_size=3, local_rank=1, device=torch.device("cpu"))
    assert group.local_slice(6) == slice(2, 4)
    with pytest.raises(LossgraphError, match="global batch size 4 does not divide among 3 processes"):
        group.local_slice(4)


def test_a_generator_first_schedule_trains_as_one_process(tmp_path):
    # D's calls on the fakes serve both steps: their graph is cut below at leaves and G's backward
    # takes the gradient there with torch.autograd.grad; the parameters' gradients still come from
    # ordinary backward passes, which DDP averages
    spec = tmp_path / "tiny-ddp-g-first.yaml"
    text = SPEC.replace("schedule: [D, G]", "schedule: [G, D]")
    text = "\n".join(line for line in text.splitlines() if not line.strip().startswith("pool:"))
    assert text != SPEC and "schedule: [G, D]" in text
    spec.write_text(text + "\n")
    assert_trains_as_one_process(spec, tmp_path)


def test_a_moving_average_in_a_loss_and_a_warm_up_train_as_one_process(tmp_path):
    # a network declared as another's average takes no gradient (DDP must not watch it), and D is
    # idle through a warm-up, so its parameters get no gradient at iteration 0 yet are trained later
    spec = tmp_path / "tiny-ddp-average.yaml"
    text = SPEC.replace("  Enc: {arch: encoder", "  G_avg: {average: {of: G, decay: 0.5}}\n  Enc: {arch: encoder")
    text = text.replace("      adv: E[(D(y) - 1)^2] + E[D(fake_y)^2]", '      adv: {weight: {warmup: 3}, expr: "E[(D(y) - 1)^2] + E[D(fake_y)^2]"}')
    text = text.replace('      l1: {weight: 10, expr: "E[l1(fake_y - x)]"}', '      l1: {weight: 10, expr: "E[l1(fake_y - x)]"}\n      lag: E[l1(fake_y - G_avg(x))]')
    assert text.count("G_avg") == 2 and "warmup: 3" in text
    spec.write_text(text)
    assert_trains_as_one_process(spec, tmp_path)


def test_a_network_two_passes_reach_in_different_parts_trains_as_one_process(tmp_path):
    # a second step of G reaches Enc's logvar head where G's own step reaches its mu head: DDP,
    # which averages per backward pass, would stop at Enc's next forward, so Enc's gradients are
    # averaged at its optimizer's steps instead (TUNIT's C, which G's step also steps, is such a network)
    spec = tmp_path / "tiny-ddp-two-heads.yaml"
    text = SPEC.replace("schedule: [D, G]", "  G2: {step_of: G, minimize: {spread: \"E[Enc.logvar(y)^2]\"}}\nschedule: [D, G, G2]")
    assert "G2" in text
    spec.write_text(text)
    assert_trains_as_one_process(spec, tmp_path)
