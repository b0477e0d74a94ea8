"""The FID Inception network (lossgraph/train/metrics/inception.py): its layout against the numbers
published for Inception v3, TensorFlow 1's resize, the input mapping, and loading a weights file.

The real weights file is not downloaded here (nor anywhere by lossgraph); a file of random
tensors in its layout stands for it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lossgraph.language.errors import LossgraphError
from lossgraph.train.metrics import inception
from lossgraph.train.metrics.inception import FIDInception, load_inception, prepare, resize_like_tensorflow


@pytest.fixture(scope="module")
def network():
    return FIDInception()


def test_the_layout_is_inception_v3_with_1008_classes_and_no_auxiliary_head(network):
    # torchvision documents 27,161,264 parameters for Inception v3 (1000 classes, with the auxiliary
    # head of 3,326,696); the FID network has no auxiliary head and 1008 classes (+ 8 x 2049)
    assert sum(parameter.numel() for parameter in network.parameters()) == 27_161_264 - 3_326_696 + 8 * 2049
    keys = list(network.state_dict())
    assert keys[:3] == ["Conv2d_1a_3x3.conv.weight", "Conv2d_1a_3x3.bn.weight", "Conv2d_1a_3x3.bn.bias"]
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    assert "Mixed_7c.branch3x3dbl_3b.bn.running_var" in keys and not any("AuxLogits" in key for key in keys)
    assert all(module.eps == 0.001 for module in network.modules() if isinstance(module, torch.nn.BatchNorm2d))


def test_tensorflow_resize_samples_at_i_times_in_over_out_without_half_pixel_centres():
    ramp = torch.tensor([0.0, 10.0, 20.0]).view(1, 1, 1, 3).expand(1, 1, 3, 3)
    out = resize_like_tensorflow(ramp, 6)
    # positions 0, 0.5, 1, 1.5, 2, 2.5 -> the last repeats the edge pixel
    assert out[0, 0, 0].tolist() == pytest.approx([0.0, 5.0, 10.0, 15.0, 20.0, 20.0])
    assert torch.equal(out[0, 0, :, 0], torch.zeros(6))
    torch_bilinear = F.interpolate(ramp, size=(6, 6), mode="bilinear", align_corners=False)
    assert not torch.allclose(out, torch_bilinear)  # torch samples at half-pixel centres
    down = resize_like_tensorflow(torch.arange(16.0).view(1, 1, 4, 4), 2)
    assert down[0, 0].tolist() == [[0.0, 2.0], [8.0, 10.0]]  # positions 0 and 2: exact pixels
    same = torch.rand(2, 3, 5, 5)
    assert torch.equal(resize_like_tensorflow(same, 5), same)


def test_images_are_quantised_as_a_png_then_mapped_by_v_minus_128_over_128():
    images = torch.tensor([-1.0, 0.0, 1.0, 0.5001]).view(1, 1, 2, 2)
    prepared = prepare(images)
    assert prepared.shape == (1, 3, 299, 299)  # one channel repeated to three
    corners = prepared[0, 0, [0, 0, 298, 298], [0, 298, 0, 298]]
    # 8-bit values 0, 128, 255, 191 (0.5001 rounds like to_uint8); the last row and column repeat
    assert corners.tolist() == pytest.approx([-1.0, 0.0, 127 / 128, (191 - 128) / 128])


def random_weights(network: FIDInception, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in network.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue  # older conversions leave the counters out
        random = torch.rand(value.shape, generator=generator, dtype=value.dtype) if value.is_floating_point() else value
        state[key] = random + 0.5 if key.endswith("running_var") else random * 0.1
    return state


def test_a_weights_file_loads_into_the_network(tmp_path, network):
    state = random_weights(network)
    path = tmp_path / "pt_inception.pth"
    torch.save(state, path)
    loaded = load_inception(path)
    assert not loaded.training and not any(parameter.requires_grad for parameter in loaded.parameters())
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in state.items())
    with torch.no_grad():
        features = loaded(torch.rand(1, 3, 16, 16) * 2 - 1)
    assert features.shape == (1, 2048) and torch.isfinite(features).all()
    assert not inception.sha256(path).startswith(inception.STANDARD_SHA256_PREFIX)


def test_a_missing_or_wrong_weights_file_is_an_error_naming_it(tmp_path, network):
    with pytest.raises(LossgraphError, match="nothere.pth does not exist.*never downloads"):
        load_inception(tmp_path / "nothere.pth")
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3)}, other)
    with pytest.raises(LossgraphError, match=r"other.pth is not the FID Inception v3 weights file; missing: .*\(\d+\); unexpected: conv.weight"):
        load_inception(other)
    state = random_weights(network)
    state["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's ImageNet classifier, not the FID network's
    shaped = tmp_path / "imagenet.pth"
    torch.save(state, shaped)
    with pytest.raises(LossgraphError, match=r"wrong shape: fc.weight \(1000, 2048\) \(expected \(1008, 2048\)\)"):
        load_inception(shaped)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(LossgraphError, match="cannot read .*garbage.pth as a weights file"):
        load_inception(garbage)
    # a text file: the unpickler's KeyError is a bare number, so the message names its type and the file expected
    (tmp_path / "notes.pth").write_text("junk\n")
    with pytest.raises(LossgraphError, match=r"cannot read .*notes.pth as a weights file \(KeyError: \d+\); "
                                             r"expected pt_inception-2015-12-05-6726825d.pth"):
        load_inception(tmp_path / "notes.pth")
