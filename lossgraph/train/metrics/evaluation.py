"""A run's distribution metrics: `fid`, `kid`, `diversity` and `cluster_accuracy` over the
whole held-out set.

At each evaluation, `DistributionEvaluation.measure` goes through the held-out set in batches
(`RunOptions.eval_count` samples each), computes the images the generated `distribution_images`
and `diversity_images` give (random variables drawn under the evaluation's own seed), passes each
through the feature network once, and compares the sets (distances.py); `cluster_accuracy`
gathers its two labels over the set and needs no feature network. Real images whose
formula applies no network and draws nothing (`y`, a held-out extra) have the same features at
every evaluation: they are computed at the first and kept.

The held-out set is read once, when the run starts, and kept on the CPU: a batch at a time goes to
the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from lossgraph.compiler.graph import DistributionMetric
from lossgraph.compiler.ops import Ops
from lossgraph.language.errors import LossgraphError
from lossgraph.train.device import to_device
from lossgraph.train.metrics import distances
from lossgraph.train.metrics.features import FeatureNetwork, open_features

CHANGING = (Ops.APPLY, Ops.FROZEN, Ops.HEAD, Ops.RANDOM)


def _fixed(image: Any) -> bool:
    """Whether an image formula has one value for the held-out set whatever the networks are."""
    return not any(node.op in CHANGING for node in image.walk())


@dataclass
class DistributionEvaluation:
    program: Any
    metrics: tuple[DistributionMetric, ...]
    held_out: dict[str, torch.Tensor]  # the whole held-out set, on the CPU
    count: int
    features: FeatureNetwork | None  # None where every metric compares labels
    device: torch.device
    batch: int
    fixed: dict[Any, torch.Tensor] = field(default_factory=dict)  # features of fixed real images, by formula

    @classmethod
    def open(cls, program: Any, dataset: Any, nets: Mapping[str, nn.Module], device: torch.device,
             batch: int) -> DistributionEvaluation:
        """The evaluation of `program.distributions` on `dataset`'s whole held-out set (its
        `held_out_size` where it says, else `batch` samples), with the feature network
        `program.features` chooses from `nets`."""
        size = int(getattr(dataset, "held_out_size", batch))
        held_out = {key: value.cpu() if isinstance(value, torch.Tensor) else value
                    for key, value in dataset.held_out(max(size, 1)).items()}
        count = next((value.shape[0] for value in held_out.values() if isinstance(value, torch.Tensor) and value.dim() > 0), 0)
        paired = [metric.name for metric in program.distributions if metric.kind in ("fid", "kid")]
        if paired and count < 2:
            raise LossgraphError(f"{', '.join(paired)}: compare sets of images, but the held-out set has {count} "
                                 f"sample{'s' if count != 1 else ''}; give it at least 2 (dataset.test_size, or testA/testB images)")
        features = open_features(program, nets, device) if program.features is not None else None
        return cls(program, tuple(program.distributions), held_out, count, features, device, batch)

    def describe(self) -> str:
        names = ", ".join(metric.name for metric in self.metrics)
        if self.features is None:
            return f"{names} on the {self.count} held-out samples"
        return f"{names} on the {self.count} held-out samples compare {self.features.description}"

    def record(self) -> dict[str, Any]:
        """What summary.json says of these metrics."""
        if self.features is None:
            return {"metrics": [metric.name for metric in self.metrics], "held_out_samples": self.count}
        return {"metrics": [metric.name for metric in self.metrics], "network": self.features.name,
                "description": self.features.description, "features_per_image": self.features.size,
                "held_out_samples": self.count}

    def batches(self):
        for start in range(0, self.count, self.batch):
            yield to_device({key: value[start:start + self.batch] if isinstance(value, torch.Tensor) and value.dim() > 0
                             else value for key, value in self.held_out.items()}, self.device)

    def measure(self, nets: Mapping[str, nn.Module]) -> dict[str, float]:
        """Every distribution metric of `nets` (the networks evaluation shows), by name."""
        paired = [metric for metric in self.metrics if metric.kind in ("fid", "kid")]
        varied = [metric for metric in self.metrics if metric.kind == "diversity"]
        labelled = [metric for metric in self.metrics if metric.kind == "cluster_accuracy"]
        labels: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {metric.name: [] for metric in labelled}
        generated: dict[str, list[torch.Tensor]] = {metric.name: [] for metric in paired}
        real: dict[str, list[torch.Tensor]] = {metric.name: [] for metric in paired}
        spread = {metric.name: distances.Diversity() for metric in varied}
        for inputs in self.batches():
            if paired or labelled:
                images = self.program.distribution_images(nets, inputs)
                for metric in labelled:
                    labels[metric.name].append((images[f"{metric.name}/clusters"].cpu(), images[f"{metric.name}/classes"].cpu()))
                seen: dict[int, torch.Tensor] = {}  # one feature pass per image batch, shared by metrics

                def features(image: torch.Tensor) -> torch.Tensor:
                    if id(image) not in seen:
                        seen[id(image)] = self.features(image)
                    return seen[id(image)]

                for metric in paired:
                    generated[metric.name].append(features(images[f"{metric.name}/generated"]))
                    if metric.images[1] not in self.fixed:
                        real[metric.name].append(features(images[f"{metric.name}/real"]))
            if varied:
                draws: dict[str, list[torch.Tensor]] = {metric.name: [] for metric in varied}
                for index in range(max(metric.draws for metric in varied)):
                    outputs = self.program.diversity_images(nets, inputs)
                    for metric in varied:
                        if index < metric.draws:
                            draws[metric.name].append(self.features(outputs[f"{metric.name}/outputs"]))
                for metric in varied:
                    spread[metric.name].add(draws[metric.name])
        results: dict[str, float] = {}
        for metric in paired:
            reference = self.fixed.get(metric.images[1])
            if reference is None:
                reference = torch.cat(real[metric.name])
                if _fixed(metric.images[1]):
                    self.fixed[metric.images[1]] = reference
            compare = distances.frechet_distance if metric.kind == "fid" else distances.kernel_distance
            results[metric.name] = compare(reference, torch.cat(generated[metric.name]))
        results.update({name: accumulated.value() for name, accumulated in spread.items()})
        for name, pairs in labels.items():
            results[name] = distances.cluster_accuracy(torch.cat([c for c, _ in pairs]), torch.cat([k for _, k in pairs]))
        return {metric.name: results[metric.name] for metric in self.metrics}
