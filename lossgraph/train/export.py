"""A trained generator written as a file other programs run: `lossgraph export RUN -o G_XY.onnx`.

    RUN/spec.yaml, RUN/checkpoints/step_N/    as `translate` reads them (translate.py)
    -o G_XY.onnx                              an ONNX model (torch.onnx's dynamo exporter)
    -o G_XY.pt2                               a `torch.export` program (`torch.export.load`)

The suffix chooses the format. Which network, which checkpoint and `--ema` work as in `translate`:
a network that maps one image to an image, by default the spec's first. It is exported in eval
mode (batch norm's running statistics, no dropout), on the CPU, in float32, as a module of one
input named `images`, (N, C, H, W) in [-1, 1], and one output `translated`, the same.

Note [Sizes the file takes]
    The batch is always free. Height and width are free too when the network is fully
    convolutional: it is probed on meta tensors (translate.py's `size_multiple`) for the smallest
    power of two m such that sides that are multiples of m come back at their own size (a U-Net of
    depth d needs 2**d, the ResNet generator 2**downsample), then for the smallest such side, and
    exported with `Dim.AUTO` sides.
    A .pt2 program's guards refuse other sides; an ONNX model has no such check and fails inside
    (or returns another size), so the file says the rule. A network that is not
    fully convolutional, a probe that finds no rule, a dynamic export that fails, or `--size N`
    gives a file of one fixed side, which it records.

Every file records how to feed it (`METADATA` keys): the spec, network and checkpoint, the
channels, the normalisation (pixels p in 0..255 as p / 127.5 - 1, output likewise), the side it
was trained at, and the sizes it takes. ONNX keeps them as `metadata_props` (strings: numbers and
booleans as JSON); a .pt2 as the JSON file `lossgraph.json` among its `extra_files`.
`read_metadata(path)` reads either back. After writing, the file is run once against the PyTorch
network (onnxruntime for ONNX, where installed; `torch.export.load` for .pt2) and the largest
difference is reported.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from lossgraph.language.errors import LossgraphError
from lossgraph.train.checkpoint import load_checkpoint, stored_networks
from lossgraph.train.ema import EMA_SUFFIX, ema_name, is_ema_name
from lossgraph.train.translate import choose_network, fits, resolve_checkpoint, resolve_spec, size_multiple

SUFFIXES = {".onnx": "ONNX", ".pt2": "torch.export program"}
METADATA_FILE = "lossgraph.json"  # inside a .pt2, among its extra_files
NORMALISATION = "pixels p in 0..255 as p / 127.5 - 1 (mean 0.5, std 0.5 on [0, 1]); the output likewise, in [-1, 1]"
INPUT, OUTPUT = "images", "translated"


class Images(nn.Module):
    """The network as an exported program sees it: one tensor of images in, one out. With a
    `multiple`, sides that are not multiples of it fail the program's guard (in a .pt2; ONNX
    drops such checks) instead of coming back at another size."""

    def __init__(self, network: nn.Module, multiple: int | None = None):
        super().__init__()
        self.network = network
        self.multiple = multiple

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.multiple is not None:
            for side in (images.shape[2], images.shape[3]):
                torch._check(side % self.multiple == 0, lambda: f"image sides must be multiples of {self.multiple}")
        return self.network(images)


@dataclass(frozen=True)
class SizeRule:
    """Sides a fully convolutional network maps to themselves: multiples of `multiple`, from `smallest`."""

    multiple: int
    smallest: int

    def describe(self) -> str:
        return f"H and W multiples of {self.multiple} from {self.smallest}"


@dataclass
class Export:
    network: str
    checkpoint: Path | None
    path: Path
    metadata: dict[str, Any]
    difference: float | None = None  # largest |exported - PyTorch| over the check's outputs
    checked_with: str | None = None  # what ran the file, or None where nothing could
    notes: list[str] = field(default_factory=list)

    @property
    def dynamic(self) -> bool:
        return bool(self.metadata["dynamic_size"])


def export(run: str | os.PathLike, output: str | os.PathLike, network: str | None = None,
           checkpoint: str | os.PathLike | None = None, spec: str | os.PathLike | None = None,
           ema: bool = False, size: int | None = None, check: bool = True) -> Export:
    """Write a run's trained network to `output` (.onnx or .pt2); see the module docstring."""
    run, output = Path(run), Path(output)
    fmt = check_output(output)
    if not run.is_dir():
        raise LossgraphError(f"run folder {run} {'is not a folder' if run.exists() else 'does not exist'}")
    if size is not None and size < 1:
        raise LossgraphError(f"--size must be at least 1, got {size}")
    program = resolve_spec(run, spec)
    name, channels = choose(program, network)
    found = resolve_checkpoint(run, checkpoint)
    module = trained_network(program, name, found, ema)
    metadata = {
        "spec": program.name,
        "network": name + (EMA_SUFFIX if ema else ""),
        "checkpoint": found.name,
        "input": f"{INPUT}: float32 (N, {channels}, H, W)",
        "output": f"{OUTPUT}: float32 (N, {_out_channels(program, name)}, H, W)",
        "channels": channels,
        "normalisation": NORMALISATION,
        "image_size": program.spec.train.image_size,
    }
    result = export_network(module, output, channels, program.spec.train.image_size, metadata, size=size, check=check)
    result.network, result.checkpoint = name, found
    if fmt == "ONNX" and result.checked_with is None and check:
        result.notes.append("not run after writing: onnxruntime is not installed (pip install 'lossgraph[export]')")
    return result


