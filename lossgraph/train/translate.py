"""A trained generator applied to images on disk: `lossgraph translate RUN --input A --output B`.

    RUN/spec.yaml             the resolved spec the run trained (written at the start of each run);
                              `--spec` names one for a run folder without it
    RUN/checkpoints/step_N/   the weights; the latest complete checkpoint unless `--checkpoint` names
                              another: `best` (train.keep_best's), `latest`, a step number, or a folder

The program is compiled from the spec, its networks built and the checkpoint's tensors loaded.
Images are read EXIF-upright and mapped to [-1, 1] as training reads a folder
(`data/image_folder.py`), run through the network in batches, in eval mode and without autograd,
and written as PNGs under the output folder with the input's relative path and a `.png` suffix
(`a/b.jpg` -> `OUT/a/b.png`).

Sizes: by default every image keeps its own size. A fully convolutional generator accepts any size
that is a multiple of what its down-sampling needs (2**depth for a U-Net); that multiple is found
by trying sizes on meta tensors (`size_multiple`), each image is padded to it by reflection
(replication where an image is too small to reflect) and the output cropped back to the input's
pixels. `size` (`--size N`) resizes instead, as training does: shorter side N, centre-cropped.
A generator that takes its training size only (a layer that fixes the spatial size) gets images
resized to `train.image_size`, with a note saying so.

Which network: one that maps a single image to an image of the same size (the shape check on
meta tensors tells; a discriminator's patch map is smaller, a latent is not an image). By default
the first such network in the spec's order (`G_XY` for CycleGAN). A network that needs more inputs
(a label, noise) cannot be applied to a folder of images alone: the error lists what each
network takes and which ones translate can apply.

`--ema` applies the network's moving average instead (a spec's `ema: {G_XY: 0.999}` makes a run
keep one, saved in each checkpoint as network `G_XY@ema`).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lossgraph.train.best import named_checkpoint
from lossgraph.train.checkpoint import latest_checkpoint, load_checkpoint, stored_networks
from lossgraph.data.image_folder import IMAGE_SUFFIXES, as_tensor, list_images, load_image, open_image
from lossgraph.train.ema import EMA_SUFFIX, ema_name, is_ema_name
from lossgraph.language.errors import DataError, LossgraphError, did_you_mean
from lossgraph.train.images import to_uint8
from lossgraph.compiler.ops import Ops

SPEC_FILE = "spec.yaml"


@dataclass(frozen=True)
class Signature:
    """How a network is applied in the objective, from the meta-tensor shape check."""

    network: str
    call: str                     # e.g. G(x, c_t)
    inputs: tuple[str, ...]       # image | label | vector | tensor (N, ...) per argument
    output: str                   # image | tensor (N, ...)
    channels: int                 # input channels of a one-image network

    @property
    def translates(self) -> bool:
        return self.inputs == ("image",) and self.output == "image"

    def describe(self) -> str:
        return f"{self.call}: takes {', '.join(self.inputs)}, returns {self.output}"


@dataclass
class Translation:
    network: str
    checkpoint: Path
    written: list[Path] = field(default_factory=list)
    ema: bool = False  # the network's moving average was applied (`--ema`)
    size: int | None = None  # the side images were resized to; None: each kept its own size
    multiple: int | None = None  # what sides the network takes (padded to); None: its training size only
    note: str = ""  # how images were sized, when not as asked


# ----- sizes


def fits(net: nn.Module, channels: int, height: int, width: int, device: torch.device | str) -> bool:
    """Whether `net` maps one (channels, height, width) image to an image of the same height and width."""
    try:
        with torch.inference_mode():
            out = net(torch.zeros(1, channels, height, width, device=device))
    except Exception:  # any failure (a size mismatch in a skip, a fixed-size layer) means: not this size
        return False
    return isinstance(out, torch.Tensor) and out.dim() == 4 and tuple(out.shape[2:]) == (height, width)


def size_multiple(net: nn.Module, channels: int, image_size: int) -> int | None:
    """The least power of two m such that `net` takes images of any sides that are multiples of m
    (tried at two unequal sides above the training size), or None: it takes `image_size` only.

    Tried on a meta copy (shapes only, no arithmetic); a network that cannot run on meta tensors
    is tried on zeros on the CPU instead.
    """
    probe, device = copy.deepcopy(net).to("meta"), "meta"
    if not fits(probe, channels, image_size, image_size, device):
        probe, device = copy.deepcopy(net).cpu(), "cpu"
    multiple = 1
    while multiple <= image_size:
        if fits(probe, channels, image_size + multiple, image_size + 2 * multiple, device) and \
                fits(probe, channels, image_size + 3 * multiple, image_size + multiple, device):
            return multiple
        multiple *= 2
    return None


def padded(images: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """`images` (N, C, H, W) padded on all sides to sides that are multiples of `multiple`, by
    reflection (replication where a side is too short to reflect); and where the input starts."""
    height, width = images.shape[2:]
    extra_h, extra_w = -height % multiple, -width % multiple
    top, left = extra_h // 2, extra_w // 2
    pads = (left, extra_w - left, top, extra_h - top)
    if not any(pads):
        return images, (0, 0)
    reflectable = max(pads[:2]) < width and max(pads[2:]) < height
    return F.pad(images, pads, mode="reflect" if reflectable else "replicate"), (top, left)


def apply(net: nn.Module, images: torch.Tensor, multiple: int | None) -> torch.Tensor:
    """`net` on `images`, padded to `multiple` and cropped back to the input's pixels."""
    if multiple is None:
        return net(images)
    height, width = images.shape[2:]
    inputs, (top, left) = padded(images, multiple)
    out = net(inputs)
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[2:] != inputs.shape[2:]:
        return out  # refused by the caller, with the network's name
    return out[:, :, top:top + height, left:left + width]


