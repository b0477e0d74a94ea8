"""Per-player gradient analysis: what each player's step must differentiate, and what it need not.

For a player with networks N, a node *carries the player's gradient* when some network of N is
applied on a path into it (networkx: descendants of the `params:NET` nodes) and it is on a path
into one of the player's terms that no `stop_gradient` cuts (a value only a stop_gradient reads,
StarGAN v2's second image of `ds`, carries none: it runs without autograd). Then:
- a network call that carries no gradient runs under `torch.no_grad()` in that player's step
  (the discriminator step's `G_XY(x)`);
- a call of another player's network that the gradient passes through keeps autograd for its
  input, but its own parameters get nothing: backward runs with `inputs=<the player's params>`;
- a term that carries no gradient is constant for the player: it is *dead* for the step and is
  not computed there (it still counts in `losses()`).

`check_updates` is the pass form: it fails, located, when a player's objective does not depend on
any of its networks, since its optimizer would never move.
"""

from __future__ import annotations

from dataclasses import dataclass

from lossgraph.language.errors import Problem, Problems, SpecError
from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph
from lossgraph.compiler.ops import Ops
from lossgraph.compiler.passes.result import PassResult


@dataclass(frozen=True)
class PlayerPlan:
    player: str
    networks: tuple[str, ...]
    grad_nodes: frozenset[Expr]       # nodes the player's gradient flows through
    live_terms: tuple[str, ...]       # terms that depend on the player's parameters
    dead_terms: tuple[str, ...]       # constant for the player: skipped in its step

    def carries_gradient(self, node: Expr) -> bool:
        return node in self.grad_nodes


def analyse(graph: Graph) -> dict[str, PlayerPlan]:
    import networkx as nx

    dag = graph.to_networkx()
    # stop_gradient and grad's variable (a LEAF) cut the path: no gradient flows into them from their argument
    dag.remove_edges_from([(child, node) for node in list(dag) if isinstance(node, Expr) and node.op in (Ops.STOP_GRADIENT, Ops.LEAF)
                           for child in node.args])
    plans: dict[str, PlayerPlan] = {}
    for player in (*graph.players, *graph.judges):
        grad: set[Expr] = set()
        for net in player.stepped:  # with the networks of the players it also steps
            source = f"params:{net}"
            if source in dag:
                grad |= {node for node in nx.descendants(dag, source) if isinstance(node, Expr)}
        reaching: set[Expr] = set()  # what the terms' gradient reaches back to
        for term in player.terms:
            if term.expr in dag and term.expr not in reaching:
                reaching |= {node for node in nx.ancestors(dag, term.expr) if isinstance(node, Expr)} | {term.expr}
        grad &= reaching
        live = tuple(term.name for term in player.terms if term.expr in grad)
        dead = tuple(term.name for term in player.terms if term.expr not in grad)
        plans[player.name] = PlayerPlan(player.name, player.stepped, frozenset(grad), live, dead)
    return plans


def check_updates(graph: Graph) -> PassResult:
    plans = analyse(graph)
    problems = Problems()
    notes = []
    for player in (*graph.players, *graph.judges):
        plan = plans[player.name]
        if not plan.live_terms and player.terms:
            term = player.terms[0]
            # an interned node may be written in several places: blame this player's own term
            written = graph.origins.get(term.expr, ())
            origin = next((o for o in written if o.key.startswith(term.key)), written[0] if written else None)
            problems.items.append(Problem(
                f"the objective of player '{player.name}' does not depend on its networks ({', '.join(player.stepped)})",
                origin,
                "apply one of them in a term, or move the networks to the player that uses them",
            ))
        for name in plan.dead_terms:
            notes.append(f"{player.name}/{name} is constant for {player.name}'s networks: not computed in its step")
    problems.raise_if_any(SpecError)
    return PassResult(graph, False, tuple(notes))
