"""Checks for architecture options, so that a bad value in a spec fails with a message that names
the option and the value instead of a shape error deep inside a forward pass.

Every check returns the value it accepted, so a constructor reads `width = positive_int("width", width)`.
"""

from __future__ import annotations


def positive_int(name: str, value: object) -> int:
    """An integer of at least 1 (bools are rejected although Python counts them as ints)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def non_negative_int(name: str, value: object) -> int:
    """An integer of at least 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def probability(name: str, value: object) -> float:
    """A number in [0, 1), as a dropout rate must be (1 would zero every activation)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def level_list(name: str, value: object, low: int, high: int, default: range) -> frozenset[int]:
    """A list of distinct integer levels in [low, high]; None means `default`."""
    if value is None:
        return frozenset(default)
    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise ValueError(f"{name} must be a list of integers, got {value!r}")
    outside = [v for v in value if not low <= v <= high]
    if outside:
        raise ValueError(f"{name} must lie in {low}..{high} here, got {', '.join(map(str, outside))}")
    if len(set(value)) != len(value):
        raise ValueError(f"{name} lists a level twice: {value!r}")
    return frozenset(value)


def halvings_fit(image_size: int, halvings: int, option: str, smallest: int = 1) -> None:
    """`image_size` can be halved `halvings` times exactly, leaving at least `smallest` pixels.

    Down-sampling paths that are mirrored by up-sampling (U-Net skips, ResNet generator) need an
    exact division, or the way up produces a map one pixel off from the skip or the input.
    """
    if image_size % 2**halvings != 0 or image_size // 2**halvings < smallest:
        raise ValueError(
            f"{option}={halvings} needs image_size divisible by 2**{halvings} = {2**halvings}"
            f" with at least {smallest} pixel(s) left after down-sampling, got image_size={image_size}"
        )


def output_count(out_channels: int, count: int, option: str) -> None:
    """`out_channels` agrees with an output size that an option, not `out_channels`, sets.

    Networks whose output is not an image (encoders, classifiers) size it by their own option
    (`latent`, `classes`); the compiler passes out_channels=1 for them unless a spec sets it, so 1
    means "not set" and any other value must equal the option, rather than being silently ignored.
    """
    if out_channels not in (1, count):
        raise ValueError(
            f"out_channels={out_channels} conflicts with {option}={count}:"
            f" this network's output size is set by the option {option!r}"
        )
