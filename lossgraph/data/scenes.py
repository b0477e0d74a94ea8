"""Procedural scenes of coloured shapes, and their rendering in any of `STYLES`.

A scene is 1 to 3 shapes (circle, square or upright triangle), each with a position, a size and
a hue. Scene `index` of a split is a pure function of (seed, split, index): its parameters come
from a generator seeded by those alone (seeds.py), so any scene can be drawn on its own, in any
order, at any size. Rendering is vectorised over scenes, shapes and pixels with torch coordinate
grids. The same scene can be rendered in every style, which is what gives the builtin `shapes`
dataset (shapes.py) paired ground truth:

- flat: saturated red to amber fills on a near-black background;
- outlined: the hues turned half a circle (cyan to azure), as pastel fills with a dark inner
  outline, on a light cream background;
- slate: dark violet fills on a blue-grey background, no outline;
- meadow: deep blue fills with a white inner outline on a grass-green background;
- rose: dark green fills with a thick black inner outline on a pink background.

Note [Why hues come from a narrow band]
    Unpaired training only matches distributions. Were hues drawn uniformly, every permutation of
    hues would map the B distribution onto itself, so an unpaired method could learn any of them
    and be perfect by its own objective yet wrong against the paired ground truth. It does: at
    32x32, a small CycleGAN trained for 5 minutes on uniform hues drew every shape, background and
    outline right but rotated the fills' hues by about 60 degrees (with B fills equal to A fills)
    or scrambled them (with pastel B fills). Tying hue bands to shape kinds made it worse: red
    circles came out as green squares. So every shape draws its hue from one narrow band
    (`HUE_BAND`) and each style moves the band by its `hue_shift`: the band-to-band mapping is
    then pinned by the data, and only an error within the band (at most its width) stays possible.

Scene parameters are kept as `Scenes`: slot 0 holds the main shape, by construction the largest and
drawn on top, and its kind is the scene's class label (`Scenes.labels`). Extra shapes are smaller
and drawn beneath it, so the label is always visible.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch

from lossgraph.data.seeds import seeded_generator

MAX_SHAPES = 3

# Sizes are "equal-area radii" (a shape of radius r covers pi * r^2) in image units, where the
# image spans [-1, 1]; equal areas keep the label from correlating with how much of the image a
# shape covers. The ranges do not overlap, so the main shape is always the largest.
MAIN_RADIUS = (0.30, 0.46)
EXTRA_RADIUS = (0.15, 0.25)
BORDER = 0.08
# Shape hues, in turns, before a style's hue shift: red to amber. Narrow on purpose, see
# Note [Why hues come from a narrow band].
HUE_BAND = (0.0, 0.12)

SQUARE_HALF_SIDE = math.sqrt(math.pi) / 2  # in units of r, for area pi * r^2
TRIANGLE_CIRCUMRADIUS = math.sqrt(4 * math.pi / (3 * math.sqrt(3)))  # likewise
# Outward edge normals of an upright equilateral triangle (image y grows downwards).
TRIANGLE_NORMALS = (
    (0.0, 1.0),
    (-math.sqrt(3) / 2, -0.5),
    (math.sqrt(3) / 2, -0.5),
)


def circle_distance(dx: torch.Tensor, dy: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    return radius - torch.sqrt(dx * dx + dy * dy)


def square_distance(dx: torch.Tensor, dy: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    return radius * SQUARE_HALF_SIDE - torch.maximum(dx.abs(), dy.abs())


def triangle_distance(dx: torch.Tensor, dy: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    farthest_edge = functools.reduce(torch.maximum, [nx * dx + ny * dy for nx, ny in TRIANGLE_NORMALS])
    # The inradius of an equilateral triangle is half its circumradius.
    return radius * (TRIANGLE_CIRCUMRADIUS / 2) - farthest_edge


@dataclass(frozen=True)
class ShapeKind:
    """One kind of shape, drawn from its centre and equal-area radius r.

    `distance(dx, dy, r)` is the distance from a pixel at offset (dx, dy) from the centre to the
    boundary, positive inside. It must be exact inside (fills and outlines are decided there);
    outside it only needs the right sign and slope for the anti-aliasing ramp. `extent` is how far
    the shape reaches from its centre, in units of r.
    """

    name: str
    extent: float
    distance: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# The class label of a scene is an index into this table; adding a kind is one entry.
SHAPE_KINDS = (
    ShapeKind("circle", 1.0, circle_distance),
    ShapeKind("square", SQUARE_HALF_SIDE, square_distance),
    ShapeKind("triangle", TRIANGLE_CIRCUMRADIUS, triangle_distance),
)
KIND_NAMES = tuple(kind.name for kind in SHAPE_KINDS)
KIND_EXTENT = torch.tensor([kind.extent for kind in SHAPE_KINDS])

# Uniform draws per shape slot: kind, radius, centre x, centre y, hue, and one for the shape count.
DRAWS_PER_SLOT = 6


@dataclass(frozen=True)
class Style:
    """How a scene is drawn. Colours are in [0, 1]; a shape's colours come from its hue."""

    background: tuple[float, float, float]
    fill_saturation: float
    fill_value: float
    hue_shift: float = 0.0  # in turns, added to every shape's hue
    outline_width: float = 0.0  # inner outline, as a fraction of the image width; 0 for none
    outline_saturation: float = 0.0
    outline_value: float = 0.0