def read_image(path: Path, size: int | None, channels: int) -> torch.Tensor:
    """An input image in [-1, 1]: resized and centre-cropped to `size`, or at its own size (None)."""
    return load_image(path, size, channels) if size is not None else as_tensor(open_image(path), channels)


def signatures(program: Any) -> dict[str, Signature]:
    """Each applied network's signature, in the spec's order of networks."""
    from lossgraph.compiler.printing import formula_text
    from lossgraph.compiler.shape_check import infer_shapes

    import lossgraph.nets as architectures

    shapes = infer_shapes(program.spec, program.graph).shapes
    size = program.spec.train.image_size

    def kind(node) -> str:
        shape = shapes.get(node)
        if shape is None or len(shape) == 0:
            return "a number"
        if len(shape) == 4 and shape[1] in (1, 3) and shape[2:] == (size, size):
            return "image"
        if len(shape) == 1:
            return "label"
        if len(shape) == 2:
            return "vector"
        return f"tensor {tuple(shape[1:])}"

    found: dict[str, Signature] = {}
    for node in program.graph.nodes():
        if node.op is not Ops.APPLY or node.arg in found or node.arg not in program.network_configs:
            continue
        config = program.network_configs[node.arg]
        role = architectures.ARCHS[config.arch].role if config.arch in architectures.ARCHS else ""
        output = kind(node)
        if output == "image" and role == "discriminator":
            output = "a score map"
        found[node.arg] = Signature(node.arg, formula_text(node), tuple(kind(arg) for arg in node.args), output,
                                    config.in_channels)
    return {name: found[name] for name in program.spec.networks if name in found}


def choose_network(program: Any, wanted: str | None, command: str = "translate",
                   purpose: str = "translate applies a network to one image and saves the image it returns",
                   verb: str = "apply") -> Signature:
    """The network `command` takes: `wanted`, or the first that maps one image to an image.
    `purpose` and `verb` say in its errors what the command does with it."""
    found = signatures(program)
    able = [signature.network for signature in found.values() if signature.translates]
    listing = "\n  ".join(signature.describe() for signature in found.values())
    if wanted is not None:
        if wanted not in program.spec.networks:
            hint = did_you_mean(wanted, program.spec.networks)
            raise LossgraphError(f"spec '{program.name}' has no network '{wanted}'" + (f" ({hint})" if hint else ""))
        signature = found.get(wanted)
        if signature is None or not signature.translates:
            what = signature.describe() if signature else f"{wanted} is never applied in the objective"
            choices = f"networks it can {verb}: {', '.join(able)}" if able else "no network of this spec maps one image to an image"
            raise LossgraphError(f"{purpose}, but {what}; {choices}")
        return signature
    if not able:
        raise LossgraphError(f"spec '{program.name}' has no network that maps one image to an image, so {command} "
                             f"cannot choose one; its networks:\n  {listing}\n"
                             f"(a network that also needs labels or noise cannot be applied to images alone)")
    return found[able[0]]


