"""Weight sharing between networks by named parts (CoGAN's and UNIT's tied layers).

An architecture lists the submodules another network may share in the class attribute
`SHAREABLE`, for example `("trunk", "head")`. `share(target, source, ["trunk"])` then makes
`target.trunk` the very module object `source.trunk`: the same Parameters (and buffers), so one
optimizer step moves both networks, and gradients from both networks' losses add up in one `.grad`.

Share before collecting parameters for optimizers: the target's own copy of the part is
dropped from the module, and an optimizer built earlier would keep stepping the orphaned copy.
Code that gathers the parameters of several networks must deduplicate them by identity
(`{id(p): p for p in ...}`), or a shared parameter would be stepped twice per iteration.
"""

from __future__ import annotations

import itertools

from torch import nn


def shareable_parts(module: nn.Module) -> list[str]:
    """The names of `module`'s submodules that can be shared, from its class's `SHAREABLE`."""
    return list(getattr(type(module), "SHAREABLE", ()))


def _layer_types(part: nn.Module) -> list[tuple[str, str]]:
    return [(name, type(layer).__name__) for name, layer in part.named_modules()]


def _tensor_shapes(part: nn.Module) -> dict[str, tuple[int, ...]]:
    tensors = list(part.named_parameters()) + list(part.named_buffers())
    return {name: tuple(value.shape) for name, value in tensors}


def _where(part: str, name: str | None) -> str:
    if name is None:
        return f"the end of {part}"
    return f"{part}.{name}" if name else part


def _difference(part: str, source: nn.Module, target: nn.Module) -> str | None:
    """What keeps `target.<part>` from being replaced by `source.<part>`, or None.

    The layers must be the same types in the same places and every parameter and buffer the same
    shape, so that the target computes what it did, only with the source's values.
    """
    source_layers, target_layers = _layer_types(source), _layer_types(target)
    if source_layers != target_layers:
        padded = itertools.zip_longest(source_layers, target_layers, fillvalue=(None, "nothing"))
        (source_name, source_type), (target_name, target_type) = next(
            pair for pair in padded if pair[0] != pair[1]
        )
        return (
            f"their layers differ: the source has {source_type} at {_where(part, source_name)},"
            f" the target {target_type} at {_where(part, target_name)}"
        )
    source_shapes, target_shapes = _tensor_shapes(source), _tensor_shapes(target)
    for name in sorted(set(source_shapes) | set(target_shapes)):
        source_shape, target_shape = source_shapes.get(name, "absent"), target_shapes.get(name, "absent")
        if source_shape != target_shape:
            return f"{part}.{name} has shape {source_shape} in the source and {target_shape} in the target"
    return None


def share(target: nn.Module, source: nn.Module, parts: list[str]) -> None:
    """Make each `target.<part>` be `source.<part>` (the same module, hence the same Parameters).

    Every part must be listed in both modules' `SHAREABLE` and have the same layers with the same
    parameter and buffer shapes in both; otherwise `ValueError` says which part and what differs,
    and nothing is shared (all parts are checked before any is replaced).
    """
    if isinstance(parts, str) or not all(isinstance(part, str) for part in parts):
        raise ValueError(f"parts must be a list of part names, got {parts!r}")
    if target is source:
        raise ValueError("a module cannot share parts with itself")
    for part in parts:
        for role, module in (("target", target), ("source", source)):
            known = shareable_parts(module)
            if part not in known:
                listed = ", ".join(known) if known else "none"
                raise ValueError(
                    f"unknown part {part!r} of the {role} {type(module).__name__};"
                    f" its shareable parts: {listed}"
                )
        difference = _difference(part, getattr(source, part), getattr(target, part))
        if difference is not None:
            raise ValueError(f"cannot share part {part!r}: {difference}")
    for part in parts:
        # nn.Module.__setattr__ registers the module under the same name, replacing the old one.
        setattr(target, part, getattr(source, part))
