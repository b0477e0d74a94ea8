"""Users' own architectures in the registry (nets/registry.py): `register_arch`, its checks, the
default out_channels, output ranges, and archs offered by installed packages' entry points."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import lossgraph
import lossgraph.nets as nets
from lossgraph.nets import registry


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    """Each test's registrations vanish after it (the built-ins stay)."""
    monkeypatch.setattr(registry, "ARCHS", dict(registry.ARCHS))
    monkeypatch.setattr(nets, "ARCHS", registry.ARCHS)
    yield


class BatchNormPatchGAN(nn.Module):
    """A small PatchGAN-like discriminator with batch norm."""

    def __init__(self, in_channels, out_channels=1, image_size=32, *, width=8):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, out_channels, 3, 1, 1),
        )

    def forward(self, image):
        return self.layers(image)


def ones_generator(in_channels, out_channels, image_size, width=4):
    """A generator whose weights are all ones, so a test can see lossgraph keeps them."""
    module = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1), nn.Conv2d(width, out_channels, 3, 1, 1), nn.Tanh())
    for parameter in module.parameters():
        nn.init.ones_(parameter)
    return module


def test_a_registered_arch_is_built_with_its_options():
    arch = lossgraph.register_arch("bn_patchgan", BatchNormPatchGAN, role="discriminator")
    assert nets.ARCHS["bn_patchgan"] is arch and arch.role == "discriminator" and not arch.builtin
    assert nets.options_of("bn_patchgan") == {"width": 8}
    assert arch.doc == "A small PatchGAN-like discriminator with batch norm."
    module = nets.build("bn_patchgan", in_channels=6, out_channels=1, image_size=16, width=4)
    assert module(torch.zeros(2, 6, 16, 16)).shape == (2, 1, 4, 4)
    assert nets.mixes_batch(module)
    with pytest.raises(ValueError, match="unknown option 'widht' for arch 'bn_patchgan'.*did you mean 'width'"):
        nets.build("bn_patchgan", in_channels=3, out_channels=1, image_size=16, widht=4)


def test_a_function_builder_takes_positional_or_keyword_options_and_keeps_its_own_weights():
    lossgraph.register_arch("ones", ones_generator, role="generator")
    assert nets.options_of("ones") == {"width": 4}
    module = nets.build("ones", in_channels=3, out_channels=3, image_size=8, width=2)
    assert all(bool((parameter == 1).all()) for parameter in module.parameters())  # no init_weights


def test_required_and_open_options():
    def required(in_channels, out_channels, image_size, *, width):
        return nn.Conv2d(in_channels, out_channels, 1)

    def open_ended(in_channels, out_channels, image_size, **options):
        return nn.Conv2d(in_channels, out_channels, 1, bias=options.get("bias", True))

    lossgraph.register_arch("required", required)
    lossgraph.register_arch("open_ended", open_ended)
    assert nets.options_of("required") == {"width": nets.REQUIRED}
    with pytest.raises(ValueError, match="arch 'required' needs option 'width'"):
        nets.build("required", in_channels=3, out_channels=1, image_size=8)
    assert nets.accepts_option("open_ended", "anything") and not nets.accepts_option("required", "anything")
    assert nets.build("open_ended", in_channels=3, out_channels=1, image_size=8, bias=False).bias is None


def test_a_builder_that_fails_or_returns_no_module_is_a_value_or_type_error():
    def crashes(in_channels, out_channels, image_size):
        raise RuntimeError("boom")

    lossgraph.register_arch("crashes", crashes)
    lossgraph.register_arch("nothing", lambda in_channels, out_channels, image_size: None)
    with pytest.raises(ValueError, match=r"builder of arch 'crashes' .* raised RuntimeError at .*test_register_arch.py:\d+: boom"):
        nets.build("crashes", in_channels=3, out_channels=1, image_size=8)
    with pytest.raises(TypeError, match="builder of arch 'nothing' .* returned NoneType, not a torch.nn.Module"):
        nets.build("nothing", in_channels=3, out_channels=1, image_size=8)