# Adding a style (another domain, or one more of StarGAN's K labelled domains) is one entry.
# The order is the table's: `styles: {x: 4}` in a config means its first four.
STYLES: dict[str, Style] = {
    "flat": Style(background=(0.08, 0.08, 0.10), fill_saturation=0.85, fill_value=0.95),
    "outlined": Style(
        background=(0.94, 0.91, 0.82),
        fill_saturation=0.40,
        fill_value=1.0,
        hue_shift=0.5,
        outline_width=0.05,
        outline_saturation=0.90,
        outline_value=0.35,
    ),
    "slate": Style(background=(0.52, 0.58, 0.68), fill_saturation=0.75, fill_value=0.42, hue_shift=0.75),
    "meadow": Style(
        background=(0.45, 0.72, 0.28),
        fill_saturation=0.85,
        fill_value=0.60,
        hue_shift=0.64,
        outline_width=0.04,
        outline_saturation=0.0,
        outline_value=1.0,
    ),
    "rose": Style(
        background=(0.90, 0.44, 0.60),
        fill_saturation=0.80,
        fill_value=0.45,
        hue_shift=0.36,
        outline_width=0.08,
        outline_saturation=0.0,
        outline_value=0.0,
    ),
}
DOMAIN_STYLES = ("flat", "outlined")  # domain A, domain B: the default for two image variables


@dataclass(frozen=True)
class Scenes:
    """Parameters of N scenes, each with MAX_SHAPES slots; slot 0 is the main shape.

    kind (N, S) long index into SHAPE_KINDS; present (N, S) bool; centre (N, S, 2) as (x, y) in
    [-1, 1] with y downwards; radius (N, S) equal-area radius; hue (N, S) in [0, 1).
    """

    kind: torch.Tensor
    present: torch.Tensor
    centre: torch.Tensor
    radius: torch.Tensor
    hue: torch.Tensor

    def __len__(self) -> int:
        return self.kind.shape[0]

    def take(self, index: torch.Tensor) -> "Scenes":
        """The scenes that `index` (a boolean mask or indices over scenes) selects."""
        return Scenes(*(getattr(self, name)[index] for name in ("kind", "present", "centre", "radius", "hue")))

    @property
    def labels(self) -> torch.Tensor:
        """Class label per scene: the kind of its largest shape (the main one)."""
        return self.kind[:, 0]


