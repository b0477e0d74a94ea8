"""The compiler's passes, and the one pipeline that runs them.

Each pass is a function `Graph -> PassResult(graph, changed, notes)`. The pipeline reads as the
table of contents of compilation; each step's comment says why it is there. CSE needs no pass:
interned IR merges equal subexpressions as they are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lossgraph.compiler.graph import Graph
from lossgraph.language.spec import Spec


@dataclass(frozen=True)
class PassResult:
    graph: Graph
    changed: bool
    notes: tuple[str, ...] = field(default_factory=tuple)


def run_pipeline(spec: Spec, output_ranges=None) -> tuple[Graph, Graph, list[str]]:
    """(objective as written, objective as it will run, notes from every pass).
    `output_ranges`: what each network's module can return, where its arch declares it."""
    from lossgraph.compiler.passes.domains import check_domains
    from lossgraph.compiler.passes.gradients import check_updates
    from lossgraph.compiler.passes.lower import lower
    from lossgraph.compiler.passes.sigmoids import insert_sigmoids
    from lossgraph.compiler.passes.stabilize import stabilize

    written = lower(spec)                    # formulas -> IR; lets inlined; names checked
    check_domains(written, output_ranges)    # log of a positive value, ce of a label, ... (domains.py)
    notes: list[str] = []
    graph = written
    for step in (
        insert_sigmoids,                     # a probability network's D(v) is sigmoid(logits)
        stabilize,                           # log(sigmoid(l)) -> -softplus(-l), and tidying
        check_updates,                       # every player's loss reaches its own parameters
    ):
        result = step(graph)
        graph = result.graph
        notes.extend(f"{step.__name__}: {note}" for note in result.notes)
    return written, graph, notes