@pytest.mark.parametrize(("arguments", "message"), [
    (("my-net", BatchNormPatchGAN), "an arch name must be an identifier"),
    (("3net", BatchNormPatchGAN), "an arch name must be an identifier"),
    (("net", "BatchNormPatchGAN"), "the builder of arch 'net' must be callable"),
    (("net", lambda in_channels, out_channels: None), "must accept in_channels=, out_channels=, image_size= as keywords; it lacks image_size"),
])
def test_bad_registrations_say_what_is_expected(arguments, message):
    with pytest.raises(ValueError, match=message):
        lossgraph.register_arch(*arguments)


def test_bad_role_and_output_range():
    with pytest.raises(ValueError, match="role of arch 'net' must be one of generator, discriminator, encoder, classifier or None, got 'critic'"):
        lossgraph.register_arch("net", BatchNormPatchGAN, role="critic")
    for bad in [(1.0,), (1.0, -1.0), ("a", "b"), 5]:
        with pytest.raises(ValueError, match="output_range of arch 'net'"):
            lossgraph.register_arch("net", BatchNormPatchGAN, output_range=bad)
    assert lossgraph.register_arch("net", ones_generator, output_range=[-1, 1]).output_range == (-1.0, 1.0)


def test_registering_twice():
    first = lossgraph.register_arch("twice", BatchNormPatchGAN, role="discriminator")
    assert lossgraph.register_arch("twice", BatchNormPatchGAN, role="discriminator") is first  # importing again is harmless
    with pytest.raises(ValueError, match=r"arch 'twice' is registered already \(by .*BatchNormPatchGAN\); pass replace=True"):
        lossgraph.register_arch("twice", ones_generator)
    assert lossgraph.register_arch("twice", ones_generator, replace=True).builder is ones_generator
    with pytest.raises(ValueError, match="'patchgan' is a built-in arch and cannot be replaced"):
        lossgraph.register_arch("patchgan", BatchNormPatchGAN, replace=True)


def test_default_out_channels():
    def no_default(in_channels, out_channels, image_size):
        return nn.Conv2d(in_channels, out_channels, 1)

    lossgraph.register_arch("as_generator", no_default, role="generator")
    lossgraph.register_arch("as_encoder", no_default, role="encoder")
    lossgraph.register_arch("own_default", BatchNormPatchGAN)  # out_channels=1 in its signature
    lossgraph.register_arch("no_default", no_default)
    assert nets.default_out_channels("as_generator", 1) == 1
    assert nets.default_out_channels("as_generator", 3) == 3
    assert nets.default_out_channels("as_encoder", 3) == 1
    assert nets.default_out_channels("own_default", 3) == 1
    assert nets.default_out_channels("no_default", 3) is None
    assert nets.default_out_channels("unet", 3) == 3 and nets.default_out_channels("patchgan", 3) == 1


UNBOUNDED_GENERATORS = {"lptn"}  # a tanh'd low band plus the input's masked high bands (nets/lptn.py)


def test_the_built_in_generators_end_in_tanh_as_their_output_range_says():
    for name, arch in nets.ARCHS.items():
        bounded = arch.role == "generator" and name not in UNBOUNDED_GENERATORS
        assert arch.output_range == ((-1.0, 1.0) if bounded else None), name
        if not bounded:
            continue
        image = name != "dcgan_generator"
        in_channels = {"unit_decoder": 64, "munit_decoder": 64 + 8}.get(name, 3 if image else 8)
        style = name == "starganv2_generator"  # G(x, s): an image and a style code (N, 64)
        module = nets.build(name, in_channels=in_channels + 64 * style, out_channels=3, image_size=16).eval()
        tanh_outputs = []
        for submodule in module.modules():
            if isinstance(submodule, nn.Tanh):
                submodule.register_forward_hook(lambda _module, _inputs, output: tanh_outputs.append(output))
        side = 16 // 4 if name in ("unit_decoder", "munit_decoder") else 16
        inputs = [torch.randn(2, in_channels, side, side) if image else torch.randn(2, in_channels)]
        if name == "munit_decoder":  # a content map and a style vector
            inputs = [torch.randn(2, 64, side, side), torch.randn(2, 8)]
        if style:
            inputs.append(torch.randn(2, 64))
        output = module(*inputs)
        assert any(output is seen for seen in tanh_outputs), f"{name}'s output is not a tanh's"