def resolve_checkpoint(run: Path, checkpoint: str | os.PathLike | None) -> Path:
    if isinstance(checkpoint, str) and (checkpoint in ("best", "latest") or checkpoint.isdigit()):
        return named_checkpoint(run / "checkpoints", checkpoint)  # `best`, `latest`, a step: of this run
    if checkpoint is None:
        found = latest_checkpoint(run / "checkpoints")
        if found is None:
            raise LossgraphError(f"{run} holds no complete checkpoint (looked in {run / 'checkpoints'}); "
                                 f"train first, or pass --checkpoint PATH")
        return found
    path = Path(checkpoint)
    if not path.exists():
        raise LossgraphError(f"checkpoint {path} does not exist")
    if path.is_dir() and not (path / "nets.safetensors").is_file():
        # a `checkpoints/` folder: its latest
        found = latest_checkpoint(path)
        if found is None:
            raise LossgraphError(f"{path} is not a checkpoint: it has no nets.safetensors and no step_* checkpoints")
        return found
    return path


def resolve_spec(run: Path, spec: str | os.PathLike | None):
    import lossgraph

    from lossgraph.language.plugins import require_archs

    if spec is None:
        spec = run / SPEC_FILE
        if not spec.is_file():
            raise LossgraphError(
                f"{run} has no {SPEC_FILE}, so the spec it was trained from is unknown (runs save it when they start; "
                f"this folder is older or not a run folder); pass --spec SPEC naming the spec it was trained with")
    loaded = lossgraph.load(spec)
    require_archs(loaded, run)  # an arch from the run's --import, missing now: say which --import to add
    return lossgraph.compile(loaded)


def input_images(source: Path) -> tuple[Path, list[Path]]:
    """(root the output names are relative to, image files)."""
    if source.is_file():
        if not source.name.lower().endswith(IMAGE_SUFFIXES):
            raise DataError(f"{source} is not an image lossgraph reads ({', '.join(IMAGE_SUFFIXES)})")
        return source.parent, [source]
    if source.is_dir():
        files = list_images(source)
        if not files:
            raise DataError(f"{source} holds no images ({', '.join(IMAGE_SUFFIXES)}, searched recursively)")
        return source, files
    raise DataError(f"input {source} does not exist")


def output_names(root: Path, files: list[Path], output: Path) -> list[Path]:
    targets = [output / path.relative_to(root).with_suffix(".png") for path in files]
    seen: dict[Path, Path] = {}
    for source, target in zip(files, targets):
        if target in seen:
            raise DataError(f"{seen[target]} and {source} would both be written to {target}; rename one of them")
        seen[target] = source
    inputs = {path.resolve() for path in files}
    clash = next((target for target in targets if target.resolve() in inputs), None)
    if clash is not None:
        raise DataError(f"writing {clash} would overwrite an input image; choose another --output folder")
    return targets


