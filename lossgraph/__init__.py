"""lossgraph: GAN objectives written as math in YAML, compiled into PyTorch training steps.

    import lossgraph
    program = lossgraph.compile("specs/cyclegan.yaml")   # or a built-in spec's name
    nets = program.build_networks(seed=0)
    losses = program.losses(nets, program.example_inputs(batch_size=4))

The spec layer (`load`) imports no torch; `compile` does. `register_arch` adds a user's own
network architecture (see nets/registry.py and README "Your own networks").
"""

from lossgraph.language.errors import CodegenError, DataError, FormulaError, LossgraphError, Origin, SpecError
from lossgraph.language.spec import Spec, load, loads

__version__ = "0.1.0"


def compile(spec, overrides=()):  # noqa: A001 - the public name docs/architecture.md promises
    """A spec (object, path or built-in name) compiled into a `Program`; `overrides` as in `load`
    (`["train.steps=2000", "players.G.minimize.cycle.weight=5"]`). Archs the spec names that
    are not registered are looked up among installed packages' `lossgraph.archs` entry points."""
    from lossgraph.language.plugins import load_archs
    from lossgraph.program import Program, compile_spec

    if isinstance(spec, Program):
        return spec
    spec = load(spec, overrides)
    load_archs(spec)
    return compile_spec(spec)


def register_arch(name, builder, *, role=None, output_range=None, replace=False):
    """Make `name` an arch specs can use (`networks: {D: {arch: name}}`), built by
    `builder(in_channels=, out_channels=, image_size=, **options)`, which returns an `nn.Module`.

    `role`: "generator", "discriminator", "encoder", "classifier" or None; it sets the default
    `out_channels` (a generator's: the image's channels; other roles: 1; None: the builder's own
    default, else the spec must give `out_channels:`). `output_range`: the (low, high) interval
    every output lies in, e.g. (-1.0, 1.0) after tanh, or None. A taken name raises `ValueError`
    unless `replace=True` (built-in names never); the same builder again is a no-op. Returns the
    registry entry (`nets.Arch`).
    """
    from lossgraph.nets import register_arch as register

    return register(name, builder, role=role, output_range=output_range, replace=replace)


__all__ = [
    "CodegenError",
    "DataError",
    "FormulaError",
    "LossgraphError",
    "Origin",
    "Spec",
    "SpecError",
    "compile",
    "load",
    "loads",
    "register_arch",
]
