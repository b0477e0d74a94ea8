"""The FID Inception network: Inception v3 as the FID papers froze it, loaded from a weights file.

FID and KID as papers report them compare the 2048 pooled features of one particular network: the
Inception v3 graph of 2015-12-05 that the original TensorFlow FID code used, converted to PyTorch
as `pt_inception-2015-12-05-6726825d.pth` (pytorch-fid) or, the same tensors,
`weights-inception-2015-12-05-6726825d.pth` (torch-fidelity, torchmetrics' default). lossgraph
never downloads it: `train.fid_weights` (or `--fid-weights`) names the file, whose tensors are
keyed like torchvision's Inception v3 (`Mixed_5b.branch1x1.conv.weight`, `fc.weight`, ...).

It differs from torchvision's Inception v3 where the TensorFlow graph does (Note [FID Inception]):
the average pools inside the blocks leave the zero padding out of the average, the last block
pools by maximum, the classifier has 1008 outputs, and batch norm's epsilon is 0.001.

Images go in as lossgraph's (N, C, H, W) in [-1, 1] and are prepared as the torch-fidelity
extractor prepares the 8-bit images it reads: quantised to 0..255 as a saved PNG would be
(`images.to_uint8`'s rounding), resized to 299x299 with TensorFlow 1's bilinear rule
(`resize_like_tensorflow`), then mapped by (v - 128) / 128. A one-channel image is repeated
to three.

Note [FID Inception]: the TensorFlow graph is what the published FIDs were computed with, so
these details decide whether a number is comparable: the count-exclusive average pools, the max
pool of the last block, and the resize that samples at `i * in / out` without half-pixel centres.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lossgraph.language.errors import LossgraphError

SIZE = 299
FEATURES = 2048
CLASSES = 1008
STANDARD_SHA256_PREFIX = "6726825d"  # the converted 2015-12-05 weights, as both packages name the file


class Conv(nn.Module):
    """Convolution without bias, batch norm (epsilon 0.001), ReLU: each named as the weights file names it."""

    def __init__(self, inputs: int, outputs: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(inputs, outputs, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(outputs, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _average_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)  # Note [FID Inception]


class BlockA(nn.Module):
    """35x35: 1x1, 5x5, double 3x3 and pooled branches (Mixed_5b to 5d)."""

    def __init__(self, inputs: int, pooled: int):
        super().__init__()
        self.branch1x1 = Conv(inputs, 64, 1)
        self.branch5x5_1 = Conv(inputs, 48, 1)
        self.branch5x5_2 = Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = Conv(inputs, 64, 1)
        self.branch3x3dbl_2 = Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Conv(96, 96, 3, padding=1)
        self.branch_pool = Conv(inputs, pooled, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x),
                          self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_average_pool(x))], 1)


class ReductionB(nn.Module):
    """35x35 to 17x17 (Mixed_6a)."""

    def __init__(self, inputs: int):
        super().__init__()
        self.branch3x3 = Conv(inputs, 384, 3, stride=2)
        self.branch3x3dbl_1 = Conv(inputs, 64, 1)
        self.branch3x3dbl_2 = Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Conv(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch3x3(x),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, stride=2)], 1)


class BlockC(nn.Module):
    """17x17 with factorised 7x7 convolutions of `width` channels (Mixed_6b to 6e)."""

    def __init__(self, inputs: int, width: int):
        super().__init__()
        self.branch1x1 = Conv(inputs, 192, 1)
        self.branch7x7_1 = Conv(inputs, width, 1)
        self.branch7x7_2 = Conv(width, width, (1, 7), padding=(0, 3))
        self.branch7x7_3 = Conv(width, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = Conv(inputs, width, 1)
        self.branch7x7dbl_2 = Conv(width, width, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = Conv(width, width, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = Conv(width, width, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = Conv(width, 192, (1, 7), padding=(0, 3))
        self.branch_pool = Conv(inputs, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = layer(double)
        return torch.cat([self.branch1x1(x), single, double, self.branch_pool(_average_pool(x))], 1)


class ReductionD(nn.Module):
    """17x17 to 8x8 (Mixed_7a)."""

    def __init__(self, inputs: int):
        super().__init__()
        self.branch3x3_1 = Conv(inputs, 192, 1)
        self.branch3x3_2 = Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = Conv(inputs, 192, 1)
        self.branch7x7x3_2 = Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = Conv(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = x
        for layer in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            seven = layer(seven)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), seven, F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    """8x8 with split 1x3 / 3x1 branches (Mixed_7b; Mixed_7c pools by maximum, Note [FID Inception])."""

    def __init__(self, inputs: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = Conv(inputs, 320, 1)
        self.branch3x3_1 = Conv(inputs, 384, 1)
        self.branch3x3_2a = Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = Conv(inputs, 448, 1)
        self.branch3x3dbl_2 = Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = Conv(inputs, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _average_pool(x)
        return torch.cat([self.branch1x1(x),
                          self.branch3x3_2a(single), self.branch3x3_2b(single),
                          self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double),
                          self.branch_pool(pooled)], 1)


class FIDInception(nn.Module):
    """Images in [-1, 1] -> the (N, 2048) pooled features FID and KID compare (module docstring)."""

    num_features = FEATURES

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = Conv(80, 192, 3)
        self.Mixed_5b = BlockA(192, 32)
        self.Mixed_5c = BlockA(256, 64)
        self.Mixed_5d = BlockA(288, 64)
        self.Mixed_6a = ReductionB(288)
        self.Mixed_6b = BlockC(768, 128)
        self.Mixed_6c = BlockC(768, 160)
        self.Mixed_6d = BlockC(768, 160)
        self.Mixed_6e = BlockC(768, 192)
        self.Mixed_7a = ReductionD(768)
        self.Mixed_7b = BlockE(1280, max_pool=False)
        self.Mixed_7c = BlockE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURES, CLASSES)  # in the weights file; the features are taken before it

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = prepare(images)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))


def prepare(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images -> the network's 299x299 input, as the module docstring says."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    pixels = ((images.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round()  # the 8-bit values a PNG would hold
    return (resize_like_tensorflow(pixels, SIZE) - 128.0) / 128.0


def resize_like_tensorflow(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W) to (N, C, size, size) by TensorFlow 1's rule (align_corners
    off): output pixel i samples the input at i * in / out, between its floor and the next pixel,
    the last pixel repeated at the edge. Unlike torch's bilinear, no half-pixel centres."""

    def axis(length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        where = torch.arange(size, dtype=torch.float32, device=images.device) * torch.tensor(length / size, dtype=torch.float32)
        low = where.floor().long().clamp(max=length - 1)
        return low, (low + 1).clamp(max=length - 1), where - low.float()

    top, bottom, down = axis(images.shape[2])
    left, right, across = axis(images.shape[3])
    rows = images[:, :, top] + (images[:, :, bottom] - images[:, :, top]) * down.view(1, 1, -1, 1)
    return rows[..., left] + (rows[..., right] - rows[..., left]) * across.view(1, 1, 1, -1)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_inception(path: str | Path, where: str = "train.fid_weights") -> FIDInception:
    """The FID Inception network with the tensors of the weights file at `path`, in eval mode and
    without gradients; a `LossgraphError` naming the file (and `where` it was given) when it is
    missing or does not hold these tensors."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise LossgraphError(f"{where}: the FID Inception weights file {path} does not exist "
                             f"(pt_inception-2015-12-05-6726825d.pth; lossgraph never downloads it)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: a weights file is data
    except Exception as error:  # a truncated file, a pickle with code, not a torch file: all "cannot read"
        # the type too: an unpickler's KeyError reads as a bare number (`174812789`)
        raise LossgraphError(f"{where}: cannot read {path} as a weights file ({type(error).__name__}: {error}); "
                             f"expected pt_inception-2015-12-05-6726825d.pth as torch.save wrote it") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    network = FIDInception()
    if not isinstance(state, dict):
        raise LossgraphError(f"{where}: {path} holds a {type(state).__name__}, not a dict of tensors")
    expected = network.state_dict()
    # batch norm's step counters are bookkeeping, absent from older conversions
    missing = [key for key in expected if key not in state and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in state if key not in expected]
    wrong = [f"{key} {tuple(state[key].shape)} (expected {tuple(expected[key].shape)})" for key in expected
             if key in state and isinstance(state[key], torch.Tensor) and state[key].shape != expected[key].shape]
    if missing or unexpected or wrong:
        parts = [f"{label}: {', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''} ({len(keys)})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise LossgraphError(f"{where}: {path} is not the FID Inception v3 weights file; " + "; ".join(parts))
    network.load_state_dict({key: value for key, value in state.items()}, strict=False)
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network
