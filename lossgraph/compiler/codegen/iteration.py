"""The training function: one iteration of the schedule, as the phase plan (phases.py) says.

Each phase is a player's step: its network calls (kept ones read from an earlier step, batched
pairs as one call, calls whose graph a later step differentiates again computed on cut leaves),
its terms and loss, and its optimizer update. `IterationWriter` holds what crosses phases: the
variable of each call's latest computation (`kept`), which of those carry autograd, the values
without a gradient computed from them or from data (`carried`: a later step that reads the same
calls reads these too, as G's step reads the pseudo-labels D's step took), the names
the function returns, and the names a later step no longer reads (bound again where a call is
computed anew, as `D_fake = D(fake)` after D's update).

Note [Calls without autograd first]: a call a step computes without autograd (an average's,
`C_ema(x_ref)` in TUNIT's G step) keeps no graph, only its output; its own activations live while
it runs. Written after the step's calls with autograd, it runs while their graphs are held, and
its working memory lands on top of them (TUNIT: 2 MiB above the step's backward peak). So such a
call is written before the step's first call with autograd, with the lines it reads and its heads,
where nothing it reads comes from a call with autograd or a history pool, no call it moves is
part of a batched pair, and no network it moves is called elsewhere in the step (batch norm
updates its running statistics in call order). The values are the same: the step's weights do not
change before its backward; only a network drawing random numbers in its forward (dropout) would
see its draws in another order.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from lossgraph.compiler.codegen.lines import Line, origin_comment, player_comment
from lossgraph.compiler.codegen.names import describe, term_names
from lossgraph.compiler.codegen.release import release_before_backward
from lossgraph.compiler.codegen.update import update_lines
from lossgraph.compiler.codegen.writer import CALLS, LEAVES, OWN_LINE, FunctionWriter, needs_line, served
from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph, consumers, differentiated
from lossgraph.compiler.ops import NOT_DIFFERENTIABLE, Ops
from lossgraph.compiler.passes.gradients import PlayerPlan
from lossgraph.compiler.phases import Phase

DOC = ("One iteration of the schedule: each player's step in order, a network call kept across steps "
       "while it is current, or data, to the step that reads it.")


class IterationWriter:
    def __init__(self, graph: Graph, phases: Sequence[Phase], plans: Mapping[str, PlayerPlan], ranks: Mapping[Expr, int]):
        self.graph = graph
        self.phases = tuple(phases)
        self.plans = plans
        self.writer = FunctionWriter(graph, ranks, [phase.loss for phase in phases])
        self.leaves = dict(self.writer.named)
        self.terms = term_names(graph)
        self.kept: dict[Expr, str] = {}   # call -> the variable of its latest computation
        self.kept_grad: set[Expr] = set()  # calls whose latest computation has autograd
        # values that carry no gradient (a pseudo-label's argmax, a rolled batch of data), computed
        # in an earlier step: their variable and the computation of each call under them
        self.carried: dict[Expr, tuple[str, dict[Expr, str]]] = {}
        self.pinned: set[str] = set()      # names the function returns: never bound again
        self.stats: dict[str, str] = {}

    def write(self) -> str:
        for index, phase in enumerate(self.phases):
            self._release(index)
            _Phase(self, phase, index).write()
        # values a queue's push takes from the steps (phases.py), under `push/<queue>` (Trainer.step)
        self.stats.update({f"push/{queue}": f"{self.kept[node]}.detach()" for queue, node in self.phases[-1].pushes} if self.phases else {})
        returns = [f'"{key}": {value}' for key, value in self.stats.items()]
        release_before_backward(self.writer.body, self.stats.values())  # Note [Released before the backward]
        return self.writer.function("iteration(nets, inputs, optimizers, parameters, pools)", DOC, returns)

    def _release(self, index: int) -> None:
        """Free the names of calls no step from this one on reads: a call computed anew may take them."""
        later = set().union(*(phase.reused for phase in self.phases[index:]), *(dict(phase.pushes).values() for phase in self.phases))
        for node, name in list(self.kept.items()):
            if node not in later and name not in self.pinned:
                self.writer.names.release(name)
                del self.kept[node]
                self.kept_grad.discard(node)


class _Phase:
    """One player's step within the iteration."""

    def __init__(self, owner: IterationWriter, phase: Phase, index: int):
        self.owner = owner
        self.phase = phase
        self.index = index
        self.graph = owner.graph
        self.writer = owner.writer
        self.plan = owner.plans[phase.player]
        self.player = self.graph.player(phase.player)
        self.order = list(dict.fromkeys(phase.loss.walk()))
        self.uses = consumers(self.order)
        self.term_values = {term.value: owner.terms[(phase.player, term.name)] for term in phase.live}
        self.pooled = {value: let for let, value in phase.pooled}
        self.scoped = differentiated(phase.loss)  # what a grad differentiates: never read detached
        self.serves = served([term.value for term in phase.live] + [phase.loss])
        # calls whose graph outlives this step's backward (a later step differentiates them again):
        # computed here on leaves cut from their differentiated inputs
        self.cut_below = {node for node in phase.kept_graph if node in phase.computed and node.op in (Ops.APPLY, Ops.FROZEN)}
        self.cut_leaves: list[tuple[str, str]] = []  # (leaf, the value it was cut from)
        self.partner, self.waiting = _batch_positions(phase.batched, self.order, self._own_line)
        self.detached: set[Expr] = {node for node in phase.reused & owner.kept_grad if self._read_detached(node)}

    # -- what is written where -------------------------------------------------------------------

    def _own_line(self, node: Expr) -> bool:
        return node in self.pooled or node in self.term_values or needs_line(node, self.graph, self.uses, ())

    def _read_detached(self, node: Expr) -> bool:
        """Kept with autograd for a later step, but this step's gradient does not pass through it
        (a call returning a tuple has its heads detached instead)."""
        tuple_valued = node.op in (Ops.APPLY, Ops.FROZEN) and bool(self.graph.networks[node.arg].heads)
        return node not in self.plan.grad_nodes and not tuple_valued and node not in self.scoped

    # -- the phase -------------------------------------------------------------------------------

    def write(self) -> None:
        writer, phase = self.writer, self.phase
        writer.named.clear()
        writer.named.update(self.owner.leaves)
        writer.named.update({node: self.owner.kept[node] for node in phase.reused})
        writer.named.update(self._carried())
        writer.body.depth = 0
        verb = "maximize" if self.player.sense == "maximize" else "minimize"
        times = f", {phase.repeats} times" if phase.repeats > 1 else ""
        writer.body.add(f"# {phase.player}: {verb} {' + '.join(t.name for t in phase.live)} over {', '.join(sorted(self.player.stepped))}{times}")
        for node in self.order:
            if node in phase.hoisted:
                self._compute(node)
        loop_top = named_before = None
        if phase.repeats > 1:
            writer.body.add(f"for _ in range({phase.repeats}):")
            writer.body.depth = 1
            loop_top, named_before = len(writer.body.lines), dict(writer.named)
        deferred = set(self.partner.values()) | {head for heads in self.waiting.values() for head in heads}
        deferred |= set(self.order) - self._needed()  # what only values the step already has read
        for node in self._first_without_autograd(deferred):  # with what they read, and their heads
            below = set(node.walk())
            for needed in self.order:
                if needed in writer.named or needed.op in LEAVES:
                    continue
                if needed in below or (needed.op is Ops.HEAD and needed.args[0] is node):
                    if needed.op in CALLS:
                        self._compute(needed)
                    elif self._own_line(needed):
                        self._assign(needed, self.term_values.get(needed))
        for node in self.order:
            if node in self.pooled:
                self._query_pool(node)
            elif node in writer.named or node.op in LEAVES or node in deferred:
                continue
            elif node.op in CALLS:
                self._compute(node)
            elif self._own_line(node):
                self._assign(node, self.term_values.get(node))
        loss = self._loss()
        if loop_top is not None and self.cut_below:
            # only the last repeat's calls serve the later step: free the previous repeat's graph
            # of them (the calls, and the values computed from them) before this repeat's forward
            holding = [name for node, name in writer.named.items() if named_before.get(node) != name
                       and not self.cut_below.isdisjoint(node.walk())]
            if loss not in writer.named.values():  # the loss under its own name, a term's value too
                holding.append(loss)
            writer.body.lines.insert(loop_top, Line(" = ".join([*holding, "None"]), "the previous repeat's graph of the calls a later step reuses", False, 1))
        self._update(loss)
        self._carry()
        self.owner.stats[phase.player] = f"{loss}.detach()"
        for term in phase.live:
            name = writer.named[term.value]
            self.owner.pinned.add(name)
            self.owner.stats[f"{phase.player}/{term.name}"] = f"{name}.detach()"

    def _needed(self) -> set[Expr]:
        """What this step computes: its loss and what that reads, down to values it already has
        (kept calls, carried values, data). A let under a kept call alone is not written again
        (BicycleGAN's z_enc in D's step, whose fake_vae is G's step's)."""
        needed, stack = set(), [self.phase.loss]
        while stack:
            node = stack.pop()
            if node in needed or node in self.writer.named:
                continue
            needed.add(node)
            stack.extend(arg for arg in node.args if isinstance(arg, Expr))
        return needed

    def _carried(self) -> dict[Expr, str]:
        """Gradient-free values an earlier step computed from the very calls this step reads kept:
        read, not computed again (TUNIT's pseudo-labels in G's step, after D's)."""
        found = {}
        for node, (name, calls) in self.owner.carried.items():
            if node in self.phase.local or node in self.term_values:
                continue
            if all(call in self.phase.reused and self.owner.kept.get(call) == kept for call, kept in calls.items()):
                found[node] = name
        return found

    def _carry(self) -> None:
        for node, name in self.writer.named.items():
            if node.op in CALLS or node.op in LEAVES or node in self.phase.local or node in self.term_values:
                continue
            if node == self.phase.loss or not gradient_free(node):
                continue
            calls = {sub: self.owner.kept.get(sub) for sub in node.walk() if sub.op in CALLS}
            if all(calls.values()):
                self.owner.carried[node] = (name, calls)

    def _first_without_autograd(self, deferred: set[Expr]) -> list[Expr]:
        """Calls this step computes without autograd that it would write after one with autograd:
        written before the first such call instead (Note [Calls without autograd first])."""
        phase = self.phase
        computed = [node for node in self.order if node.op in (Ops.APPLY, Ops.FROZEN) and node not in self.writer.named
                    and node not in phase.hoisted]
        calls_of = {name: sum(node.arg == name for node in computed) for name in {node.arg for node in computed}}
        early = []
        for position, node in enumerate(computed):
            below = set(node.walk())
            calls = [other for other in below if other.op in CALLS and other not in self.writer.named]
            if (any(calls_of.get(call.arg, 0) > 1 for call in calls if call.op is not Ops.HEAD) or not below.isdisjoint(self.pooled) or not below.isdisjoint(phase.local)
                    or any(call in phase.with_grad or call in deferred or call in self.partner or call in self.cut_below
                           for call in calls)
                    or not any(other in phase.with_grad for other in computed[:position])):
                continue
            early.append(node)
        return early

    def _loss(self) -> str:
        writer, phase = self.writer, self.phase
        name = f"loss_{phase.player}"
        if phase.loss in writer.named:  # the loss is one term's value: say so, under the loss's name
            name = writer.names.fresh(name)
            writer.body.add(f"{name} = {writer.named[phase.loss]}", player_comment(self.player.origin))
        else:
            name = self._assign(phase.loss, name)
            writer.body.lines[-1].comment = player_comment(self.player.origin)
        self.owner.pinned.add(name)
        return name

    def _assign(self, node: Expr, hint: str | None = None, no_grad: bool = False) -> str:
        detached = frozenset(self.detached) if node in self.plan.grad_nodes else frozenset()
        return self.writer.assign(node, hint, no_grad=no_grad, detached=detached, qualifier=self.phase.player,
                                  prefer=f"players.{self.phase.player}.", fallback=self.serves.get(node))

    def _query_pool(self, node: Expr) -> None:
        if node not in self.writer.named:
            self._compute(node)
        source = self.owner.kept.get(node, self.writer.named[node])
        let = self.pooled[node]
        name = self.writer.names.fresh(f"{let}_pool")
        self.writer.body.add(f'{name} = pools["{self.phase.player}"]["{let}"].query({source})',
                             f"the history pool of {let}: {self.phase.player} sees earlier generated images too")
        self.writer.named[node] = name

    def _record(self, node: Expr, name: str) -> None:
        grad = node in self.phase.with_grad
        if node not in self.phase.local:
            self.owner.kept[node] = name
            (self.owner.kept_grad.add if grad else self.owner.kept_grad.discard)(node)
        if grad and self._read_detached(node):
            self.detached.add(node)
        else:
            self.detached.discard(node)

    def _compute(self, node: Expr) -> None:
        no_grad = node not in self.phase.with_grad
        if node in self.partner:  # the later of a batched pair: both in one call
            first = self.partner[node]
            for member, name in zip((first, node), self._assign_batched(first, node, no_grad)):
                self._record(member, name)
            for head in self.waiting[node]:
                self._compute(head)
            return
        if node in self.cut_below:
            saved = {}
            for arg in node.args:
                if arg in self.plan.grad_nodes and arg not in saved:
                    saved[arg] = self.writer.named[arg]
                    leaf = self.writer.names.fresh(f"{saved[arg]}_in")
                    self.writer.body.add(f"{leaf} = {saved[arg]}.detach().requires_grad_()",
                                         "a leaf cut from the graph below: see the backward")
                    self.writer.named[arg] = leaf
                    self.cut_leaves.append((leaf, saved[arg]))
            self._record(node, self._assign(node, no_grad=no_grad))
            self.writer.named.update(saved)
            return
        self._record(node, self._assign(node, no_grad=no_grad))

    def _assign_batched(self, first: Expr, second: Expr, no_grad: bool) -> tuple[str, str]:
        """`a, b = batched(D, (args of first,), (args of second,))`: two calls of one network as one."""
        writer = self.writer
        rendered = []
        for node in (first, second):
            detached = frozenset(self.detached) if node in self.plan.grad_nodes else frozenset()
            rendered.append("(" + ", ".join(writer.renderer.text(arg, detached) for arg in node.args) + ",)")
        names = tuple(writer.names.fresh(describe(node, self.graph, writer.named), self.phase.player) for node in (first, second))
        writer.named[first], writer.named[second] = names
        prefer = f"players.{self.phase.player}."
        comment = origin_comment(self.graph, first, prefer) or origin_comment(self.graph, second, prefer)
        writer.body.add(f"{names[0]}, {names[1]} = batched({writer.networks[first.arg]}, {rendered[0]}, {rendered[1]})", comment, no_grad)
        return names

    def _update(self, loss: str) -> None:
        phase, phases = self.phase, self.owner.phases
        # a kept graph this step could not cut below (a call reused from an earlier step): keep it all
        uncut = any(node not in self.cut_below for node in phase.kept_graph if node.op is not Ops.HEAD)
        retain = bool(phase.kept_graph) and (uncut or not self.cut_leaves)
        later = [other.player for other in phases[self.index + 1:] if other.reused & phase.kept_graph]
        # a step of another player (step_of) steps that player's optimizer, and also_steps others' too
        for code, no_grad, depth in update_lines(self.player, loss, retain=retain, cut=() if retain else self.cut_leaves, reused_by=list(dict.fromkeys(later))):
            self.writer.body.add(code, no_grad=no_grad, depth=depth)