def sample_scenes(seed: int, split: str, indices: torch.Tensor | list[int]) -> Scenes:
    """The scenes at `indices` of `split` ("train" or "test"), each a pure function of its index."""
    indices = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
    draws = torch.empty(len(indices), MAX_SHAPES, DRAWS_PER_SLOT)
    for row, index in enumerate(indices.tolist()):
        generator = seeded_generator("shapes", seed, split, index)
        draws[row] = torch.rand(MAX_SHAPES, DRAWS_PER_SLOT, generator=generator)

    kind = (draws[..., 0] * len(SHAPE_KINDS)).long().clamp(max=len(SHAPE_KINDS) - 1)
    low = torch.tensor([MAIN_RADIUS[0]] + [EXTRA_RADIUS[0]] * (MAX_SHAPES - 1))
    high = torch.tensor([MAIN_RADIUS[1]] + [EXTRA_RADIUS[1]] * (MAX_SHAPES - 1))
    radius = low + (high - low) * draws[..., 1]
    # Centres range over the positions where the whole shape, and a pixel of background around
    # it at 32x32, stays inside the image.
    margin = 1 - KIND_EXTENT[kind] * radius - BORDER
    centre = (draws[..., 2:4] * 2 - 1) * margin.unsqueeze(-1)
    hue = HUE_BAND[0] + (HUE_BAND[1] - HUE_BAND[0]) * draws[..., 4]
    shape_count = 1 + (draws[:, 0, 5] * MAX_SHAPES).long().clamp(max=MAX_SHAPES - 1)
    present = torch.arange(MAX_SHAPES) < shape_count.unsqueeze(-1)
    return Scenes(kind=kind, present=present, centre=centre, radius=radius, hue=hue)


def hsv_to_rgb(hue: torch.Tensor, saturation: float, value: float) -> torch.Tensor:
    """RGB in [0, 1] with a trailing dimension of 3, for hues in turns (any real number)."""
    sector = (hue.unsqueeze(-1) * 6 + torch.tensor([5.0, 3.0, 1.0])) % 6
    ramp = torch.minimum(sector, 4 - sector).clamp(0, 1)
    return value - value * saturation * ramp


def inner_distance(scenes: Scenes, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Distance from each pixel to each shape's boundary, positive inside: (N, S, H, W).

    Each kind is evaluated only on the slots that hold it, and absent slots stay far outside.
    """
    dx = x - scenes.centre[..., 0, None, None]  # (N, S, 1, W)
    dy = y - scenes.centre[..., 1, None, None]  # (N, S, H, 1)
    distance = torch.full((*scenes.kind.shape, y.shape[-2], x.shape[-1]), -1e3)
    for index, kind in enumerate(SHAPE_KINDS):
        slots = (scenes.kind == index) & scenes.present
        if slots.any():
            distance[slots] = kind.distance(dx[slots], dy[slots], scenes.radius[slots][:, None, None])
    return distance


def render(scenes: Scenes, style: str | Style, image_size: int) -> torch.Tensor:
    """The scenes drawn in `style`: (N, 3, image_size, image_size) float32 in [-1, 1]."""
    if isinstance(style, str):
        style = STYLES[style]
    pixel = 2.0 / image_size
    coordinates = (torch.arange(image_size, dtype=torch.float32) + 0.5) * pixel - 1
    distance = inner_distance(scenes, coordinates.view(1, 1, 1, -1), coordinates.view(1, 1, -1, 1))

    def coverage(edge_distance: torch.Tensor) -> torch.Tensor:
        # A one-pixel linear ramp across each edge: smooth edges at every image size.
        return (edge_distance / pixel + 0.5).clamp(0, 1).unsqueeze(1)

    hue = scenes.hue + style.hue_shift
    fill = hsv_to_rgb(hue, style.fill_saturation, style.fill_value)[..., None, None]  # (N, S, 3, 1, 1)
    outline = hsv_to_rgb(hue, style.outline_saturation, style.outline_value)[..., None, None]
    image = torch.tensor(style.background).view(1, 3, 1, 1).expand(len(scenes), 3, image_size, image_size)
    # Painter's order: the last slot first, so the main shape (slot 0) ends up on top.
    for slot in reversed(range(MAX_SHAPES)):
        slot_distance = distance[:, slot]
        colour = fill[:, slot]
        if style.outline_width > 0:
            # The outline lies inside the boundary, so a shape covers the same pixels in every style.
            interior = coverage(slot_distance - style.outline_width * 2)  # the image is 2 units wide
            colour = outline[:, slot] + (colour - outline[:, slot]) * interior
        image = image + (colour - image) * coverage(slot_distance)
    return (image * 2 - 1).contiguous()


# Luminance weights (ITU-R BT.601); they sum to 1, so [-1, 1] stays [-1, 1].
GREY_WEIGHTS = (0.299, 0.587, 0.114)


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """RGB images (N, 3, H, W) as `channels` channels: unchanged for 3, luminance for 1."""
    if channels == 3:
        return images
    weights = torch.tensor(GREY_WEIGHTS, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True).clamp(-1, 1)