def check_output(output: Path) -> str:
    """The format `output`'s suffix names; a LossgraphError for any other suffix."""
    fmt = SUFFIXES.get(output.suffix.lower())
    if fmt is None:
        raise LossgraphError(f"export writes {' or '.join(SUFFIXES)} files, chosen by the suffix of -o; got {output}")
    if output.is_dir():
        raise LossgraphError(f"-o {output} is a folder; name the file to write")
    return fmt


def choose(program: Any, wanted: str | None) -> tuple[str, int]:
    """(network, input channels): `wanted`, or the spec's first network that maps one image to an image."""
    signature = choose_network(program, wanted, "export", "export writes a network that maps one image to an image", "export")
    return signature.network, signature.channels


def trained_network(program: Any, name: str, found: Path, ema: bool) -> nn.Module:
    """Network `name` with checkpoint `found`'s weights (its moving average with `ema`), in eval mode."""
    nets = program.build_networks(seed=0)
    stored = stored_networks(found)
    averaged: dict[str, nn.Module] = {}
    if ema:
        if ema_name(name) not in stored:
            kept = [key[: -len(EMA_SUFFIX)] for key in stored if is_ema_name(key)]
            has = f"it holds moving averages of {', '.join(kept)} only" if kept else "the run kept no moving average (ema: in its spec)"
            raise LossgraphError(f"--ema: checkpoint {found} has no moving average of {name}; {has}")
        averaged = {ema_name(name): copy.deepcopy(nets[name])}
    state = load_checkpoint(found, {**nets, **averaged}, ignore=[key for key in stored if is_ema_name(key)])
    written_by = state.get("spec")
    if written_by is not None and written_by != program.name:
        raise LossgraphError(f"checkpoint {found} was written by spec '{written_by}', not '{program.name}'")
    return (averaged[ema_name(name)] if ema else nets[name]).cpu().float().eval()


def export_network(network: nn.Module, output: str | os.PathLike, channels: int, image_size: int,
                   metadata: dict[str, Any] | None = None, size: int | None = None, check: bool = True) -> Export:
    """Write `network` (one image batch in, one out) to `output`, .onnx or .pt2, with `metadata`
    and the sizes it takes (Note [Sizes the file takes]); `size` fixes the side."""
    output = Path(output)
    fmt = check_output(output)
    network = network.cpu().float().eval()
    module = Images(network)
    notes: list[str] = []
    rule = None if size is not None else size_rule(network, channels, image_size)
    side = size or image_size
    program = None
    if rule is not None:
        side = max(rule.smallest, image_size - image_size % rule.multiple)
        try:
            program = _export_program(Images(network, rule.multiple), channels, side, dynamic=True)
        except Exception as error:  # noqa: BLE001 - any failure of a dynamic trace falls back to a fixed size
            notes.append(f"a fixed {image_size}x{image_size} input: the export with free sides failed "
                         f"({type(error).__name__}: {str(error).splitlines()[0][:200]})")
            rule, side = None, image_size
    elif size is None:
        notes.append(f"a fixed {image_size}x{image_size} input: the network does not map every side of some "
                     f"multiple to itself (not fully convolutional)")
    if program is None:
        program = _export_program(module, channels, side, dynamic=False)
    recorded = {**(metadata or {}), "channels": channels, "image_size": image_size, "dynamic_size": rule is not None,
                "size_multiple": rule.multiple if rule else None, "min_size": rule.smallest if rule else None,
                "size": None if rule else side, "lossgraph_version": _version()}
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "ONNX":
        _write_onnx(program, output, recorded)
    else:
        torch.export.save(program, output, extra_files={METADATA_FILE: json.dumps(recorded)})
    result = Export(network=recorded.get("network", ""), checkpoint=None, path=output, metadata=recorded, notes=notes)
    if check:
        sides = [side] if rule is None else sorted({side, side + rule.multiple})
        result.difference, result.checked_with = _check(output, fmt, module, channels, sides)
    return result


