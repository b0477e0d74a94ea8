"""lossgraph: GAN objectives written as math in YAML, compiled into PyTorch training steps.

    import lossgraph
    program = lossgraph.compile("specs/cyclegan.yaml")   # or a built-in spec's name
    nets = program.build_networks(seed=0)
    losses = program.losses(nets, program.example_inputs(batch_size=4))

The spec layer (`load`) imports no torch; `compile` does.
"""

from .errors import CodegenError, DataError, FormulaError, LossgraphError, Origin, SpecError
from .spec import Spec, load, loads

__version__ = "0.1.0"


def compile(spec, overrides=()):  # noqa: A001 - the public name DESIGN.md promises
    """A spec (object, path or built-in name) compiled into a `Program`; `overrides` as in `load`
    (`["train.steps=2000", "players.G.minimize.cycle.weight=5"]`)."""
    from .program import compile_spec

    return compile_spec(load(spec, overrides) if overrides else spec)


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
]
