"""IR to readable, straight-line PyTorch source: the module `lossgraph emit` prints.

    names.py      what values are called (Note [Generated names]), GENERATED_NAMES
    render.py     an IR node as a Python expression, parenthesised by binding power
    lines.py      lines with their spec origins and no_grad blocks
    writer.py     one function: prologue, named values, straight-line computation
    update.py     an optimizer step's lines (Note [Cut leaves])
    iteration.py  the one training function, following the phase plan
    release.py    names a backward no longer needs, deleted before it
    functions.py  losses, samples, evaluate
    module.py     the whole module; a judge's module
"""

from lossgraph.compiler.codegen.module import emit_judge_module, emit_module
from lossgraph.compiler.codegen.names import GENERATED_NAMES, Namespace

__all__ = ["GENERATED_NAMES", "Namespace", "emit_judge_module", "emit_module"]
