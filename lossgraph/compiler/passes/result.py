"""What every pass returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from lossgraph.compiler.graph import Graph


@dataclass(frozen=True)
class PassResult:
    graph: Graph
    changed: bool                                          # the graph differs from the pass's input
    notes: tuple[str, ...] = field(default_factory=tuple)  # what fired where, for `lossgraph check`
