"""The device a run trains on: `--device` resolved, and batches moved to it."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from lossgraph.language.errors import LossgraphError


def resolve_device(device: str) -> torch.device:
    """`auto` is CUDA when available, else the CPU; asking for missing CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise LossgraphError(f"unknown device '{device}': use auto, cpu or cuda") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise LossgraphError(f"device '{device}' asked for, but this torch ({torch.__version__}) sees no CUDA GPU; "
                             "use --device cpu or auto")
    if resolved.type not in ("cpu", "cuda"):
        raise LossgraphError(f"device '{device}' is not supported: use auto, cpu or cuda")
    return resolved


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Every tensor of `batch` on `device`; anything else as it is."""
    # non_blocking: pinned host batches overlap the copy with compute; otherwise it is a plain copy.
    return {key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for key, value in batch.items()}
