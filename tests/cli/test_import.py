"""A user's own networks from the command line: `--import MODULE` for every command, the run
folder's `imports.json`, resume and translate with and without it, entry points, and errors."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

import lossgraph.compiler.shape_check
import lossgraph.nets as nets
from lossgraph.cli import main
from lossgraph.nets import registry
from tests.conftest import ROOT

MY_NETS = '''\
"""My own networks: a PatchGAN-like discriminator with batch norm and a small generator."""
import torch
from torch import nn

import lossgraph


class BatchNormPatchGAN(nn.Module):
    """Stride-2 convolutions with batch norm, then a map of logits."""

    def __init__(self, in_channels, out_channels=1, image_size=32, *, width=8):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, out_channels, 3, 1, 1),
        )

    def forward(self, *images):
        return self.layers(torch.cat(images, dim=1))


def small_generator(in_channels, out_channels, image_size, width=8):
    """Two convolutions and tanh."""
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1), nn.ReLU(),
                         nn.Conv2d(width, out_channels, 3, 1, 1), nn.Tanh())


class RGBOnly(nn.Module):
    """A discriminator that ignores in_channels: three input channels, always."""

    def __init__(self, in_channels, out_channels, image_size):
        super().__init__()
        self.conv = nn.Conv2d(3, out_channels, 3, 1, 1)

    def forward(self, *images):
        return self.conv(torch.cat(images, dim=1))


lossgraph.register_arch("bn_patchgan", BatchNormPatchGAN, role="discriminator")
lossgraph.register_arch("small_generator", small_generator, role="generator", output_range=(-1.0, 1.0))
lossgraph.register_arch("rgb_only", RGBOnly, role="discriminator")
lossgraph.register_arch("no_role", small_generator)
'''

SPEC = """\
name: mine
data: {x: image, y: image}
dataset: {builtin: shapes, pairing: unpaired, size: 64, test_size: 4}
networks:
  G: {arch: small_generator, width: 4}
  D: {arch: bn_patchgan, width: 4}
let:
  fake_y: G(x)
players:
  D:
    networks: [D]
    minimize:
      adv: E[(D(y) - 1)^2] + E[D(fake_y)^2]
  G:
    networks: [G]
    minimize:
      adv: E[(D(fake_y) - 1)^2]
      l1: {weight: 10, expr: "E[l1(fake_y - x)]"}
