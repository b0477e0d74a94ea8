"""Checkpoints: atomic writes, finding the newest complete one, keep-last-K, shared tensors, bad files."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from lossgraph.train.checkpoint import (
    atomic_write_text,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    network_tensors,
    save_checkpoint,
)
from lossgraph.language.errors import LossgraphError


def small_nets() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {"G": nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), "D": nn.Linear(4, 1)}


def scramble(nets: dict[str, nn.Module]) -> None:
    with torch.no_grad():
        for net in nets.values():
            for tensor in list(net.parameters()) + list(net.buffers()):
                tensor.add_(1)


def assert_same(first: dict[str, nn.Module], second: dict[str, nn.Module]) -> None:
    for name in first:
        for (key, a), (_, b) in zip(first[name].state_dict().items(), second[name].state_dict().items()):
            assert torch.equal(a, b), f"{name}.{key}"


def test_round_trip_restores_tensors_in_place_and_returns_the_state(tmp_path):
    nets, reference = small_nets(), small_nets()
    optimizer = torch.optim.Adam(nets["D"].parameters())
    nets["D"](torch.ones(2, 4)).sum().backward()
    optimizer.step()
    reference["D"].load_state_dict(nets["D"].state_dict())
    extra = {"spec": "fakegan", "rng": {"python": random.getstate(), "torch": torch.get_rng_state()}}
    path = save_checkpoint(tmp_path, 7, nets, {"D": optimizer.state_dict()}, extra)
    assert path == tmp_path / "step_000007"

    weight = nets["D"].weight
    scramble(nets)
    state = load_checkpoint(path, nets)
    assert nets["D"].weight is weight  # in place: optimizers keep pointing at the live tensors
    assert_same(nets, reference)
    assert state["step"] == 7 and state["spec"] == "fakegan"
    assert torch.equal(state["rng"]["torch"], extra["rng"]["torch"])
    random.setstate((state["rng"]["python"][0], tuple(state["rng"]["python"][1]), state["rng"]["python"][2]))
    optimizer.load_state_dict(state["trainer"]["D"])


def test_keys_are_net_name_dot_state_dict_key(tmp_path):
    from safetensors.torch import load_file

    path = save_checkpoint(tmp_path, 1, small_nets(), {}, {})
    keys = set(load_file(str(path / "nets.safetensors")))
    assert {"G.0.weight", "G.1.running_mean", "G.1.num_batches_tracked", "D.weight", "D.bias"} <= keys


class Tied(nn.Module):
    """An autoencoder whose decoder reuses the encoder's weight, plus an overlapping view buffer."""

    def __init__(self, shared: nn.Module) -> None:
        super().__init__()
        self.shared = shared
        self.encode = nn.Linear(4, 4, bias=False)
        self.decode = nn.Linear(4, 4, bias=False)
        self.decode.weight = self.encode.weight
        self.register_buffer("table", torch.arange(12.0))
        self.register_buffer("window", self.table[2:8])  # overlaps `table` without being it


def test_shared_tensors_save_and_load(tmp_path):
    def build():
        torch.manual_seed(1)
        shared = nn.Linear(3, 3)  # one submodule inside two networks
        return {"A": Tied(shared), "B": nn.Sequential(shared, nn.Tanh())}

    nets, reference = build(), build()
    tensors, aliases, _ = network_tensors(nets)
    assert aliases == {"A.decode.weight": "A.encode.weight", "B.0.weight": "A.shared.weight",
                       "B.0.bias": "A.shared.bias"}
    path = save_checkpoint(tmp_path, 3, nets, {}, {})

    scramble(nets)
    load_checkpoint(path, nets)
    assert_same(nets, reference)
    assert nets["A"].decode.weight is nets["A"].encode.weight
    assert nets["B"][0] is nets["A"].shared


