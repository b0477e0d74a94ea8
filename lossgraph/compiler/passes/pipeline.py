"""The one pipeline that runs the passes: it reads as the table of contents of compilation.

Each pass is a function `Graph -> PassResult(graph, changed, notes)`; each step's comment says
why it is there. CSE needs no pass: interned IR merges equal subexpressions as they are built.
Every pass is idempotent and leaves each player's loss as it was (tests/numeric/test_passes.py).
"""

from __future__ import annotations

from typing import Callable, Mapping

from lossgraph.compiler.graph import Graph
from lossgraph.compiler.passes.domains import check_domains
from lossgraph.compiler.passes.gradients import check_updates
from lossgraph.compiler.passes.lower import lower
from lossgraph.compiler.passes.result import PassResult
from lossgraph.compiler.passes.sigmoids import insert_sigmoids
from lossgraph.compiler.passes.stabilize import stabilize
from lossgraph.language.spec import Spec


def passes(output_ranges: Mapping | None = None) -> list[tuple[str, Callable[[Graph], PassResult]]]:
    """The passes from the objective as written to the objective as it runs, in order."""
    return [
        ("check_domains", lambda graph: check_domains(graph, output_ranges)),  # log of a positive value, ce of a label (domains.py)
        ("insert_sigmoids", insert_sigmoids),  # a probability network's D(v) is sigmoid(logits)
        ("stabilize", stabilize),              # log(sigmoid(l)) -> -softplus(-l), and tidying
        ("check_updates", check_updates),      # every player's loss reaches its own parameters
    ]


def run_pipeline(spec: Spec, output_ranges: Mapping | None = None) -> tuple[Graph, Graph, list[str]]:
    """(objective as written, objective as it will run, notes from every pass).
    `output_ranges`: what each network's module can return, where its arch declares it."""
    written = lower(spec)                      # formulas -> IR; lets inlined; names checked
    notes: list[str] = []
    graph = written
    for name, step in passes(output_ranges):
        result = step(graph)
        graph = result.graph
        notes.extend(f"{name}: {note}" for note in result.notes)
    return written, graph, notes
