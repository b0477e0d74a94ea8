"""Feature networks: what `fid`, `kid` and `diversity` compare images through.

A feature network maps images (N, C, H, W) in [-1, 1] to features (N, d) in float64. Which one a
run uses is the spec's choice (`program.features`, compiler/distributions.py), made once, so every
number of a run is on one network, and named wherever the numbers go (`describe`):

    inception  the FID Inception network from the weights file `train.fid_weights` names
               (inception.py): the 2048 features published FIDs and KIDs are computed on
    judge C    a judge the run fitted before training: the input of its last linear layer (a
               classifier's pooled features) where it has one, else its output, flattened. Numbers
               on a judge's features compare runs of one spec and judge, never published FIDs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from lossgraph.language.errors import LossgraphError
from lossgraph.train.metrics import inception

CHUNK = 16  # images per call of the feature network: Inception runs at 299x299


class FeatureNetwork:
    """Images -> (N, d) float64 features, in chunks, in eval mode, without gradients."""

    name: str  # `inception` or `judge C`: what summary.json and the notes call it
    description: str  # one line for the run's notes and summary

    def __init__(self, module: nn.Module, name: str, description: str):
        self.module = module
        self.name = name
        self.description = description
        self.size: int | None = None  # features per image, known after the first call

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                parts = [self.features(images[start:start + CHUNK]) for start in range(0, images.shape[0], CHUNK)]
        finally:
            self.module.train(training)
        features = torch.cat(parts).double()
        self.size = features.shape[1]
        return features

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.module(images).flatten(1)


class JudgeFeatures(FeatureNetwork):
    """A judge's features: the input of its last `nn.Linear` where its forward uses one, else its
    output (every head's, flattened and side by side)."""

    def __init__(self, judge: str, module: nn.Module):
        linear = [layer for layer in module.modules() if isinstance(layer, nn.Linear)]
        self.layer = linear[-1] if linear else None
        where = "the input of its last linear layer" if self.layer is not None else "its output, flattened"
        super().__init__(module, f"judge {judge}", f"judge {judge}'s features ({where})")

    def features(self, images: torch.Tensor) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        hook = None
        if self.layer is not None:
            hook = self.layer.register_forward_pre_hook(lambda layer, args: seen.append(args[0]))
        try:
            output = self.module(images)
        finally:
            if hook is not None:
                hook.remove()
        if seen:
            return seen[-1].flatten(1)
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        return torch.cat([value.flatten(1) for value in outputs], dim=1)


def weights_path(program: Any, given: str) -> Path:
    """The weights file `train.fid_weights` names: as given when absolute, else relative to the
    spec file's folder (as `dataset.folder` is), else to the current one."""
    path = Path(given).expanduser()
    spec_path = getattr(program.spec, "path", None)
    if not path.is_absolute() and spec_path and Path(spec_path).is_file():
        path = Path(spec_path).parent / path
    return path


def check_available(program: Any) -> None:
    """Before anything is built: the package the distance metrics need, and the weights file.
    A `LossgraphError` saying what to install or give."""
    kinds = {metric.kind for metric in program.distributions}
    if kinds & {"fid", "kid"}:
        try:
            import torchmetrics  # noqa: F401 - only whether it imports
        except ImportError:
            raise LossgraphError("fid and kid are computed with torchmetrics, which is not installed: "
                                 "pip install 'lossgraph[metrics]' (or pip install torchmetrics)") from None
    choice = program.features
    if choice is not None and choice.kind == "inception":
        path = weights_path(program, choice.weights)
        if not path.is_file():
            raise LossgraphError(f"train.fid_weights: the FID Inception weights file {path} does not exist "
                                 f"(pt_inception-2015-12-05-6726825d.pth; lossgraph never downloads it)")


def open_features(program: Any, nets: Mapping[str, nn.Module], device: torch.device) -> FeatureNetwork:
    """The feature network `program.features` chooses, on `device`: the Inception network loaded
    from its weights file, or the judge's module among `nets` (the run's own, fitted or restored)."""
    choice = program.features
    if choice.kind == "judge":
        return JudgeFeatures(choice.judge, nets[choice.judge])
    path = weights_path(program, choice.weights)
    network = inception.load_inception(path).to(device)
    digest = inception.sha256(path)
    standard = digest.startswith(inception.STANDARD_SHA256_PREFIX)
    note = "" if standard else "; not the standard file, so not comparable with published FIDs"
    return FeatureNetwork(network, "inception",
                          f"FID Inception v3 (2015-12-05) from {path} (sha256 {digest[:12]}{note})")
