"""Tests for the architectures the survey's methods add to `nets` (BicycleGAN's encoder, CoGAN's
DCGAN pair, PixelDA's classifier, StarGAN's two-head discriminator, UNIT's encoder and decoder),
for weight sharing between networks, and for the existing generators taking the extra inputs
those methods give them. Every net here is small, so each test is fast."""

from __future__ import annotations

import pytest
import torch

import lossgraph.nets as nets

BATCH = 2


@pytest.fixture(autouse=True)
def one_thread():
    """Run on one thread: these nets are tiny, and on cores shared with other jobs OpenMP's
    worker threads spin waiting for each other, which made single tests take over a second."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _image(size: int, channels: int = 3) -> torch.Tensor:
    return torch.randn(BATCH, channels, size, size)


# arch -> (build keyword arguments, the call's inputs at an image size, expected output shapes).
CASES = {
    "encoder": (
        {"in_channels": 3, "out_channels": 1},
        lambda size: [_image(size)],
        lambda size: [(BATCH, 8), (BATCH, 8)],
    ),
    "dcgan_generator": (
        {"in_channels": 100, "out_channels": 3},
        lambda size: [torch.randn(BATCH, 100)],
        lambda size: [(BATCH, 3, size, size)],
    ),
    "dcgan_discriminator": (
        {"in_channels": 3, "out_channels": 1},
        lambda size: [_image(size)],
        lambda size: [(BATCH, 1)],
    ),
    "classifier": (
        {"in_channels": 3, "out_channels": 1, "classes": 10},
        lambda size: [_image(size)],
        lambda size: [(BATCH, 10)],
    ),
    "stargan_discriminator": (
        {"in_channels": 3, "out_channels": 1, "classes": 5},
        lambda size: [_image(size)],
        lambda size: [(BATCH, 1, size // 8, size // 8), (BATCH, 5)],
    ),
    "unit_encoder": (
        {"in_channels": 3, "out_channels": 1},
        lambda size: [_image(size)],
        lambda size: [(BATCH, 64, size // 4, size // 4)],
    ),
    "unit_decoder": (
        {"in_channels": 64, "out_channels": 3},
        lambda size: [torch.randn(BATCH, 64, size // 4, size // 4)],
        lambda size: [(BATCH, 3, size, size)],
    ),
}
NEW_ARCHS = list(CASES)
ROLES = {
    "encoder": "encoder",
    "dcgan_generator": "generator",
    "dcgan_discriminator": "discriminator",
    "classifier": "classifier",
    "stargan_discriminator": "discriminator",
    "unit_encoder": "encoder",
    "unit_decoder": "generator",
}


def _build(arch: str, image_size: int = 32, **options: object) -> torch.nn.Module:
    arguments = dict(CASES[arch][0], **options)
    return nets.build(arch, image_size=image_size, **arguments)


def _outputs(module: torch.nn.Module, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    output = module(*inputs)
    return output if isinstance(output, tuple) else (output,)


def test_new_archs_are_registered_with_their_roles():
    for arch, role in ROLES.items():
        assert nets.ARCHS[arch].role == role
        assert nets.ARCHS[arch].doc


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_output_shapes(arch, image_size):
    torch.manual_seed(0)
    _, inputs, shapes = CASES[arch]
    module = _build(arch, image_size=image_size)
    outputs = _outputs(module, *inputs(image_size))
    assert [tuple(output.shape) for output in outputs] == shapes(image_size)


@pytest.mark.parametrize("arch", ["dcgan_generator", "dcgan_discriminator", "stargan_discriminator"])
def test_sizes_beyond_the_defaults(arch):
    _, inputs, shapes = CASES[arch]
    module = _build(arch, image_size=128)
    assert [tuple(output.shape) for output in _outputs(module, *inputs(128))] == shapes(128)


def test_encoder_returns_mu_then_logvar():
    torch.manual_seed(0)
    encoder = _build("encoder", latent=4)
    with torch.no_grad():
        encoder.logvar.weight.zero_()
        encoder.logvar.bias.fill_(5.0)
    mu, logvar = encoder(_image(32))
    assert torch.equal(logvar, torch.full((BATCH, 4), 5.0))
    assert not torch.equal(mu, logvar)


def test_encoder_takes_extras_like_the_other_networks():
    encoder = nets.build("encoder", in_channels=3 + 4, out_channels=1, image_size=32, num_classes=4)
    mu, logvar = encoder(_image(32), torch.tensor([0, 3]))
    assert mu.shape == logvar.shape == (BATCH, 8)


def test_stargan_discriminator_returns_src_map_then_class_logits():
    torch.manual_seed(0)
    discriminator = _build("stargan_discriminator", image_size=64, layers=2, classes=4)
    src, cls = discriminator(_image(64))
    assert src.shape == (BATCH, 1, 16, 16)
    assert cls.shape == (BATCH, 4)


@pytest.mark.parametrize("arch", ["dcgan_discriminator", "classifier", "stargan_discriminator"])
def test_discriminators_and_classifier_return_logits(arch):
    torch.manual_seed(0)
    module = _build(arch, norm="none")
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(20)
    values = torch.cat([output.flatten() for output in _outputs(module, _image(32))])
    assert values.min() < 0 or values.max() > 1


@pytest.mark.parametrize("arch", ["dcgan_generator", "unit_decoder"])
def test_generators_output_images_in_range(arch):
    torch.manual_seed(0)
    _, inputs, _ = CASES[arch]
    output = _build(arch)(*[10 * tensor for tensor in inputs(32)])
    assert output.min() >= -1 and output.max() <= 1


def test_dcgan_generator_takes_only_a_latent_vector():
    torch.manual_seed(0)
    generator = nets.build("dcgan_generator", in_channels=8, out_channels=3, image_size=32)
    assert generator(torch.randn(4, 8)).shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match="no images"):
        generator(torch.randn(4, 8, 1, 1))
    with pytest.raises(ValueError, match=r"16 features.*in_channels=8"):
        generator(torch.randn(4, 8), torch.randn(4, 8))


def test_dcgan_generator_concatenates_vectors_and_one_hot_labels():
    torch.manual_seed(0)
    generator = nets.build("dcgan_generator", in_channels=8 + 5, out_channels=1, image_size=64, num_classes=5)
    assert generator(torch.randn(3, 8), torch.tensor([0, 4, 2])).shape == (3, 1, 64, 64)
    combined = nets.combine_vectors([torch.randn(3, 8), torch.tensor([0, 4, 2])], num_classes=5)
    assert torch.equal(combined[:, 8:], torch.nn.functional.one_hot(torch.tensor([0, 4, 2]), 5).float())
    with pytest.raises(ValueError, match="num_classes"):
        nets.combine_vectors([torch.tensor([0, 1])])
    with pytest.raises(ValueError, match="batch size"):
        nets.combine_vectors([torch.randn(3, 8), torch.randn(2, 8)])


def test_dcgan_sizes_that_are_not_powers_of_two_start_from_a_larger_map():
    generator = nets.build("dcgan_generator", in_channels=8, out_channels=3, image_size=24)
    assert generator.trunk[0].kernel_size == (6, 6)
    assert generator(torch.randn(2, 8)).shape == (2, 3, 24, 24)
    discriminator = nets.build("dcgan_discriminator", in_channels=3, out_channels=1, image_size=24)
    assert discriminator(_image(24)).shape == (BATCH, 1)


def test_unit_encoder_latent_channels_and_decoder_input_contract():
    torch.manual_seed(0)
    encoder = _build("unit_encoder", latent_channels=8)
    code = encoder(_image(32))
    assert code.shape == (BATCH, 8, 8, 8)
    # The compiler builds the decoder with in_channels taken from the code it is applied to.
    decoder = nets.build("unit_decoder", in_channels=code.shape[1], out_channels=3, image_size=32)
    assert decoder(code + torch.randn_like(code)).shape == (BATCH, 3, 32, 32)
    with pytest.raises(ValueError, match=r"latent map of 8x8 pixels"):
        decoder(torch.randn(BATCH, 8, 32, 32))
    deeper = nets.build("unit_decoder", in_channels=128, out_channels=3, image_size=64, downsample=3)
    assert deeper(torch.randn(BATCH, 128, 8, 8)).shape == (BATCH, 3, 64, 64)


def test_unit_encoder_then_decoder_with_defaults_needs_no_projection():
    encoder = _build("unit_encoder")
    decoder = _build("unit_decoder")
    for module in (encoder, decoder):
        assert not any(isinstance(layer, torch.nn.Conv2d) and layer.kernel_size == (1, 1) for layer in module.modules())
    assert decoder(encoder(_image(32))).shape == (BATCH, 3, 32, 32)


@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_build_and_run_on_the_meta_device(arch):
    # The compiler shape-checks a spec by building every network on meta tensors.
    _, inputs, shapes = CASES[arch]
    with torch.device("meta"):
        module = _build(arch)
        outputs = _outputs(module, *[tensor.to("meta") for tensor in inputs(32)])
    assert [tuple(output.shape) for output in outputs] == shapes(32)


@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_build_is_deterministic_under_manual_seed(arch):
    torch.manual_seed(7)
    first = _build(arch).state_dict()
    torch.manual_seed(7)
    second = _build(arch).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    torch.manual_seed(8)
    third = _build(arch).state_dict()
    assert not all(torch.equal(first[key], third[key]) for key in first)
    _, inputs, _ = CASES[arch]
    torch.manual_seed(3)
    first_outputs = _outputs(_build(arch).eval(), *inputs(32))
    torch.manual_seed(3)
    second_outputs = _outputs(_build(arch).eval(), *inputs(32))
    assert all(torch.equal(a, b) for a, b in zip(first_outputs, second_outputs))


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_gradients_reach_every_parameter(arch, norm):
    torch.manual_seed(0)
    _, inputs, _ = CASES[arch]
    module = _build(arch, norm=norm)
    total = sum((output * torch.randn_like(output)).sum() for output in _outputs(module, *inputs(32)))
    total.backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_unknown_option_names_the_valid_options(arch):
    with pytest.raises(ValueError, match=f"unknown option 'widht' for arch '{arch}'") as error:
        _build(arch, widht=8)
    assert "did you mean 'width'?" in str(error.value)


@pytest.mark.parametrize(
    "arch, options, message",
    [
        ("encoder", {"latent": 0}, "latent must be a positive integer"),
        ("encoder", {"out_channels": 3}, "out_channels=3 conflicts with latent=8"),
        ("encoder", {"depth": 6}, "below one pixel"),
        ("classifier", {"out_channels": 4, "classes": 10}, "conflicts with classes=10"),
        ("classifier", {"norm": "group"}, "norm must be one of"),
        ("dcgan_generator", {"image_size": 6}, "image_size=6 must be even and at least 8"),
        ("dcgan_discriminator", {"image_size": 7}, "must be even"),
        ("stargan_discriminator", {"layers": 6}, "below one pixel"),
        ("stargan_discriminator", {"classes": 0}, "classes must be a positive integer"),
        ("unit_encoder", {"downsample": 5}, "downsample=5"),
        ("unit_encoder", {"shared_blocks": 0}, "shared_blocks must be a positive integer"),
        ("unit_encoder", {"out_channels": 3}, "conflicts with latent_channels=64"),
        ("unit_decoder", {"image_size": 30}, "downsample=2 needs image_size divisible by 2"),
    ],
)
def test_bad_option_values(arch, options, message):
    with pytest.raises(ValueError, match=message):
        _build(arch, **options)


def test_out_channels_equal_to_the_option_is_accepted():
    assert _build("classifier", out_channels=10, classes=10)(_image(32)).shape == (BATCH, 10)
    assert _build("encoder", out_channels=8)(_image(32))[0].shape == (BATCH, 8)


def test_mixes_batch_follows_the_defaults():
    assert nets.mixes_batch(_build("dcgan_generator"))
    assert nets.mixes_batch(_build("dcgan_discriminator"))
    assert nets.mixes_batch(_build("classifier"))
    assert not nets.mixes_batch(_build("stargan_discriminator"))
    assert not nets.mixes_batch(_build("encoder"))
    assert not nets.mixes_batch(_build("unit_encoder"))


# The existing generators take the inputs BicycleGAN, StarGAN and PixelDA give them.


def test_unet_takes_a_broadcast_latent_code():
    torch.manual_seed(0)
    generator = nets.build("unet", in_channels=3 + 8, out_channels=3, image_size=32)
    x = _image(32)
    first = generator(x, torch.randn(BATCH, 8))
    second = generator(x, torch.randn(BATCH, 8))
    assert first.shape == (BATCH, 3, 32, 32)
    assert not torch.allclose(first, second)  # the code reaches the output


def test_resnet_generator_takes_a_domain_label():
    torch.manual_seed(0)
    generator = nets.build(
        "resnet_generator", in_channels=3 + 5, out_channels=3, image_size=32, num_classes=5
    )
    x = _image(32)
    first = generator(x, torch.tensor([0, 1]))
    second = generator(x, torch.tensor([4, 2]))
    assert first.shape == (BATCH, 3, 32, 32)
    assert not torch.allclose(first, second)


def test_resnet_generator_takes_uniform_noise():
    torch.manual_seed(0)
    generator = nets.build("resnet_generator", in_channels=3 + 10, out_channels=3, image_size=32)
    noise = torch.rand(BATCH, 10) * 2 - 1
    assert generator(_image(32), noise).shape == (BATCH, 3, 32, 32)


# Weight sharing


def _unique_parameters(*modules: torch.nn.Module) -> list[torch.nn.Parameter]:
    unique = {id(parameter): parameter for module in modules for parameter in module.parameters()}
    return list(unique.values())


def test_shareable_parts_per_arch():
    expected = {
        "dcgan_generator": ["trunk", "head"],
        "dcgan_discriminator": ["stem", "trunk"],
        "unit_encoder": ["stem", "shared"],
        "unit_decoder": ["shared", "own"],
        "encoder": [],
        "classifier": [],
        "stargan_discriminator": [],
    }
    for arch, parts in expected.items():
        module = _build(arch)
        assert nets.shareable_parts(module) == parts
        assert all(isinstance(getattr(module, part), torch.nn.Module) for part in parts)
    assert nets.shareable_parts(nets.build("unet", in_channels=3, out_channels=3, image_size=32)) == []


def test_cogan_generators_share_all_but_their_last_layer():
    torch.manual_seed(0)
    first, second = _build("dcgan_generator"), _build("dcgan_generator")
    nets.share(second, first, ["trunk"])
    assert second.trunk is first.trunk and second.head is not first.head
    own = len(list(first.parameters()))
    assert len({id(parameter) for parameter in _unique_parameters(first, second)}) == own + len(
        list(second.head.parameters())
    )
    # The shared weights appear in both state dicts, under the same keys.
    assert first.state_dict()["trunk.0.weight"].data_ptr() == second.state_dict()["trunk.0.weight"].data_ptr()


def test_stepping_the_union_of_parameters_updates_shared_layers_once():
    torch.manual_seed(0)
    first, second = _build("dcgan_discriminator"), _build("dcgan_discriminator")
    nets.share(second, first, ["trunk"])
    parameters = _unique_parameters(first, second)
    all_parameters = list(first.parameters()) + list(second.parameters())
    shared_count = len(list(first.trunk.parameters()))
    assert len({id(parameter) for parameter in parameters}) == len(all_parameters) - shared_count
    before = {name: value.clone() for name, value in first.trunk.state_dict().items()}
    optimizer = torch.optim.SGD(parameters, lr=0.1)
    loss = first(_image(32)).mean() + second(_image(32)).mean()
    loss.backward()
    gradient = first.trunk[0].weight.grad.clone()
    optimizer.step()
    for name, value in first.trunk.state_dict().items():
        assert torch.equal(value, second.trunk.state_dict()[name])
    # One SGD step of the summed gradient: a parameter listed twice would move twice as far.
    torch.testing.assert_close(first.trunk[0].weight, before["0.weight"] - 0.1 * gradient)
    assert not torch.equal(first.trunk[0].weight, before["0.weight"])
    # After the step both networks still compute with identical shared weights.
    features = torch.randn(BATCH, 32, 16, 16)
    assert torch.equal(first.trunk(features), second.trunk(features))


def test_shared_gradients_add_up_from_both_networks():
    torch.manual_seed(0)
    first, second = _build("dcgan_generator", norm="none"), _build("dcgan_generator", norm="none")
    nets.share(second, first, ["trunk"])
    code = torch.randn(BATCH, 100)
    first(code).sum().backward()
    gradient_from_first = first.trunk[0].weight.grad.clone()
    second(code).sum().backward()
    assert not torch.equal(first.trunk[0].weight.grad, gradient_from_first)
    assert second.trunk[0].weight.grad is first.trunk[0].weight.grad


def test_unit_encoders_and_decoders_share_their_latent_side():
    torch.manual_seed(0)
    first_encoder, second_encoder = _build("unit_encoder"), _build("unit_encoder")
    first_decoder, second_decoder = _build("unit_decoder"), _build("unit_decoder")
    nets.share(second_encoder, first_encoder, ["shared"])
    nets.share(second_decoder, first_decoder, ["shared"])
    assert second_encoder.shared is first_encoder.shared and second_encoder.stem is not first_encoder.stem
    assert second_decoder.shared is first_decoder.shared and second_decoder.own is not first_decoder.own
    translated = second_decoder(first_encoder(_image(32)))
    assert translated.shape == (BATCH, 3, 32, 32)


def test_unknown_part_lists_the_shareable_parts():
    first, second = _build("dcgan_generator"), _build("dcgan_generator")
    message = r"unknown part 'body' of the target DCGANGenerator; its shareable parts: trunk, head"
    with pytest.raises(ValueError, match=message):
        nets.share(second, first, ["body"])
    classifier = _build("classifier")
    with pytest.raises(ValueError, match="shareable parts: none"):
        nets.share(classifier, _build("classifier"), ["features"])


def test_parts_of_different_shapes_are_not_shared():
    first = _build("dcgan_generator", width=8)
    second = _build("dcgan_generator", width=16)
    message = r"cannot share part 'trunk': trunk\.0\.weight has shape \(100, 32, 4, 4\) in the source and \(100, 64"
    with pytest.raises(ValueError, match=message):
        nets.share(second, first, ["trunk"])
    # Nothing was shared: all parts are checked before any is replaced.
    with pytest.raises(ValueError):
        nets.share(second, first, ["head", "trunk"])
    assert second.head is not first.head


def test_parts_with_different_layers_are_not_shared():
    with pytest.raises(ValueError, match="their layers differ: the source has BatchNorm2d"):
        nets.share(_build("dcgan_generator", norm="none"), _build("dcgan_generator"), ["trunk"])


def test_share_argument_errors():
    first = _build("dcgan_generator")
    with pytest.raises(ValueError, match="parts must be a list of part names"):
        nets.share(_build("dcgan_generator"), first, "trunk")
    with pytest.raises(ValueError, match="itself"):
        nets.share(first, first, ["trunk"])


@pytest.mark.parametrize("condition", ["label", "vector"])
def test_resnet_generator_sees_its_condition(condition):
    """A broadcast condition must change the output (Note [Conditions survive the stem]):
    with instance norm right after the reflection-padded stem it would be subtracted exactly."""
    from lossgraph.nets.resnet import ResnetGenerator

    torch.manual_seed(0)
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    if condition == "label":
        options = {"in_channels": 3 + 4, "num_classes": 4}
        first, second = torch.tensor([0, 1]), torch.tensor([2, 3])
    else:
        options = {"in_channels": 3 + 5}
        first, second = torch.randn(2, 5), torch.randn(2, 5)
    generator = ResnetGenerator(out_channels=3, image_size=16, **options)
    assert not (generator(image, first) - generator(image, second)).abs().lt(1e-6).all()
    # asked for, the normed stem is back, and with it the blindness the note explains
    blind = ResnetGenerator(out_channels=3, image_size=16, stem_norm=True, **options)
    torch.testing.assert_close(blind(image, first), blind(image, second), rtol=1e-5, atol=1e-5)


def test_resnet_generator_without_condition_keeps_the_normed_stem():
    from lossgraph.nets.resnet import ResnetGenerator

    norms = [type(layer).__name__ for layer in ResnetGenerator(3, 3, 16).layers[:4]]
    assert norms[:3] == ["ReflectionPad2d", "Conv2d", "InstanceNorm2d"]


def test_dcgan_first_layer_is_the_transposed_convolution_it_replaces():
    from torch.nn import functional

    from lossgraph.nets.dcgan import CodeToMap

    layer = CodeToMap(8, 16, kernel_size=4, bias=True)
    code = torch.randn(5, 8)
    reference = functional.conv_transpose2d(code[:, :, None, None], layer.weight, layer.bias)
    torch.testing.assert_close(layer(code), reference)
    assert set(layer.state_dict()) == {"weight", "bias"}