def translate(run: str | os.PathLike, source: str | os.PathLike, output: str | os.PathLike, network: str | None = None,
              checkpoint: str | os.PathLike | None = None, spec: str | os.PathLike | None = None,
              batch_size: int = 16, device: str = "auto", ema: bool = False, size: int | None = None) -> Translation:
    """Apply a run's trained network to the image(s) at `source`, writing PNGs under `output`.

    `size`: resize every image so its shorter side is `size` and centre-crop it, as training reads
    images; None keeps each image's own size (module docstring).

    `ema`: apply the network's moving average (the spec's `ema:`, stored as `<name>@ema`) instead
    of its trained weights; an error when the checkpoint holds none.
    """
    from lossgraph.train.device import resolve_device

    run, source, output = Path(run), Path(source), Path(output)
    if not run.is_dir():
        problem = "is not a folder" if run.exists() else "does not exist"
        raise LossgraphError(f"run folder {run} {problem}")
    if batch_size < 1:
        raise LossgraphError(f"batch size must be at least 1, got {batch_size}")
    if output.exists() and not output.is_dir():
        raise LossgraphError(f"output {output} is a file; --output names a folder")
    root, files = input_images(source)
    targets = output_names(root, files, output)
    target_device = resolve_device(device)
    program = resolve_spec(run, spec)
    signature = choose_network(program, network)
    found = resolve_checkpoint(run, checkpoint)

    nets = program.build_networks(seed=0)
    stored = stored_networks(found)
    averaged = {}
    if ema:
        if ema_name(signature.network) not in stored:
            kept = [name[: -len(EMA_SUFFIX)] for name in stored if is_ema_name(name)]
            has = f"it holds moving averages of {', '.join(kept)} only" if kept else "the run kept no moving average (ema: in its spec)"
            raise LossgraphError(f"--ema: checkpoint {found} has no moving average of {signature.network}; {has}")
        averaged = {ema_name(signature.network): copy.deepcopy(nets[signature.network])}
    state = load_checkpoint(found, {**nets, **averaged}, ignore=[name for name in stored if is_ema_name(name)])
    written_by = state.get("spec")
    if written_by is not None and written_by != program.name:
        raise LossgraphError(f"checkpoint {found} was written by spec '{written_by}', not '{program.name}'")
    net = (averaged[ema_name(signature.network)] if ema else nets[signature.network]).to(target_device).eval()
    result = sizing(Translation(signature.network, found, ema=ema), net, signature.channels,
                    program.spec.train.image_size, size)
    with torch.inference_mode():
        for start in range(0, len(files), batch_size):
            chunk = list(zip(files[start:start + batch_size], targets[start:start + batch_size]))
            loaded = [read_image(path, result.size, signature.channels) for path, _ in chunk]
            by_shape: dict[tuple, list[int]] = {}  # images of one size go through the network together
            for index, image in enumerate(loaded):
                by_shape.setdefault(tuple(image.shape), []).append(index)
            for indices in by_shape.values():
                batch = torch.stack([loaded[index] for index in indices]).to(target_device)
                images = apply(net, batch, result.multiple)
                if not isinstance(images, torch.Tensor) or images.shape[0] != len(indices):
                    raise LossgraphError(f"network {signature.network} did not return one image per input")
                if images.dim() != 4 or images.shape[2:] != batch.shape[2:]:
                    raise LossgraphError(f"network {signature.network} returned {tuple(images.shape[1:])} for an "
                                         f"input of {tuple(batch.shape[1:])}; translate needs an image of the same size")
                pixels = to_uint8(images)
                for row, index in enumerate(indices):
                    _save(pixels[row], chunk[index][1], grey=images.shape[1] == 1)
            result.written.extend(target for _, target in chunk)
    return result


def sizing(result: Translation, net: nn.Module, channels: int, image_size: int, size: int | None) -> Translation:
    """`result` with the size images are read at and the multiple they are padded to (module docstring)."""
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise LossgraphError(f"--size must be a positive number of pixels, got {size!r}")
    multiple = size_multiple(net, channels, image_size)
    if multiple is None:
        if size is not None and size != image_size:
            raise LossgraphError(
                f"network {result.network} takes {image_size}x{image_size} images only (it is not fully "
                f"convolutional), so it cannot translate at --size {size}; leave out --size, or pass --size {image_size}")
        result.note = (f"{result.network} takes {image_size}x{image_size} images only (not fully convolutional): "
                       f"inputs resized to {image_size}x{image_size}") if size is None else ""
        size = image_size
    result.size, result.multiple = size, multiple
    return result


def _save(pixels: torch.Tensor, path: Path, grey: bool) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(pixels.numpy())
    if grey:
        picture = picture.convert("L")
    picture.save(path, format="PNG")


__all__ = ["Signature", "Translation", "choose_network", "signatures", "size_multiple", "translate"]