# -- entry points ------------------------------------------------------------------------------

def fake_entry_point(name, value, package="fancy-nets", load=None):
    module, _, attribute = value.partition(":")

    def default_load():
        return getattr(__import__(module, fromlist=[attribute]), attribute)

    return SimpleNamespace(name=name, value=value, group=nets.ENTRY_POINT_GROUP, dist=SimpleNamespace(name=package),
                           load=load or default_load)


PLUGIN = '''
from torch import nn

def build(in_channels, out_channels, image_size, *, width=4):
    """A plug-in generator."""
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1), nn.Conv2d(width, out_channels, 3, 1, 1), nn.Tanh())

build.lossgraph_role = "generator"
build.lossgraph_output_range = (-1, 1)
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A package module `fancy_plugin_nets` on the path, offered as arch `fancy` by an entry point."""
    (tmp_path / "fancy_plugin_nets.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fancy_plugin_nets", raising=False)
    listed = []

    def entry_points():
        listed.append(True)
        return [fake_entry_point("fancy", "fancy_plugin_nets:build"), fake_entry_point("other", "missing_module:build")]

    monkeypatch.setattr(registry, "arch_entry_points", entry_points)
    yield listed
    sys.modules.pop("fancy_plugin_nets", None)


def test_an_entry_point_registers_its_arch_when_a_name_is_missing(plugin):
    assert "fancy" not in nets.ARCHS and "fancy_plugin_nets" not in sys.modules
    assert nets.find_arch("patchgan") is nets.ARCHS["patchgan"] and not plugin  # registered names never list them
    arch = nets.find_arch("fancy")
    assert arch is nets.ARCHS["fancy"] and arch.role == "generator" and arch.output_range == (-1.0, 1.0)
    assert arch.source == "entry point 'fancy = fancy_plugin_nets:build' of package fancy-nets"
    assert nets.options_of("fancy") == {"width": 4}
    assert nets.find_arch("nowhere") is None
    module = nets.build("fancy", in_channels=3, out_channels=3, image_size=8)
    assert module(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_a_broken_entry_point_names_the_package_and_the_entry_point(plugin):
    with pytest.raises(nets.ArchLoadError, match=r"arch 'other': cannot load entry point 'other = missing_module:build' "
                                                 r"of package fancy-nets \(group lossgraph.archs\): ModuleNotFoundError"):
        nets.find_arch("other")
    assert "other" not in nets.ARCHS


def test_an_entry_point_whose_object_is_no_builder(monkeypatch):
    monkeypatch.setattr(registry, "arch_entry_points", lambda: [fake_entry_point("odd", "odd:thing", load=lambda: 42)])
    with pytest.raises(nets.ArchLoadError, match="builder of arch 'odd' must be callable.*from entry point 'odd = odd:thing' of package fancy-nets"):
        nets.find_arch("odd")


def test_two_packages_offering_one_name(monkeypatch):
    monkeypatch.setattr(registry, "arch_entry_points", lambda: [fake_entry_point("twin", "a:b", "pkg-a"),
                                                                fake_entry_point("twin", "c:d", "pkg-b")])
    with pytest.raises(nets.ArchLoadError, match=r"arch 'twin' is offered by several .*pkg-a \(a:b\), pkg-b \(c:d\)"):
        nets.find_arch("twin")


def test_the_real_entry_point_listing_reads_the_group():
    assert all(entry_point.group == "lossgraph.archs" for entry_point in registry.arch_entry_points())
