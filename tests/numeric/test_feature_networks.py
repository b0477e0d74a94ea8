"""Feature networks (lossgraph/train/metrics/features.py): a judge's features are the input of its
last linear layer, else its output; in eval mode, without gradients, the caller's mode kept."""

from __future__ import annotations

import torch
from torch import nn

import lossgraph.nets as architectures
from lossgraph.train.metrics.features import CHUNK, JudgeFeatures


def test_a_classifier_judge_gives_its_pooled_features():
    judge = architectures.build("classifier", in_channels=3, out_channels=4, image_size=16, classes=4, width=4, depth=2)
    images = torch.rand(CHUNK + 3, 3, 16, 16) * 2 - 1  # more than one chunk
    features = JudgeFeatures("C", judge)
    judge.train()
    found = features(images)
    assert judge.training  # the caller's mode comes back
    judge.eval()
    with torch.no_grad():
        pooled = judge.features(judge.combine(images))
    assert found.dtype == torch.float64 and not found.requires_grad
    assert torch.allclose(found, pooled.double(), atol=1e-6)
    assert features.size == pooled.shape[1] and "last linear layer" in features.description


class Redraw(nn.Module):
    """A judge that redraws an image (CoGAN's J): no linear layer, an image out."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, image):
        return torch.tanh(self.conv(image))


def test_a_judge_without_a_linear_layer_gives_its_output_flattened():
    judge = Redraw()
    images = torch.rand(4, 3, 5, 5)
    features = JudgeFeatures("J", judge)
    with torch.no_grad():
        expected = judge(images).flatten(1).double()
    assert torch.equal(features(images), expected) and features.size == 2 * 5 * 5
    assert "output, flattened" in features.description
