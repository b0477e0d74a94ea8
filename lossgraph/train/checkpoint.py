"""Checkpoints that are either complete or absent.

A run keeps its checkpoints in one folder:

    checkpoints/step_000500/nets.safetensors   every network tensor, keyed `<net name>.<state_dict key>`;
                                               a moving average (ema.py) as network `<net name>@ema`
    checkpoints/step_000500/state.pt           trainer state, step, RNG states, spec name (torch.save)
    checkpoints/latest                         text: the name of the newest checkpoint folder
    checkpoints/best_step_000750/              with `train.keep_best`: the networks of the best evaluation
                                               so far, written by `write_folder` too (best.py); never rotated here

A checkpoint is written into `checkpoints/.tmp-step_000500/`, both files are flushed to disk, and
only then is the folder renamed to `step_000500`: the rename is the commit. `latest` is rewritten
after it through a temporary file and `os.replace`. Readers only trust `step_*` folders that hold
both files, so the debris of an interrupted write (a `.tmp-*` folder, a `latest` naming a folder
that is gone) is ignored and the newest complete checkpoint is used instead.

safetensors refuses tensors that share memory (tied weights, a submodule shared by two networks),
so identical views are stored once and the other names recorded as aliases in the file's metadata;
partly overlapping views are stored as copies. Loading copies into the existing tensors in place,
so optimizers that hold the parameters stay valid.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Collection, Mapping

import torch
from torch import nn

from lossgraph.language.errors import LossgraphError

NETS_FILE = "nets.safetensors"
STATE_FILE = "state.pt"
LATEST_FILE = "latest"
TEMPORARY_PREFIX = ".tmp-"
CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)$")
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- atomic writes


def _fsync_directory(directory: Path) -> None:
    """Persist a rename inside `directory`; a no-op where directories cannot be opened (Windows)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so a reader sees either the old file or the whole new one."""
    path = Path(path)
    temporary = path.with_name(f"{TEMPORARY_PREFIX}{path.name}.{os.getpid()}")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


# ----------------------------------------------------------------------------- finding checkpoints


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}"


def checkpoint_step(path: str | os.PathLike) -> int:
    """The step a checkpoint folder was written at, from its name."""
    match = CHECKPOINT_PATTERN.match(Path(path).name)
    if match is None:
        raise LossgraphError(f"{path} is not a checkpoint folder (expected a name like step_000500)")
    return int(match.group(1))


def _is_complete(path: Path) -> bool:
    return (
        CHECKPOINT_PATTERN.match(path.name) is not None
        and (path / NETS_FILE).is_file()
        and (path / STATE_FILE).is_file()
    )


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Complete checkpoints in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [entry for entry in directory.iterdir() if entry.is_dir() and _is_complete(entry)]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint, or None.

    A step folder is complete once its commit rename is done (its files are written and synced
    before), so the newest complete one is the last state saved, even when a crash came between
    that rename and the update of the `latest` pointer, which then names the one before.
    """
    complete = list_checkpoints(Path(directory))
    return complete[-1] if complete else None


# ----------------------------------------------------------------------------- network tensors


def _same_view(first: torch.Tensor, second: torch.Tensor) -> bool:
    return (
        first.data_ptr() == second.data_ptr()
        and first.dtype == second.dtype
        and first.shape == second.shape
        and first.stride() == second.stride()
    )


def network_tensors(nets: Mapping[str, nn.Module]) -> tuple[dict[str, torch.Tensor], dict[str, str], dict[str, Any]]:
    """Flatten the networks' state dicts for safetensors.

    Returns (tensors, aliases, extra_states): `tensors` maps each stored key to a contiguous CPU
    tensor, no two of them sharing memory; `aliases` maps a key that was the very same view as a
    stored one to that key; `extra_states` holds the non-tensor entries of `get_extra_state`.
    """
    aliases: dict[str, str] = {}
    extra_states: dict[str, Any] = {}
    # Storage address -> the (key, tensor) pairs to store that live in it.
    by_storage: dict[int, list[tuple[str, torch.Tensor]]] = {}
    empty: dict[str, torch.Tensor] = {}
    for net_name, net in nets.items():
        for name, value in net.state_dict().items():
            key = f"{net_name}.{name}"
            if not isinstance(value, torch.Tensor):
                extra_states[key] = value
                continue
            value = value.detach()
            if value.numel() == 0:  # empty tensors report address 0 whatever they belong to
                empty[key] = value.to("cpu").clone()
                continue
            sharers = by_storage.setdefault(value.untyped_storage().data_ptr(), [])
            original = next((stored for stored, tensor in sharers if _same_view(tensor, value)), None)
            if original is None:
                sharers.append((key, value))
            else:
                aliases[key] = original
    tensors: dict[str, torch.Tensor] = {}
    for sharers in by_storage.values():
        for key, value in sharers:
            stored = value.to("cpu").contiguous()
            # Views that overlap without being identical cannot be aliases: each gets a copy.
            tensors[key] = stored.clone() if len(sharers) > 1 else stored
    tensors.update(empty)
    return tensors, aliases, extra_states


