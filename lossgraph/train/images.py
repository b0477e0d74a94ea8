"""Image tensors to PNG files: the sample grids a training run writes.

`save_grid(rows, path)` takes rows of `(label, images)`, each `images` a batch `(N, C, H, W)` with
values in [-1, 1], and writes one PNG with a row per entry and a column per sample, the label
drawn in a left margin with PIL's default font. One channel is shown as grey, three as RGB, four
as RGB (alpha dropped); any other count shows its first channel as grey. Cells take the largest
image size in the grid, so rows of different resolutions (say a low-resolution input beside its
upscaled output) line up, each image centred in its cell.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

PADDING = 2  # pixels between cells and around the grid
BACKGROUND = 24  # dark grey: black and white images both stand out against it
LABEL_COLOUR = (230, 230, 230)
LABEL_GAP = 6  # pixels either side of a label


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map [-1, 1] images `(N, C, H, W)` to uint8 `(N, H, W, 3)` RGB on the CPU."""
    if images.dim() == 3:  # a single image
        images = images.unsqueeze(0)
    if images.dim() != 4:
        raise ValueError(f"expected images shaped (N, C, H, W), got {tuple(images.shape)}")
    images = images.detach().to("cpu", torch.float32)
    channels = images.shape[1]
    if channels in (3, 4):
        images = images[:, :3]
    else:
        images = images[:, :1].expand(-1, 3, -1, -1)
    # Round rather than truncate so that -1, 0 and 1 land on 0, 128 and 255.
    pixels = ((images.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous()


def _to_pil(canvas: torch.Tensor) -> Image.Image:
    height, width, _ = canvas.shape
    try:
        return Image.fromarray(canvas.numpy())
    except (RuntimeError, TypeError, ImportError):  # torch built without numpy
        return Image.frombytes("RGB", (width, height), bytes(canvas.flatten().tolist()))


def make_grid(rows: Sequence[tuple[str, torch.Tensor]], labels: bool = True) -> Image.Image:
    """The grid `save_grid` writes, as a PIL image."""
    if not rows:
        raise ValueError("a sample grid needs at least one row")
    batches = [to_uint8(images) for _, images in rows]
    cell_height = max(batch.shape[1] for batch in batches)
    cell_width = max(batch.shape[2] for batch in batches)
    columns = max(batch.shape[0] for batch in batches)

    font = ImageFont.load_default() if labels else None
    margin = 0
    if font is not None:
        widths = [font.getbbox(str(label))[2] for label, _ in rows]
        margin = max(widths, default=0) + 2 * LABEL_GAP

    width = margin + PADDING + columns * (cell_width + PADDING)
    height = PADDING + len(rows) * (cell_height + PADDING)
    canvas = torch.full((height, width, 3), BACKGROUND, dtype=torch.uint8)
    for row, batch in enumerate(batches):
        top = PADDING + row * (cell_height + PADDING)
        for column in range(batch.shape[0]):
            left = margin + PADDING + column * (cell_width + PADDING)
            image = batch[column]
            offset_y = (cell_height - image.shape[0]) // 2
            offset_x = (cell_width - image.shape[1]) // 2
            canvas[top + offset_y: top + offset_y + image.shape[0],
                   left + offset_x: left + offset_x + image.shape[1]] = image

    picture = _to_pil(canvas)
    if font is not None:
        draw = ImageDraw.Draw(picture)
        for row, (label, _) in enumerate(rows):
            box = font.getbbox(str(label))
            top = PADDING + row * (cell_height + PADDING) + (cell_height - (box[3] - box[1])) // 2 - box[1]
            draw.text((LABEL_GAP, top), str(label), fill=LABEL_COLOUR, font=font)
    return picture


def save_grid(rows: Sequence[tuple[str, torch.Tensor]], path: str | os.PathLike, labels: bool = True) -> Path:
    """Write `rows` as one PNG grid at `path` (folders created) and return the path.

    Written to a temporary name and renamed, so a viewer watching the folder never opens half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = make_grid(rows, labels=labels)
    temporary = path.with_name(f".tmp-{path.name}")
    picture.save(temporary, format="PNG")
    os.replace(temporary, path)
    return path
