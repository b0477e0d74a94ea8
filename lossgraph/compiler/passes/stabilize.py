"""Apply the rewrite rules to every expression until none fires.

Note: the rules are unconditional identities (see rewrite.py), so this pass changes how a value
is computed, never what it is. Origins follow each rewrite, and a note records which rule fired
where, e.g. `rewrite.py:31 log(sigmoid(l)) -> -softplus(-l) at discogan.yaml:24:14`.
"""

from __future__ import annotations

from lossgraph.compiler.graph import Graph
from lossgraph.compiler.rewrite import (
    ALGEBRA_RULES,
    MAX_ROUNDS,
    STABLE_LOG_RULES,
    Fired,
    RuleSet,
    rewrite_once,
)
from lossgraph.compiler.passes.result import PassResult

DEFAULT_RULES = STABLE_LOG_RULES + ALGEBRA_RULES


def stabilize(graph: Graph, rule_set: RuleSet = DEFAULT_RULES) -> PassResult:
    fired: list[Fired] = []
    step = rewrite_once(rule_set, fired)
    for _ in range(MAX_ROUNDS):
        before = len(fired)
        rewritten = graph.map_exprs(step)
        if len(fired) == before:
            break
        graph = rewritten
    notes = []
    for item in fired:
        origin = graph.origins.get(item.node) or ()
        at = f" at {origin[0].file}:{origin[0].line}:{origin[0].col}" if origin else ""
        notes.append(f"{item.rule.where} {item.rule.text}{at}")
    return PassResult(graph, bool(fired), tuple(dict.fromkeys(notes)))
