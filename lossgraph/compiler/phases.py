"""The phase plan: one iteration of the schedule, each network call computed as few times as it can be.

An iteration runs the players' steps in schedule order; each is a *phase*. A network call computed
in one phase is *kept* for later phases:

- while no network it depends on is updated: with `schedule: [D, G]`, `G_XY(x)` computed in D's
  phase serves G's phase too, since D's step does not change G_XY; `D_Y(fake_y)` is computed
  again in G's phase, since D_Y changed and G's gradient passes through it;
- and, once a network under it was updated, by a phase whose gradient does not pass through that
  network's call: the value is data to that phase, the iteration's sample. With `schedule: [G, D]`
  D's step reads the fakes G's step made, as the reference scripts' `fake.detach()` does, and
  `D_Y(fake_y)`, computed in G's phase with D_Y's weights as D's step finds them, serves both
  players: one discriminator forward on the fakes an iteration instead of two. So each phase's
  loss is `losses()` at the weights the iteration started with, except for networks that an
  earlier phase updated and the phase differentiates through.

A phase reads the networks it names in `fresh:` as the earlier steps left them: a kept call under
which one of them changed is computed again there, and so is everything computed from it (TUNIT's
D step takes its pseudo-labels from C as C's own step left it); a call computed after the last
change of those networks is kept as usual (G's step, which also steps C, reads D's).

A phase never reuses a call of its own networks once they changed, and a repeated phase
(`{D: 5}`) reuses no call of its own networks at all; it computes the calls that do not depend on
its networks once, before its repeats.

Two calls of one network in a phase are *batched*, one call on their inputs concatenated, when the
network treats each sample alone (no batch norm: `nets.mixes_batch`), their inputs have the same
per-sample shapes, neither depends on the other, the phase reads the same heads of both, and the
phase's gradient enters neither input:
a discriminator's step on real and generated images, where only its weights get gradients.
(Where a gradient enters one input, the batched backward would compute it for both halves.)

A call runs with autograd when some phase that uses it needs a gradient through it (it is in that
player's gradient nodes); a phase whose gradient does not pass through a kept call reads it
detached. A phase whose backward passes through a call that a later phase differentiates again
keeps the autograd graph of those calls (`kept_graph`): they take their differentiated inputs as
leaves cut from the graph below (`x.detach().requires_grad_()`), its backward first takes the
gradient at the leaves and then carries it on below, so that only the calls' own graph outlives it.
Values a history pool replaces in a phase, and every call that
sees them, are that phase's own: computed there and never kept. So are the calls a `grad` makes on
its variable (`D(x_in)` in R1): the gradient is taken with respect to the tensor the step made, and
those calls run with autograd even where the step's own gradient does not pass them.

A queue's push formula that is a call some step made with the weights the iteration ends with is
handed that value (`Phase.pushes`): the trainer pushes it instead of computing the call again.

The plan is data (`Phase`); `codegen.emit_iteration` writes it as one function.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph, Player, Term, differentiated
from lossgraph.compiler.ops import Ops
from lossgraph.compiler.passes.gradients import PlayerPlan

CALLS = (Ops.APPLY, Ops.FROZEN, Ops.HEAD)


@dataclass(frozen=True)
class Phase:
    player: str
    repeats: int
    live: tuple[Term, ...]          # the terms its step computes
    loss: Expr                      # what its optimizer minimizes (live terms only)
    computed: tuple[Expr, ...]      # network calls computed in this phase, in order
    reused: frozenset[Expr]         # network calls kept from an earlier phase
    hoisted: frozenset[Expr]        # computed once before the repeats: they do not depend on its networks
    with_grad: frozenset[Expr]      # calls computed here with autograd (this or a later phase differentiates them)
    pooled: tuple[tuple[str, Expr], ...]  # (let name, value) a history pool replaces in this phase
    local: frozenset[Expr]          # values that see pooled ones: computed here, never kept
    kept_graph: frozenset[Expr] = frozenset()  # calls a later phase differentiates again: their graph outlives this backward
    batched: tuple[tuple[Expr, Expr], ...] = ()  # pairs of its calls computed as one call
    refreshed: tuple[tuple[Expr, int], ...] = ()  # (call, the phase that computed it before): computed again for `fresh:`
    pushes: tuple[tuple[str, Expr], ...] = ()  # the last phase's: (queue, call) whose value the iteration hands to the push


@dataclass(frozen=True)
class Batchable:
    """Which calls may share one call: from the shape check (shapes.py)."""

    shapes: Mapping[Expr, tuple[int, ...]]  # every value's shape at the shape check's batch size
    mixing: frozenset[str]                  # networks whose layers mix the samples of a batch

    def __call__(self, first: Expr, second: Expr) -> bool:
        if first.op is not Ops.APPLY or second.op is not Ops.APPLY or first.arg != second.arg:
            return False
        if first.arg in self.mixing or len(first.args) != len(second.args):
            return False
        if first in set(second.walk()) or second in set(first.walk()):
            return False
        return all(a in self.shapes and self.shapes.get(a) == self.shapes.get(b) for a, b in zip(first.args, second.args))


def live_loss(player: Player, plan: PlayerPlan) -> tuple[tuple[Term, ...], Expr]:
    """The terms a step computes, each cut to its live part, and their loss.

    A term constant for the player is dropped (a dead term); so is a summand of a term that is
    constant for it (StarGAN's `E[log(D.src(x))]` in G's `adv`): it changes no gradient, and
    computing it would cost a discriminator forward. The step reports what it computes.
    """
    live = tuple(
        replace(term, expr=live_part(term.expr, plan.grad_nodes))
        for term in player.terms if term.name in plan.live_terms
    )
    return live, replace(player, terms=live).loss


def live_part(expr: Expr, grad_nodes: frozenset[Expr]) -> Expr:
    """`expr` without its additive parts that carry no gradient (`expr` itself must carry one)."""

    def cut(node: Expr) -> Expr | None:
        if node not in grad_nodes:
            return None
        if node.op in (Ops.ADD, Ops.SUB):
            left, right = (cut(arg) for arg in node.args)
            if left is None:
                return right if node.op is Ops.ADD else Expr.make(Ops.NEG, right)
            return left if right is None else Expr.make(node.op, left, right)
        if node.op is Ops.NEG:
            return Expr.make(Ops.NEG, cut(node.args[0]))
        if node.op is Ops.MUL and node.args[0].op in (Ops.CONST, Ops.WEIGHT):
            return Expr.make(Ops.MUL, node.args[0], cut(node.args[1]))
        return node

    return cut(expr)


def upstream_networks(nodes: Sequence[Expr]) -> dict[Expr, frozenset[str]]:
    """For each node (children first), the networks whose parameters it depends on."""
    found: dict[Expr, frozenset[str]] = {}
    for node in nodes:
        networks: set[str] = set()
        for child in node.args:
            networks |= found[child]
        if node.op in (Ops.APPLY, Ops.FROZEN):
            networks.add(node.arg)
        found[node] = frozenset(networks)
    return found


def plan_phases(graph: Graph, plans: Mapping[str, PlayerPlan], schedule: Sequence[tuple[str, int]],
                batchable: Batchable | None = None) -> tuple[Phase, ...]:
    lets = {name: node for node, name in graph.names.items()}
    losses = [live_loss(graph.player(name), plans[name]) for name, _ in schedule]
    everything = list(dict.fromkeys(node for _, loss in losses for node in loss.walk()))
    upstream = upstream_networks(everything)

    kept: dict[Expr, int] = {}                    # call -> the phase that computed it last
    stale: dict[Expr, frozenset[str]] = {}        # call -> networks under it updated since
    users: dict[tuple[int, Expr], set[int]] = {}  # (computing phase, call) -> phases that use it
    drafts = []
    for index, ((name, repeats), (live, loss)) in enumerate(zip(schedule, losses)):
        player = graph.player(name)
        own = set(player.stepped)  # with the networks of the players it also steps (also_steps)
        grad_nodes = plans[name].grad_nodes
        nodes = list(dict.fromkeys(loss.walk()))
        present = set(nodes)
        pooled = tuple((let, lets[let]) for let, _ in player.pool if let in lets and lets[let] in present)
        pooled_values = {value for _, value in pooled}
        local = frozenset(node for node in nodes if node not in pooled_values and pooled_values & set(node.walk()))
        local |= differentiated(loss)  # a grad's calls are made on this step's own variable

        def reusable(node: Expr) -> bool:
            if node not in kept or node in local:
                return False
            if repeats > 1 and upstream[node] & own:
                return False  # its own networks change between the repeats
            changed = stale[node]
            if changed & own:
                return False
            if changed & player.fresh:
                refreshed.append((node, kept[node]))
                return False  # computed before a network it reads fresh changed
            # a changed network's call is data here only if this phase's gradient does not pass it
            return not any(sub.op in CALLS and sub in grad_nodes and _call_network(sub) in changed for sub in node.walk())

        computed, reused, refreshed = [], set(), []
        for node in nodes:
            if node.op not in CALLS:
                continue
            if reusable(node):
                reused.add(node)
                users[(kept[node], node)].add(index)
                continue
            computed.append(node)
            users[(index, node)] = {index}
            if node not in local:
                kept[node], stale[node] = index, frozenset()
        hoisted = frozenset(node for node in computed if repeats > 1 and node not in local and not upstream[node] & own)
        for node in kept:
            stale[node] |= upstream[node] & own  # this phase's update changes what it would be
        drafts.append((name, repeats, live, loss, tuple(computed), frozenset(reused), hoisted, pooled, local, tuple(refreshed)))

    kept_graph: dict[int, set[Expr]] = {}
    for (_, node), phase_users in users.items():
        differentiating = sorted(user for user in phase_users if node in plans[schedule[user][0]].grad_nodes)
        for user in differentiating[:-1]:  # every backward through it but the last keeps its graph
            kept_graph.setdefault(user, set()).add(node)
    phases = []
    for index, (name, repeats, live, loss, computed, reused, hoisted, pooled, local, refreshed) in enumerate(drafts):
        scoped = differentiated(loss)
        with_grad = frozenset(
            node for node in computed
            if node in scoped or any(node in plans[schedule[user][0]].grad_nodes for user in users[(index, node)])
        )
        pairs = _pairs(computed, hoisted | scoped, with_grad, plans[name].grad_nodes, batchable, loss) if batchable else ()
        phases.append(Phase(name, repeats, live, loss, computed, reused, hoisted, with_grad, pooled, local,
                            kept_graph=frozenset(kept_graph.get(index, ())), batched=pairs, refreshed=refreshed))
    # a queue's push formula that is a call a step made with the weights the iteration ends with
    # (TUNIT's C_ema.style(x_tf), in C's step): its value is handed to the push, not computed again
    pushes = tuple((queue, push) for queue, (_, push) in graph.queues.items() if push in kept and not stale[push])
    if pushes and phases:
        phases[-1] = replace(phases[-1], pushes=pushes)
    return tuple(phases)


def _pairs(computed: Sequence[Expr], apart: frozenset[Expr], with_grad: frozenset[Expr],
           grad_nodes: frozenset[Expr], batchable: Batchable, loss: Expr) -> tuple[tuple[Expr, Expr], ...]:
    """Calls of this phase to batch two by two, in order (see the module docstring). Two calls of a
    network with heads pair only when the phase reads the same heads of both: a head read from
    one alone would be differentiated over both halves (StarGAN's D.cls(x), not D.cls(fake)).
    Calls in `apart` stay alone: those hoisted before a repeat, and a grad's calls, whose gradient
    (and its backward) would otherwise run over both halves."""
    heads: dict[Expr, set] = {}
    for node in loss.walk():
        if node.op is Ops.HEAD:
            heads.setdefault(node.args[0], set()).add(node.arg)
    candidates = [node for node in computed
                  if node not in apart and not any(arg in grad_nodes for arg in node.args)]
    pairs, taken = [], set()
    for position, first in enumerate(candidates):
        if first in taken:
            continue
        for second in candidates[position + 1:]:
            if (second not in taken and (first in with_grad) == (second in with_grad)
                    and heads.get(first) == heads.get(second) and batchable(first, second)):
                pairs.append((first, second))
                taken |= {first, second}
                break
    return tuple(pairs)


def _call_network(node: Expr) -> str:
    """The network a call node applies (a head's call: its network)."""
    while node.op is Ops.HEAD:
        node = node.args[0]
    return node.arg


def describe_plan(phases: Sequence[Phase], graph: Graph) -> str:
    """The plan as text (`lossgraph emit --plan`): per step, the calls it computes and how, the
    calls it reads from an earlier step, its batched pairs and its history pools."""
    from lossgraph.compiler.printing import formula_text

    def shown(node: Expr) -> str:
        return formula_text(node, graph.names)

    computed_in: dict[Expr, int] = {}
    lines = [f"phase plan of {graph.name}: " + ", ".join(
        f"{phase.player}" + (f" x{phase.repeats}" if phase.repeats > 1 else "") for phase in phases)]
    for index, phase in enumerate(phases, 1):
        sense = graph.player(phase.player).sense
        times = f", {phase.repeats} steps" if phase.repeats > 1 else ""
        player = graph.player(phase.player)
        also = "".join(f"; also steps {other.player} ({', '.join(other.networks)}) with its optimizer" for other in player.also)
        fresh = f"; reads {', '.join(sorted(player.fresh))} as the earlier steps left it" if player.fresh else ""
        lines.append(f"{index}. {phase.player}{times}: {sense} {' + '.join(term.name for term in phase.live)}{also}{fresh}")
        batched = {node: other for pair in phase.batched for node, other in (pair, pair[::-1])}
        again = dict(phase.refreshed)
        for node in phase.computed:
            if node.op is Ops.HEAD:
                continue
            how = ["with autograd" if node in phase.with_grad else "without autograd"]
            if node in phase.hoisted:
                how.append("once, before the repeats")
            if node in batched:
                how.append(f"batched with {shown(batched[node])}")
            if node in phase.kept_graph:
                how.append("its graph kept for a later step")
            if node in again:
                fresh = ", ".join(sorted(graph.player(phase.player).fresh))
                how.append(f"again: step {again[node] + 1} computed it before {fresh} changed")
            users = []  # the later steps that read this computation: up to one that computes it again
            for later in phases[index:]:
                if node in later.computed:
                    break
                users += [later.player] if node in later.reused else []
            if users:
                how.append(f"kept for {', '.join(dict.fromkeys(users))}")
            lines.append(f"   computes {shown(node)} ({'; '.join(how)})")
            computed_in[node] = index
        for node in phase.reused:
            if node.op is not Ops.HEAD:
                lines.append(f"   reuses   {shown(node)} (from step {computed_in.get(node, '?')})")
        for let, _ in phase.pooled:
            lines.append(f"   pools    {let} (a history of generated images)")
        for queue, node in phase.pushes:
            step = max(number for number, earlier in enumerate(phases, 1) if node in earlier.computed)
            lines.append(f"   pushes   {shown(node)} into queue {queue} (from step {step}), after the steps")
    return "\n".join(lines) + "\n"