def _network_state(net_names: list[str], tensors: dict[str, torch.Tensor], aliases: Mapping[str, str],
                   extra_states: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Split the flat stored keys back into one state dict per network, plus unknown net names."""
    flat: dict[str, Any] = dict(tensors)
    for alias, original in aliases.items():
        if original in tensors:
            flat[alias] = tensors[original]
    flat.update(extra_states)
    per_net: dict[str, dict[str, Any]] = {name: {} for name in net_names}
    unknown: set[str] = set()
    for key, value in flat.items():
        net_name, _, name = key.partition(".")
        if net_name in per_net:
            per_net[net_name][name] = value
        else:
            unknown.add(net_name)
    return per_net, sorted(unknown)


# ----------------------------------------------------------------------------- save and load


def write_folder(directory: str | os.PathLike, name: str, nets: Mapping[str, nn.Module], state: Mapping[str, Any]) -> Path:
    """Write `directory/name/` with `nets.safetensors` and `state.pt` atomically: into a temporary
    folder, both files flushed, then renamed (replacing a folder of that name); its path."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f"{TEMPORARY_PREFIX}{name}"
    final = directory / name
    if temporary.exists():  # left by a write that was interrupted
        shutil.rmtree(temporary)
    temporary.mkdir()

    tensors, aliases, extra_states = network_tensors(nets)
    metadata = {"format": str(FORMAT_VERSION), "networks": json.dumps(list(nets)), "aliases": json.dumps(aliases)}
    save_file(tensors, str(temporary / NETS_FILE), metadata=metadata)
    _fsync_file(temporary / NETS_FILE)

    state = dict(state)
    if extra_states:
        state["network_extra_states"] = extra_states
    with open(temporary / STATE_FILE, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_directory(temporary)

    if final.exists():
        # Same name written again (a run redone from an earlier checkpoint): rename cannot replace
        # a non-empty folder, so move the old one aside first. Meanwhile `latest` may name a
        # missing folder, which readers already tolerate.
        aside = directory / f"{TEMPORARY_PREFIX}old-{name}"
        if aside.exists():
            shutil.rmtree(aside)
        os.replace(final, aside)
        os.replace(temporary, final)
        shutil.rmtree(aside)
    else:
        os.replace(temporary, final)
    _fsync_directory(directory)
    return final


def save_checkpoint(directory: str | os.PathLike, step: int, nets: Mapping[str, nn.Module],
                    trainer_state: Mapping[str, Any], extra: Mapping[str, Any] | None = None,
                    keep: int | None = 3) -> Path:
    """Write a checkpoint for `step` atomically and return its folder.

    `extra` entries (RNG states, spec name, ...) are stored beside the trainer state in `state.pt`
    and come back from `load_checkpoint`. `keep` complete checkpoints are kept, the newest by step;
    None keeps all.
    """
    directory = Path(directory)
    name = checkpoint_name(step)
    state = dict(extra or {})
    state.update({"format": FORMAT_VERSION, "step": step, "trainer": trainer_state})
    final = write_folder(directory, name, nets, state)
    atomic_write_text(directory / LATEST_FILE, name + "\n")

    if keep is not None:
        prune_checkpoints(directory, keep)
    return final


def prune_checkpoints(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints, and stale temporary folders."""
    directory = Path(directory)
    complete = list_checkpoints(directory)
    newest = latest_checkpoint(directory)
    for old in complete[: max(0, len(complete) - max(keep, 1))]:
        if old != newest:
            shutil.rmtree(old, ignore_errors=True)
    for entry in directory.iterdir():
        # Only this module writes these names; any still here belongs to an interrupted write.
        if entry.name.startswith(TEMPORARY_PREFIX):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _require_files(path: Path) -> None:
    for required in (path / NETS_FILE, path / STATE_FILE):
        if not required.is_file():
            raise LossgraphError(f"checkpoint {path} is incomplete: {required.name} is missing")


def read_checkpoint_state(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint's `state.pt`: `step`, `trainer` and the `extra` entries it was saved with.

    Networks are left alone, so a caller can check the state (say, the spec name) first.
    """
    path = Path(path)
    _require_files(path)
    state_file = path / STATE_FILE
    try:
        # weights_only: a checkpoint is data, never code. The trainer state must therefore be plain
        # containers, tensors, numbers and strings.
        state = torch.load(state_file, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, bad pickle, unreadable file: all "cannot read"
        # the type too: an unpickler's KeyError reads as a bare number
        raise LossgraphError(f"cannot read checkpoint file {state_file}: {type(error).__name__}: {error}") from error
    if not isinstance(state, dict) or "step" not in state or "trainer" not in state:
        raise LossgraphError(f"cannot read checkpoint file {state_file}: not a lossgraph checkpoint state")
    return state


def stored_networks(path: str | os.PathLike) -> list[str]:
    """The names of the networks a checkpoint's `nets.safetensors` holds, in the order saved
    (moving averages included, e.g. `G_XY@ema`)."""
    from safetensors import safe_open

    nets_file = Path(path) / NETS_FILE
    try:
        with safe_open(str(nets_file), framework="pt", device="cpu") as reader:
            metadata = reader.metadata() or {}
            keys = list(reader.keys())
        names = json.loads(metadata["networks"]) if "networks" in metadata else None
    except Exception as error:  # safetensors, OS and JSON errors alike mean "cannot read this file"
        raise LossgraphError(f"cannot read checkpoint file {nets_file}: {error}") from error
    if names is None:
        names = list(dict.fromkeys(key.partition(".")[0] for key in keys))
    return [str(name) for name in names]


def load_network_tensors(path: str | os.PathLike, nets: Mapping[str, nn.Module],
                         extra_states: Mapping[str, Any] | None = None, ignore: Collection[str] = ()) -> None:
    """Copy a checkpoint's `nets.safetensors` into `nets` in place (onto each tensor's own device).

    A stored network not in `nets` is an error unless it is named in `ignore`.
    """
    from safetensors import safe_open

    path = Path(path)
    _require_files(path)
    nets_file = path / NETS_FILE
    try:
        with safe_open(str(nets_file), framework="pt", device="cpu") as reader:
            metadata = reader.metadata() or {}
            tensors = {key: reader.get_tensor(key) for key in reader.keys()}
        aliases = json.loads(metadata.get("aliases", "{}"))
    except Exception as error:  # safetensors, OS and JSON errors alike mean "cannot read this file"
        raise LossgraphError(f"cannot read checkpoint file {nets_file}: {error}") from error

    per_net, unknown = _network_state(list(nets), tensors, aliases, extra_states or {})
    unknown = [name for name in unknown if name not in ignore]
    if unknown:
        names = ", ".join(unknown)
        raise LossgraphError(f"checkpoint file {nets_file} holds networks this spec does not have: {names}")
    problems = []
    for net_name, net in nets.items():
        if not per_net[net_name] and net.state_dict():
            problems.append(f"network {net_name} is missing")
            continue
        try:
            net.load_state_dict(per_net[net_name], strict=True)
        except RuntimeError as error:
            problems.append(f"network {net_name}: {error}")
    if problems:
        listed = "\n  ".join(problems)
        raise LossgraphError(f"checkpoint file {nets_file} does not fit the spec's networks:\n  {listed}")


def load_checkpoint(path: str | os.PathLike, nets: Mapping[str, nn.Module],
                    map_location: str | torch.device = "cpu", ignore: Collection[str] = ()) -> dict[str, Any]:
    """Copy a checkpoint's tensors into `nets` in place and return its state.

    The state holds `step`, `trainer` (the trainer's state dict) and every `extra` entry given to
    `save_checkpoint`, its tensors on `map_location`. Raises `LossgraphError`, naming the file,
    when a file cannot be read or does not fit the networks.
    """
    state = read_checkpoint_state(path, map_location)
    load_network_tensors(path, nets, state.pop("network_extra_states", {}), ignore)
    return state
