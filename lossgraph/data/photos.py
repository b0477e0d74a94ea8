"""The builtin `photos` dataset: patches of public-domain photographs, made offline at run time.

    dataset: {builtin: photos, task: grade, pairing: paired}      # or pairing: unpaired, task: colorize

The photographs are those scikit-image ships inside its wheel (`skimage.data`), so nothing is
downloaded; scikit-image is the optional extra `pip install lossgraph[photos]`. Only colour
photographs whose scikit-image documentation states a public-domain or CC0 licence are used
(`PHOTOGRAPHS`):

    astronaut          Eileen Collins, NASA; no known copyright restrictions, released into the
                       public domain
    coffee             a coffee cup, Rachel Michetti; CC0
    chelsea            Chelsea the cat, Stefan van der Walt; CC0
    rocket             the DSCOVR launch on a Falcon 9, SpaceX; released into the public domain
    hubble_deep_field  the Hubble eXtreme Deep Field, NASA; public domain
    retina             a fundus photograph, Mikael Haggstrom; CC0 1.0 Universal

Left out: `cat` (the same photograph as chelsea), `immunohistochemistry` and `coins` ("no known
copyright restrictions", with no dedication), grey photographs and textures (`camera`, `clock`,
`horse`, `brick`, ...: no colour to translate), and images without a stated licence.

## Patches and the held-out split

Each photograph is resized (bicubic) so its shorter side is `photo_size` (default 4 x the load
size, so a patch shows a quarter of the photograph's height). Its columns are then split: the
right part, max(L, width // 4) columns wide, is held out; training patches lie in the columns left
of it, minus a gap of `GAP` columns so that no resampling kernel reaches across. No training
patch (nor any crop of one) touches a held-out pixel.

Training item i is an L x L patch (L the load size) of photograph i mod 6 at a position drawn
once per (seed, size) table, uniformly within the training columns; `size` items (default
4096). Held-out sample j is a patch of photograph j mod 6 in its held-out columns, likewise
drawn; `test_size` samples (default 60). Then augment.py crops to the image size as for every
dataset. A stream's epoch visits each item once, as dataset.py says.

## Domains

The spec needs exactly two image variables: the first reads domain A (the task's input) and
the second domain B (its ground truth, photo_tasks.py). Held-out samples are paired (the same
patch in both domains), so `E[l1(G(x) - y)]` on them is the translation error against ground
truth, and `E[l1(x - y)]` the do-nothing baseline. An `image(1)` variable gets the luma.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy
import torch
from PIL import Image

from lossgraph.data.dataset import DOMAINS, Dataset
from lossgraph.data.photo_tasks import TASKS
from lossgraph.data.scenes import to_channels
from lossgraph.data.seeds import seeded_generator
from lossgraph.data.variables import quoted, suggest
from lossgraph.language.errors import DataError

# skimage.data function -> (what it shows, who made it, its licence as scikit-image documents it)
PHOTOGRAPHS = {
    "astronaut": ("Eileen Collins", "NASA", "no known copyright restrictions, released into the public domain"),
    "coffee": ("a coffee cup", "Rachel Michetti", "CC0"),
    "chelsea": ("Chelsea the cat", "Stefan van der Walt", "CC0"),
    "rocket": ("the DSCOVR launch on a Falcon 9", "SpaceX", "released into the public domain"),
    "hubble_deep_field": ("the Hubble eXtreme Deep Field", "NASA", "public domain"),
    "retina": ("a fundus photograph", "Mikael Haggstrom", "CC0 1.0 Universal"),
}
EXTRA = "pip install lossgraph[photos]"
GAP = 4  # columns between the training and the held-out part of a photograph
HELD_OUT_FRACTION = 4  # the held-out part is width // 4 columns (at least one patch wide)


def photograph(name: str) -> numpy.ndarray:
    """The photograph `name` of skimage.data as (H, W, 3) uint8; a DataError names the extra."""
    try:
        from skimage import data
    except ImportError:
        raise DataError(f"dataset: builtin 'photos' needs scikit-image, which ships the photographs: {EXTRA}") from None
    return getattr(data, name)()


@functools.lru_cache(maxsize=4)
def photographs(photo_size: int) -> tuple[torch.Tensor, ...]:
    """Every photograph as (3, H, W) float32 in [0, 1], its shorter side `photo_size` (read only)."""
    resized = []
    for name in PHOTOGRAPHS:
        image = Image.fromarray(photograph(name)).convert("RGB")
        scale = photo_size / min(image.size)
        size = (max(photo_size, round(image.size[0] * scale)), max(photo_size, round(image.size[1] * scale)))
        pixels = numpy.asarray(image.resize(size, Image.Resampling.BICUBIC), dtype=numpy.float32) / 255
        resized.append(torch.from_numpy(pixels).permute(2, 0, 1).contiguous())
    return tuple(resized)


def split_column(width: int, patch: int) -> int:
    """The first held-out column of a photograph `width` columns wide (module docstring)."""
    return width - max(patch, width // HELD_OUT_FRACTION)


def patch_table(seed: int, split: str, count: int, photos: tuple[torch.Tensor, ...], patch: int) -> torch.Tensor:
    """(count, 3) int64: photograph, top and left of each patch of `split` (train or test)."""
    generator = seeded_generator("photos", seed, split, count, patch)
    table = torch.empty(count, 3, dtype=torch.long)
    table[:, 0] = torch.arange(count) % len(photos)
    draws = torch.rand(count, 2, generator=generator, dtype=torch.float64)
    for index, image in enumerate(photos):
        rows = table[:, 0] == index
        height, width = image.shape[1:]
        split_at = split_column(width, patch)
        # the range of top-left corners: rows anywhere; columns left of the gap, or in the held-out part
        first, last = (0, split_at - GAP - patch) if split == "train" else (split_at, width - patch)
        table[rows, 1] = (draws[rows, 0] * (height - patch + 1)).long()
        table[rows, 2] = first + (draws[rows, 1] * (last - first + 1)).long()
    return table


class PhotoDataset(Dataset):
    """Patches of public-domain photographs in two domains (see module docstring)."""

    NO_LABELS_HINT = "; the photos dataset has two image domains and no labels"

    def __init__(
        self,
        variables: Any,
        image_size: int,
        seed: int = 0,
        pairing: str = "unpaired",
        size: int = 4096,
        test_size: int = 60,
        task: str = "grade",
        photo_size: int | None = None,
        labels: Mapping[str, str] | None = None,
        held_out: Mapping[str, str] | None = None,
        load_size: int | None = None,
        flip: bool = False,
    ):
        super().__init__(variables, image_size, seed, pairing, load_size, flip)
        if len(self.images) != len(DOMAINS) or self.label_variables:
            raise DataError(
                f"dataset: builtin 'photos' provides {len(DOMAINS)} image domains (A the task's input, B its "
                f"ground truth), so the spec needs exactly 2 image variables and no labels; got {list(self.variables)}"
            )
        if task not in TASKS:
            raise DataError(f"dataset.task: {task!r} is not a task of builtin 'photos'; {suggest(str(task), TASKS)}")
        self.task = task
        patch = self.load_size
        self.photo_size = 4 * patch if photo_size is None else photo_size
        if not isinstance(self.photo_size, int) or isinstance(self.photo_size, bool) or self.photo_size < 2 * patch + GAP:
            raise DataError(
                f"dataset.photo_size: expected a whole number of pixels of at least {2 * patch + GAP} (two "
                f"{patch}-pixel patches side by side and a gap: one to train on, one held out), got {photo_size!r}"
            )
        self.size, self.test_size = size, test_size
        self.bind(labels, held_out)  # refuses any label or held-out source: there are none
        self.paired_held_out = True
        self.photos = photographs(self.photo_size)
        self.train_table = patch_table(seed, "train", size, self.photos, patch)
        self.test_table = patch_table(seed, "test", test_size, self.photos, patch)
        self._held_out_cache: dict[str, torch.Tensor] | None = None

    # ----- Dataset interface

    @property
    def stream_sizes(self) -> dict[str, int]:
        return {"pairs": self.size} if self.pairing == "paired" else {domain: self.size for domain in DOMAINS}

    def stream_of(self, variable: str) -> str:
        return "pairs" if self.pairing == "paired" else DOMAINS[self.images.index(variable)]

    @property
    def held_out_size(self) -> int:
        return self.test_size

    def patches(self, table: torch.Tensor) -> torch.Tensor:
        """The patches `table` names: (N, 3, L, L) RGB in [0, 1]."""
        patch = self.load_size
        return torch.stack([self.photos[photo][:, top:top + patch, left:left + patch]
                            for photo, top, left in table.tolist()])

    def domain(self, image: str, rgb: torch.Tensor) -> torch.Tensor:
        """Patches `rgb` as image variable `image` sees them: its domain, its channels, in [-1, 1]."""
        make = TASKS[self.task][self.images.index(image)]
        return to_channels(make(rgb) * 2 - 1, self.kinds[image].size)

    def load_items(self, indices: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {image: self.domain(image, self.patches(self.train_table[indices[image]])) for image in self.images}

    def load_held_out(self, count: int) -> dict[str, torch.Tensor]:
        if self._held_out_cache is None:
            rgb = self.patches(self.test_table)
            self._held_out_cache = {image: self.domain(image, rgb) for image in self.images}
        return {image: values[:count].clone() for image, values in self._held_out_cache.items()}

    def describe(self) -> str:
        size = self.image_size
        return (
            f"builtin photos: task {self.task}, {len(PHOTOGRAPHS)} photographs ({quoted(PHOTOGRAPHS)}) at shorter "
            f"side {self.photo_size}, {self.size} train patches, {self.test_size} held-out patches from "
            f"columns no training patch touches, {self.pairing}, {size}x{size}{self.augment_note()}, seed {self.seed}"
        )