schedule: [D, G]
train: {steps: 3, batch_size: 2, image_size: 8, log_every: 1, sample_every: 1000, checkpoint_every: 3, eval_every: 1000}
samples: [x, fake_y]
"""

RUN = ["--no-progress", "--device", "cpu", "--no-tensorboard"]


@pytest.fixture
def user(tmp_path, monkeypatch):
    """The current directory holds `my_nets.py` and `mine.yaml`; registrations and the imported
    module are forgotten after the test."""
    (tmp_path / "my_nets.py").write_text(MY_NETS)
    (tmp_path / "mine.yaml").write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(registry, "ARCHS", dict(registry.ARCHS))
    monkeypatch.setattr(nets, "ARCHS", registry.ARCHS)
    monkeypatch.setattr(registry, "arch_entry_points", lambda: [])
    for name in ("my_nets", "broken_nets"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield tmp_path
    for name in ("my_nets", "broken_nets"):
        sys.modules.pop(name, None)


def forget_imports(monkeypatch):
    """A new command in the same process: nothing imported, nothing registered."""
    monkeypatch.setattr(registry, "ARCHS", {name: arch for name, arch in registry.ARCHS.items() if arch.builtin})
    monkeypatch.setattr(nets, "ARCHS", registry.ARCHS)
    sys.modules.pop("my_nets", None)


def test_check_emit_show_and_graph_with_my_networks(user, capsys):
    assert main(["check", "mine.yaml"]) == 2
    assert "unknown arch 'small_generator'" in capsys.readouterr().err
    assert main(["check", "--import", "my_nets", "mine.yaml"]) == 0
    assert re.search(r"networks D: bn_patchgan 3 -> \(1, \d+, \d+\), G: small_generator 3 -> \(3, \d+, \d+\)", capsys.readouterr().out)
    assert nets.ARCHS["bn_patchgan"].source == "--import my_nets"
    assert main(["emit", "mine.yaml", "--import", "my_nets"]) == 0
    code = capsys.readouterr().out
    assert 'D = nets["D"]' in code
    assert main(["show", "mine.yaml", "--import", "my_nets"]) == 0
    assert "adv = 𝔼[(D(fake_y) - 1)²]" in capsys.readouterr().out
    assert main(["graph", "mine.yaml", "--import", "my_nets", "-o", "mine.svg"]) == 0
    assert "<svg" in (user / "mine.svg").read_text()


def test_run_resume_and_translate_with_my_networks(user, capsys, monkeypatch):
    assert main(["run", "--import", "my_nets", "mine.yaml", "--out", "run", *RUN]) == 0
    rows = list(csv.DictReader(open(user / "run" / "metrics.csv")))
    assert [row["step"] for row in rows] == ["1", "2", "3"]
    record = json.loads((user / "run" / "imports.json").read_text())
    assert record == {"imports": ["my_nets"], "archs": {"bn_patchgan": "--import my_nets", "small_generator": "--import my_nets"}}
    capsys.readouterr()

    # a later command that forgets the --import is told which one to add
    forget_imports(monkeypatch)
    assert main(["run", "mine.yaml", "--out", "run", "--resume", "--steps", "5", *RUN]) == 2
    error = capsys.readouterr().err
    assert "mine.yaml:5:13: networks.G.arch: unknown arch 'small_generator': run run was trained with it (from --import my_nets)" in error
    assert "the run was started with --import my_nets: add that to this command" in error
    assert "Traceback" not in error
    assert main(["run", "mine.yaml", "--out", "run", "--resume", "--steps", "5", "--import", "my_nets", *RUN]) == 0
    rows = list(csv.DictReader(open(user / "run" / "metrics.csv")))
    assert [row["step"] for row in rows] == ["1", "2", "3", "4", "5"]
    assert json.loads((user / "run" / "imports.json").read_text())["imports"] == ["my_nets"]

    (user / "photos").mkdir()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(user / "photos" / "a.png")
    forget_imports(monkeypatch)
    capsys.readouterr()
    assert main(["translate", "run", "--input", "photos", "--output", "out"]) == 2
    error = capsys.readouterr().err
    assert "spec.yaml" in error and "unknown arch 'small_generator'" in error and "--import my_nets" in error
    assert main(["translate", "run", "--input", "photos", "--output", "out", "--import", "my_nets"]) == 0
    assert "translated 1 images with G (" in capsys.readouterr().out
    assert (user / "out" / "a.png").is_file()
    assert main(["plot", "run", "--import", "my_nets"]) == 0


def test_a_module_whose_channels_do_not_fit_is_reported_at_the_spec_line(user, capsys):
    (user / "pairs.yaml").write_text(SPEC.replace("bn_patchgan, width: 4", "rgb_only")
                                     .replace("E[(D(y) - 1)^2] + E[D(fake_y)^2]", "E[(D(x, y) - 1)^2] + E[D(x, fake_y)^2]")
                                     .replace("E[(D(fake_y) - 1)^2]", "E[(D(x, fake_y) - 1)^2]"))
    assert main(["check", "--import", "my_nets", "pairs.yaml"]) == 2
    error = capsys.readouterr().err
    assert "pairs.yaml:13:15: players.D.minimize.adv: network 'D' fails on inputs of shape (2, 3, 8, 8), (2, 3, 8, 8)" in error
    assert "13 |       adv: E[(D(x, y) - 1)^2]" in error


def test_an_arch_without_role_or_default_out_channels_needs_them_in_the_spec(user, capsys):
    (user / "no_role.yaml").write_text(SPEC.replace("small_generator, width: 4", "no_role, width: 4"))
    assert main(["check", "--import", "my_nets", "no_role.yaml"]) == 2
    error = capsys.readouterr().err
    assert "no_role.yaml:5" in error and "out_channels" in error
    (user / "given.yaml").write_text(SPEC.replace("small_generator, width: 4", "no_role, width: 4, out_channels: 3"))
    assert main(["check", "--import", "my_nets", "given.yaml"]) == 0


@pytest.mark.parametrize(("module", "text", "expected"), [
    ("nowhere", None, "--import nowhere: no module named 'nowhere' in the current directory"),
    ("my_nets.py", None, "--import takes a module name, not a file: --import my_nets"),
    ("broken_nets", "import torch\nx = undefined_name\n",
     "--import broken_nets: importing it raised NameError ({}:2): name 'undefined_name' is not defined"),
    ("broken_nets", "import lossgraph\nlossgraph.register_arch('patchgan', print)\n",
     "--import broken_nets: importing it raised ValueError ({}:2): "),
    ("broken_nets", "import not_installed_anywhere\n",
     "--import broken_nets: importing it failed: No module named 'not_installed_anywhere' ({}:1)"),
])
def test_a_module_that_cannot_be_imported_is_a_clear_error(user, capsys, module, text, expected):
    if text is not None:
        (user / f"{module}.py").write_text(text)
    assert main(["check", "--import", module, "mine.yaml"]) == 2
    error = capsys.readouterr().err
    assert expected.format(user / f"{module}.py") in error
    assert "Traceback" not in error


def test_an_installed_package_offers_an_arch_by_entry_point(user, capsys, monkeypatch):
    (user / "fancy_pkg_nets.py").write_text(MY_NETS.replace("lossgraph.register_arch", "# lossgraph.register_arch")
                                            + "small_generator.lossgraph_role = 'generator'\n")
    entry_point = SimpleNamespace(name="fancy_generator", value="fancy_pkg_nets:small_generator", group="lossgraph.archs",
                                  dist=SimpleNamespace(name="fancy-nets"),
                                  load=lambda: __import__("fancy_pkg_nets").small_generator)
    broken = SimpleNamespace(name="broken_generator", value="gone:build", group="lossgraph.archs",
                             dist=SimpleNamespace(name="gone-nets"), load=lambda: __import__("gone"))
    monkeypatch.setattr(registry, "arch_entry_points", lambda: [entry_point, broken])
    monkeypatch.syspath_prepend(str(user))
    monkeypatch.delitem(sys.modules, "fancy_pkg_nets", raising=False)
    spec = SPEC.replace("small_generator, width: 4", "fancy_generator, width: 4").replace("bn_patchgan, width: 4", "patchgan")
    (user / "fancy.yaml").write_text(spec)
    assert main(["check", "fancy.yaml"]) == 0
    assert re.search(r"G: fancy_generator 3 -> \(3, \d+, \d+\)", capsys.readouterr().out)
    assert main(["run", "fancy.yaml", "--out", "run", *RUN]) == 0
    source = "entry point 'fancy_generator = fancy_pkg_nets:small_generator' of package fancy-nets"
    assert json.loads((user / "run" / "imports.json").read_text()) == {"imports": [], "archs": {"fancy_generator": source}}

    (user / "broken.yaml").write_text(spec.replace("fancy_generator", "broken_generator"))
    capsys.readouterr()
    assert main(["check", "broken.yaml"]) == 2
    error = capsys.readouterr().err
    assert ("broken.yaml:5:13: networks.G.arch: arch 'broken_generator': cannot load entry point "
            "'broken_generator = gone:build' of package gone-nets (group lossgraph.archs): ModuleNotFoundError") in error
    sys.modules.pop("fancy_pkg_nets", None)


def test_a_run_of_built_in_archs_writes_no_record(user):
    (user / "builtin.yaml").write_text(SPEC.replace("small_generator, width: 4", "unet, width: 4, depth: 1")
                                       .replace("bn_patchgan, width: 4", "patchgan, width: 4, layers: 1"))
    assert main(["run", "builtin.yaml", "--out", "run", "--steps", "1", *RUN]) == 0
    assert not (user / "run" / "imports.json").exists()


def _environment() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CI="1",
                PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_the_console_script_finds_a_module_in_the_current_directory(user):
    script = Path(sys.executable).parent / "lossgraph"
    if not script.is_file():
        pytest.skip("the lossgraph console script is not installed beside this Python")
    done = subprocess.run([str(script), "check", "mine.yaml", "--import", "my_nets"], cwd=user, env=_environment(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "bn_patchgan 3 -> (1, " in done.stdout


def test_every_torchrun_process_imports_the_module(user):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "lossgraph", "run", "mine.yaml", "--import", "my_nets", "--out", "run", "--steps", "2", *RUN]
    done = subprocess.run(command, cwd=user, env=_environment(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = list(csv.DictReader(open(user / "run" / "metrics.csv")))
    assert [row["step"] for row in rows] == ["1", "2"]
    assert json.loads((user / "run" / "imports.json").read_text())["imports"] == ["my_nets"]
