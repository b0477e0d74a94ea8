"""What a data or random variable is: its kind, written in the spec as a tiny call.

Data (`data:`), one batch of them per step:
    image        an image batch (N, 3, H, W) in [-1, 1]; `image(1)` for one channel
    label(K)     an integer class label per sample, in [0, K)
    vector(k)    a real vector per sample (N, k)

Random variables (`random:`), drawn fresh each iteration unless the caller supplies them:
    normal(k)            N(0, I) of size k per sample
    uniform(k)           U(-1, 1) of size k per sample; `uniform(k, low, high)` for other bounds
    label(K)             a class label drawn uniformly from [0, K)
    normal_like(expr)    N(0, I) shaped like the value of a formula, e.g. `normal_like(E.mu(y))`
    uniform_like(expr)   U(-1, 1) shaped like a formula's value

This module does not import torch. Parsing returns a kind or raises `ValueError(reason)`;
the spec layer turns the reason into a located error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DATA_KINDS = ("image", "label", "vector")
DRAW_KINDS = ("normal", "uniform", "label", "normal_like", "uniform_like", "augmented")

# A source of labels or held-out extras in a dataset config: FUNCTION(IMAGE) or FUNCTION(IMAGE, LABEL)
SOURCE_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*\(\s*([^,()]*?)\s*(?:,\s*([^,()]*?)\s*)?\)\s*$")

_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$", re.S)


@dataclass(frozen=True)
class Kind:
    kind: str   # image | label | vector
    size: int   # channels, classes, or vector length


@dataclass(frozen=True)
class Draw:
    dist: str                 # normal | uniform | label
    size: int | None = None   # vector length, or number of classes
    low: float = -1.0
    high: float = 1.0
    like: str | None = None   # formula text whose value's shape the draw takes
    like_offset: int = 0      # where that formula starts in the kind's text (for error columns)
    of: str | None = None     # augmented(x): the image data variable it is a view of


def _split(text: str, valid: tuple[str, ...]) -> tuple[str, str | None]:
    if not isinstance(text, str):
        raise ValueError(f"expected a kind such as {valid[0]}, got {type(text).__name__}")
    match = _CALL.match(text)
    if not match:
        raise ValueError(f"cannot read kind {text!r}; expected one of {', '.join(valid)}")
    return match.group(1), match.group(2)


def _positive_int(text: str | None, what: str) -> int:
    try:
        value = int(text.strip()) if text is not None else 0
    except ValueError:
        raise ValueError(f"{what} must be a positive integer, got {text.strip()!r}") from None
    if value <= 0 or value > 1_000_000:
        raise ValueError(f"{what} must be a positive integer (at most 1000000), got {value}")
    return value


def parse_data_kind(text: str) -> Kind:
    name, args = _split(text, DATA_KINDS)
    if name == "image":
        return Kind("image", _positive_int(args, "image channels") if args is not None else 3)
    if name == "augmented":
        if args is None or not args.strip().isidentifier():
            raise ValueError("augmented takes the image data variable it is a view of: augmented(x)")
        return Draw("augmented", of=args.strip())
    if name == "label":
        if args is None:
            raise ValueError("label needs its number of classes: label(K)")
        return Kind("label", _positive_int(args, "the number of classes"))
    if name == "vector":
        if args is None:
            raise ValueError("vector needs its length: vector(k)")
        return Kind("vector", _positive_int(args, "the vector length"))
    raise ValueError(f"unknown data kind '{name}'")


def parse_draw(text: str) -> Draw:
    name, args = _split(text, DRAW_KINDS)
    if name in ("normal_like", "uniform_like"):
        if not args or not args.strip():
            raise ValueError(f"{name} needs a formula: {name}(E.mu(y))")
        offset = text.index("(") + 1
        return Draw(name.removesuffix("_like"), like=args, like_offset=offset)
    if name == "augmented":
        if args is None or not args.strip().isidentifier():
            raise ValueError("augmented takes the image data variable it is a view of: augmented(x)")
        return Draw("augmented", of=args.strip())
    if name == "label":
        if args is None:
            raise ValueError("label needs its number of classes: label(K)")
        return Draw("label", _positive_int(args, "the number of classes"))
    if name in ("normal", "uniform"):
        if args is None:
            raise ValueError(f"{name} needs its size: {name}(k)")
        parts = [part for part in args.split(",")]
        size = _positive_int(parts[0], "the size")
        if name == "normal":
            if len(parts) != 1:
                raise ValueError("normal takes one argument, its size: normal(k)")
            return Draw("normal", size)
        if len(parts) not in (1, 3):
            raise ValueError("uniform takes its size, then optionally low and high: uniform(k, low, high)")
        low, high = -1.0, 1.0
        if len(parts) == 3:
            try:
                low, high = float(parts[1]), float(parts[2])
            except ValueError:
                raise ValueError("uniform bounds must be numbers") from None
            if not low < high:
                raise ValueError("uniform needs low < high")
        return Draw("uniform", size, low, high)
    raise ValueError(f"unknown distribution '{name}'")