def size_rule(network: nn.Module, channels: int, image_size: int) -> SizeRule | None:
    """The sides `network` maps to themselves (Note [Sizes the file takes]), or None: translate's
    `size_multiple`, and the smallest multiple it takes, tried on a meta copy (nothing computed)."""
    multiple = size_multiple(network, channels, image_size)
    if multiple is None:
        return None
    probe = copy.deepcopy(network).to("meta")
    sides = (k * multiple for k in range(1, image_size // multiple + 1))
    return SizeRule(multiple, next((side for side in sides if fits(probe, channels, side, side, "meta")), image_size))


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """What `export` recorded in the file at `path`, as values (numbers and booleans, not strings)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return {entry.key[len("lossgraph."):]: _parse(entry.value) for entry in model.metadata_props
                if entry.key.startswith("lossgraph.")}
    extra = {METADATA_FILE: ""}
    torch.export.load(path, extra_files=extra)
    return json.loads(extra[METADATA_FILE])


def _export_program(module: nn.Module, channels: int, side: int, dynamic: bool) -> torch.export.ExportedProgram:
    example = torch.zeros(2, channels, side, side)  # a batch of 2: torch.export specialises a size-1 dimension
    auto = torch.export.Dim.AUTO
    shapes = {INPUT: {0: auto, 2: auto, 3: auto} if dynamic else {0: auto}}
    with torch.no_grad(), _quiet():
        return torch.export.export(module, (example,), dynamic_shapes=shapes)


def _write_onnx(program: torch.export.ExportedProgram, output: Path, metadata: dict[str, Any]) -> None:
    if importlib.util.find_spec("onnxscript") is None or importlib.util.find_spec("onnx") is None:
        raise LossgraphError("writing ONNX needs the onnx and onnxscript packages: pip install 'lossgraph[export]' "
                             "(or write a .pt2 file, which needs nothing beyond torch)")
    with _quiet():
        model = torch.onnx.export(program, input_names=[INPUT], output_names=[OUTPUT], dynamo=True, verbose=False)
    for key, value in metadata.items():
        model.model.metadata_props[f"lossgraph.{key}"] = value if isinstance(value, str) else json.dumps(value)
    model.save(str(output))


def _check(output: Path, fmt: str, module: nn.Module, channels: int, sides: list[int]) -> tuple[float | None, str | None]:
    """Run the written file on random images of each side; the largest difference from `module`."""
    if fmt == "ONNX":
        if importlib.util.find_spec("onnxruntime") is None:
            return None, None
        import onnxruntime

        session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        run, checked_with = (lambda images: torch.from_numpy(session.run(None, {INPUT: images.numpy()})[0])), "onnxruntime"
    else:
        loaded = torch.export.load(output).module()
        run, checked_with = loaded, "torch.export.load"
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    with torch.no_grad():
        for side in sides:
            images = torch.rand(3, channels, side, side, generator=generator) * 2 - 1
            wanted, got = module(images), run(images)
            if tuple(got.shape) != tuple(wanted.shape):
                raise LossgraphError(f"the exported {output} returned {tuple(got.shape)} where the network returns "
                                     f"{tuple(wanted.shape)}")
            worst = max(worst, float((got - wanted).abs().max()))
    return worst, checked_with


def _out_channels(program: Any, name: str) -> int:
    return program.network_configs[name].out_channels


def _parse(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _version() -> str:
    from lossgraph import __version__

    return __version__


@contextmanager
def _quiet() -> Iterator[None]:
    """torch.onnx and torch.export log warnings about packages and ops this export never uses
    (torchvision's), and deprecations inside torch itself: nothing a user of export can act on."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export", "torch.fx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


__all__ = ["Export", "SizeRule", "export", "export_network", "read_metadata", "size_rule"]