def gradient_free(node: Expr) -> bool:
    """Whether `node`'s value carries no gradient whichever step computes it: data, or what a
    function without a gradient (argmax, ==) makes of anything. A grad's variable, a gradient and
    a random interpolation are each step's own."""
    if node.op in LEAVES or node.op in NOT_DIFFERENTIABLE:
        return not any(sub.op in OWN_LINE for sub in node.walk())
    if node.op in CALLS or node.op in OWN_LINE:
        return False
    return all(gradient_free(arg) for arg in node.args if isinstance(arg, Expr))


def _batch_positions(pairs, order: list[Expr], own_line) -> tuple[dict[Expr, Expr], dict[Expr, list[Expr]]]:
    """Where each batched pair is written: at its later call, the earlier waiting with its heads.
    A pair is written as two calls instead when a line written between them reads the earlier.
    Returns {later: earlier} and {later: the earlier call's heads that wait with it}."""
    partner: dict[Expr, Expr] = {}
    heads: dict[Expr, list[Expr]] = {}
    for first, second in pairs:
        early, late = sorted((first, second), key=order.index)
        between = order[order.index(early) + 1:order.index(late)]
        waiting = [node for node in between if node.op is Ops.HEAD and node.args[0] is early]
        if not any(own_line(node) and early in set(node.walk()) for node in between if node not in waiting):
            partner[late] = early
            heads[late] = waiting
    return partner, heads


def emit_iteration(graph: Graph, phases: Sequence[Phase], plans: Mapping[str, PlayerPlan], ranks: Mapping[Expr, int]) -> str:
    return IterationWriter(graph, phases, plans, ranks).write()
