"""The builtin `shapes` dataset: procedural scenes (scenes.py), each image variable in its styles.

Every scene can be drawn in every style of `STYLES`, so the dataset always has paired ground
truth, even when training draws the domains independently. By default domain A is style "flat"
and domain B style "outlined" (`DOMAIN_STYLES`); the config's `styles:` picks others.

An image variable given several styles (StarGAN's K labelled domains) draws each training sample
in one of them: its stream holds every scene once per style, item i being scene i // K in style
i % K, so an epoch shows each scene in each style once (see `ShapesDataset`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from lossgraph.data.dataset import Dataset
from lossgraph.data.scenes import (
    DOMAIN_STYLES,
    KIND_NAMES,
    SHAPE_KINDS,
    STYLES,
    Scenes,
    render,
    sample_scenes,
    to_channels,
)
from lossgraph.data.sources import Source, SourceFunction
from lossgraph.data.variables import quoted, suggest
from lossgraph.language.errors import DataError
from lossgraph.language.kinds import Kind


def resolve_styles(images: tuple[str, ...], styles: Any) -> dict[str, tuple[str, ...]]:
    """The styles of each image variable, from the config's `styles:` (None: the default).

    A value is a style name, a list of distinct names, or an integer K for the first K styles
    of `STYLES`. Without `styles:` there must be exactly two image variables, drawn in
    `DOMAIN_STYLES` order.
    """
    if styles is None:
        if len(images) != len(DOMAIN_STYLES):
            example = f"styles: {{{images[0]}: [flat, outlined, slate]}}" if images else "styles: {x: flat}"
            raise DataError(
                f"dataset: without 'styles', the shapes dataset has {len(DOMAIN_STYLES)} domains (A flat, "
                f"B outlined), so the spec needs exactly {len(DOMAIN_STYLES)} distinct image variables (the "
                f"first reads A, the second B); got {list(images)}; or say each image's styles: {example}"
            )
        return {image: (style,) for image, style in zip(images, DOMAIN_STYLES)}
    if not isinstance(styles, Mapping):
        raise DataError(
            f"dataset.styles: expected a mapping from image variables to styles such as "
            f"{{x: flat, y: outlined}}, got {type(styles).__name__}"
        )
    if not images:
        raise DataError("dataset.styles: the spec has no image variables to draw")
    for name in styles:
        if name not in images:
            raise DataError(f"dataset.styles: {name!r} is not an image variable of the spec; {suggest(str(name), images)}")
    resolved = {}
    links = style_links(images, styles)
    for image in images:
        if image not in styles:
            raise DataError(
                f"dataset.styles: no styles for image variable '{image}'; give every image its "
                f"styles (one of {quoted(STYLES)}, a list of them, a count K, or another image "
                f"variable whose style it takes)"
            )
        if image not in links:
            resolved[image] = style_names(styles[image], f"dataset.styles.{image}")
    for image, other in links.items():
        resolved[image] = resolved[other]
    return {image: resolved[image] for image in images}


def style_links(images: tuple[str, ...], styles: Mapping[str, Any] | None) -> dict[str, str]:
    """{image: other} for each `styles:` entry naming another image variable: the image is drawn,
    sample by sample, in the style `other` is drawn in, on scenes of its own (StarGAN v2's second
    reference of the first reference's domain)."""
    if not isinstance(styles, Mapping):
        return {}
    links = {image: value for image, value in styles.items()
             if isinstance(value, str) and value in images and value not in STYLES}
    for image, other in links.items():
        key = f"dataset.styles.{image}"
        if other == image:
            raise DataError(f"{key}: an image cannot take its own style; give it styles (a count K or a list)")
        if other in links:
            raise DataError(
                f"{key}: '{other}' takes its style from '{links[other]}' in turn; name '{links[other]}', "
                f"the image whose styles are listed"
            )
    return links


def style_names(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= len(STYLES):
            raise DataError(f"{key}: {value} styles asked for; there are 1 to {len(STYLES)} ({quoted(STYLES)})")
        return tuple(STYLES)[:value]
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(
            f"{key}: expected a style name, a non-empty list of them, or a count; got {value!r} "
            f"(styles: {quoted(STYLES)})"
        )
    for name in names:
        if not isinstance(name, str) or name not in STYLES:
            raise DataError(f"{key}: unknown style {name!r}; {suggest(str(name), STYLES)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"{key}: style {quoted(repeated)} listed twice; each style is one domain")
    return tuple(names)


def stream_name(position: int) -> str:
    """The stream of the `position`-th image variable of unpaired data: A, B, C, ..."""
    return chr(ord("A") + position) if position < 26 else f"domain{position}"


class ShapesDataset(Dataset):
    """Procedural scenes, each image variable drawn in its styles (see module docstring).

    `size` training scenes and `test_size` held-out samples. Paired data gives all image
    variables one stream, unpaired data one stream each (named A, B, C, ... in order). A
    stream's item i is scene i // R drawn, for each of its image variables, in style
    (i % R) % K, where K is that variable's style count and R the least common multiple of
    the counts in the stream (1 when each image has one style: item i is scene i).

    Held-out samples are paired: sample j of every image variable shows test scene j // R,
    R now over all image variables, in style (j % R) % K. So an image with K styles shows each
    held-out scene in all K styles at consecutive indices.
    """

    FUNCTIONS = {
        "shape": SourceFunction("shape", f"the kind of the scene's main shape, 0 to {len(SHAPE_KINDS) - 1}: "
                                + ", ".join(KIND_NAMES)),
        "style": SourceFunction("style", "the index of the image's style in its list of styles"),
        "target_style": SourceFunction(
            "target_style", "a style index other than the image's own, fixed per held-out sample",
            held_out_only=True,
        ),
        "restyle": SourceFunction(
            "restyle", "the image's scene drawn in the style that a style label of the image gives",
            takes_label=True, held_out_only=True,
        ),
    }

    def __init__(
        self,
        variables: Any,
        image_size: int,
        seed: int = 0,
        pairing: str = "unpaired",
        size: int = 4096,
        test_size: int = 64,
        styles: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        held_out: Mapping[str, str] | None = None,
        load_size: int | None = None,
        flip: bool = False,
    ):
        super().__init__(variables, image_size, seed, pairing, load_size, flip)
        self.size = size
        self.test_size = test_size
        self.image_styles = resolve_styles(self.images, styles)
        self.links = style_links(self.images, styles)
        if pairing == "paired" and self.links:
            image, other = next(iter(self.links.items()))
            raise DataError(
                f"dataset.styles.{image}: paired data draws '{image}' on the scenes of '{other}', so in "
                f"'{other}''s style it would repeat '{other}' exactly; use pairing: unpaired"
            )
        if pairing == "paired":
            self.image_streams = {image: "pairs" for image in self.images}
        else:
            self.image_streams = {image: stream_name(position) for position, image in enumerate(self.images)}
        self.repeats: dict[str, int] = {}
        for image, stream in self.image_streams.items():
            own = 1 if image in self.links else len(self.image_styles[image])  # a linked image's style is given
            self.repeats[stream] = math.lcm(self.repeats.get(stream, 1), own)
        self.held_out_repeat = math.lcm(*(len(names) for names in self.image_styles.values()))
        self.bind(labels, held_out)
        # Every held-out scene is drawn in every image variable's style, so held-out samples pair up.
        self.paired_held_out = True
        self._held_out_cache: dict[str, torch.Tensor] | None = None

    # ----- sources

    def source_kind(self, source: Source, key: str) -> Kind:
        styles = self.image_styles[source.image]
        if source.function == "shape":
            return Kind("label", len(SHAPE_KINDS))
        if source.function == "style":
            return Kind("label", len(styles))
        if source.function == "target_style":
            if len(styles) < 2:
                raise DataError(
                    f"{key}: target_style({source.image}) needs an image with at least 2 styles, but "
                    f"'{source.image}' has only {quoted(styles)}"
                )
            return Kind("label", len(styles))
        if source.function == "restyle":
            return self.kinds[source.image]
        return super().source_kind(source, key)

    def check_label_argument(self, source: Source, label: Source, key: str) -> None:
        if label.function not in ("style", "target_style") or label.image != source.image:
            raise DataError(
                f"{key}: {source} needs '{source.label}' to be a style label of '{source.image}' "
                f"(style({source.image}) or target_style({source.image})), but '{source.label}' is {label}"
            )

    # ----- Dataset interface

    @property
    def domain_sizes(self) -> tuple[int, ...]:
        """Training items per image variable, in order (its stream's item count)."""
        return tuple(self.stream_sizes[self.image_streams[image]] for image in self.images)

    @property
    def stream_sizes(self) -> dict[str, int]:
        return {stream: self.size * repeat for stream, repeat in self.repeats.items()}

    def stream_of(self, variable: str) -> str:
        if variable in self.image_streams:
            return self.image_streams[variable]
        return self.image_streams[self.sources[variable].image]

    @property
    def held_out_size(self) -> int:
        return self.test_size

    def scenes(self, split: str, indices: torch.Tensor | list[int]) -> Scenes:
        """Parameters of the scenes at scene `indices` of `split` ("train" or "test")."""
        return sample_scenes(self.seed, split, indices)

    def train_scenes(self, variable: str, items: torch.Tensor) -> tuple[Scenes, torch.Tensor]:
        """The scenes behind training `items` of `variable`'s stream, and each item's style index."""
        image = variable if variable in self.image_streams else self.sources[variable].image
        repeat = self.repeats[self.image_streams[image]]
        return self.scenes("train", items // repeat), (items % repeat) % len(self.image_styles[image])

    def draw(self, image: str, scenes: Scenes, style_index: torch.Tensor) -> torch.Tensor:
        """`scenes` drawn as image variable `image`, sample n in its style `style_index[n]`."""
        names = self.image_styles[image]
        if len(names) == 1:
            images = render(scenes, names[0], self.load_size)
        else:
            size = self.load_size
            images = torch.empty(len(scenes), 3, size, size)
            for index in torch.unique(style_index).tolist():
                chosen = style_index == index
                images[chosen] = render(scenes.take(chosen), names[index], size)
        return to_channels(images, self.kinds[image].size)

    def _values(
        self,
        names: Mapping[str, Source],
        scenes: Scenes,
        style_of: Mapping[str, torch.Tensor],
        done: dict[str, torch.Tensor],
        scene_index: torch.Tensor,
    ) -> None:
        """Fill `done` with the value of every source in `names` (labels before restyles)."""
        for name in sorted(names, key=lambda name: names[name].label is not None):
            source = names[name]
            if source.function == "shape":
                done[name] = scenes.labels.clone()
            elif source.function == "style":
                done[name] = style_of[source.image].clone()
            elif source.function == "target_style":
                count = len(self.image_styles[source.image])
                offset = 1 + scene_index % (count - 1)
                done[name] = (style_of[source.image] + offset) % count
            elif source.function == "restyle":
                done[name] = self.draw(source.image, scenes, done[source.label])

    def load_items(self, indices: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loaded: dict[str, torch.Tensor] = {}
        by_stream: dict[str, Scenes] = {}  # the variables of one stream share their scenes
        style_of = {}
        for image in self.images:
            stream = self.image_streams[image]
            scenes, style_of[image] = self.train_scenes(image, indices[image])
            scenes = by_stream.setdefault(stream, scenes)
            if image in self.links:
                continue
            loaded[image] = self.draw(image, scenes, style_of[image])
        for image, other in self.links.items():  # in the style its linked image drew, sample by sample
            style_of[image] = style_of[other]
            loaded[image] = self.draw(image, by_stream[self.image_streams[image]], style_of[image])
        for name, source in self.sources.items():
            scenes = by_stream[self.image_streams[source.image]]
            self._values({name: source}, scenes, style_of, loaded, torch.zeros(0, dtype=torch.long))
        return loaded

    def load_held_out(self, count: int) -> dict[str, torch.Tensor]:
        # Rendered once up to the largest count asked for; the first samples never change.
        cache = self._held_out_cache
        if cache is None or len(cache[self.variables[0]]) < count:
            samples = torch.arange(count)
            scene_index = samples // self.held_out_repeat
            scenes = self.scenes("test", scene_index)
            style_of = {
                image: (samples % self.held_out_repeat) % len(names) for image, names in self.image_styles.items()
            }
            cache = {image: self.draw(image, scenes, style_of[image]) for image in self.images if image not in self.links}
            for image, other in self.links.items():
                # the next test scene, so that a linked image is never its partner's copy
                style_of[image] = style_of[other]
                others = self.scenes("test", scene_index + 1)
                cache[image] = self.draw(image, others, style_of[image])
            self._values({**self.sources, **self.extras}, scenes, style_of, cache, scene_index)
            self._held_out_cache = cache
        # Clones, so that a caller writing into its batch cannot change later calls.
        return {name: values[:count].clone() for name, values in cache.items()}

    def describe(self) -> str:
        size = self.image_size
        styles = ", ".join(f"{image} {'|'.join(names)}" for image, names in self.image_styles.items())
        sources = self.describe_sources()
        return (
            f"builtin shapes: {self.size} train scenes, {self.test_size} test samples, "
            f"{self.pairing}, {size}x{size}{self.augment_note()}, styles {styles}{', ' + sources if sources else ''}, seed {self.seed}"
        )