def test_latest_ignores_leftover_temporary_folders(tmp_path):
    nets = small_nets()
    save_checkpoint(tmp_path, 1, nets, {}, {})
    save_checkpoint(tmp_path, 2, nets, {}, {})
    leftover = tmp_path / ".tmp-step_000003"
    leftover.mkdir()
    (leftover / "nets.safetensors").write_bytes(b"\x00" * 10)
    assert latest_checkpoint(tmp_path) == tmp_path / "step_000002"


def test_latest_pointing_to_a_missing_or_incomplete_folder_falls_back(tmp_path):
    nets = small_nets()
    save_checkpoint(tmp_path, 1, nets, {}, {})
    save_checkpoint(tmp_path, 2, nets, {}, {})
    atomic_write_text(tmp_path / "latest", "step_000009\n")
    assert latest_checkpoint(tmp_path) == tmp_path / "step_000002"
    incomplete = tmp_path / "step_000005"
    incomplete.mkdir()
    (incomplete / "state.pt").write_bytes(b"")
    atomic_write_text(tmp_path / "latest", "step_000005\n")
    assert latest_checkpoint(tmp_path) == tmp_path / "step_000002"
    atomic_write_text(tmp_path / "latest", "../../elsewhere\n")
    assert latest_checkpoint(tmp_path) == tmp_path / "step_000002"


def test_no_checkpoint_anywhere(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    assert latest_checkpoint(tmp_path) is None


def test_keeps_only_the_last_k(tmp_path):
    nets = small_nets()
    for step in range(1, 7):
        save_checkpoint(tmp_path, step, nets, {}, {}, keep=2)
    assert [path.name for path in list_checkpoints(tmp_path)] == ["step_000005", "step_000006"]
    assert (tmp_path / "latest").read_text().strip() == "step_000006"


def test_saving_the_same_step_again_replaces_it(tmp_path):
    nets = small_nets()
    save_checkpoint(tmp_path, 4, nets, {"version": 1}, {})
    save_checkpoint(tmp_path, 4, nets, {"version": 2}, {})
    assert load_checkpoint(tmp_path / "step_000004", nets)["trainer"] == {"version": 2}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["latest", "step_000004"]


def test_unreadable_files_are_named_in_the_error(tmp_path):
    nets = small_nets()
    path = save_checkpoint(tmp_path, 1, nets, {}, {})
    (path / "nets.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(LossgraphError, match="cannot read checkpoint file .*nets.safetensors"):
        load_checkpoint(path, nets)

    path = save_checkpoint(tmp_path, 2, nets, {}, {})
    data = (path / "state.pt").read_bytes()
    (path / "state.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(LossgraphError, match="cannot read checkpoint file .*state.pt"):
        load_checkpoint(path, nets)

    path = save_checkpoint(tmp_path, 3, nets, {}, {})
    (path / "state.pt").write_text("junk\n")  # the unpickler's KeyError alone reads as a bare number
    with pytest.raises(LossgraphError, match=r"cannot read checkpoint file .*state.pt: KeyError: \d+"):
        load_checkpoint(path, nets)


def test_networks_that_do_not_fit_are_reported(tmp_path):
    path = save_checkpoint(tmp_path, 1, small_nets(), {}, {})
    other = {"G": nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)), "D": nn.Linear(4, 1)}
    with pytest.raises(LossgraphError, match="does not fit the spec's networks:\n  network G"):
        load_checkpoint(path, other)
    with pytest.raises(LossgraphError, match="networks this spec does not have: D"):
        load_checkpoint(path, {"G": small_nets()["G"]})


def test_a_crash_before_the_pointer_update_keeps_the_newest_checkpoint(tmp_path):
    # the commit rename of step 2 happened, the update of `latest` did not
    nets = small_nets()
    save_checkpoint(tmp_path, 1, nets, {}, {})
    save_checkpoint(tmp_path, 2, nets, {}, {})
    atomic_write_text(tmp_path / "latest", "step_000001\n")
    assert latest_checkpoint(tmp_path) == tmp_path / "step_000002"
