"""IR to readable, straight-line PyTorch source.

The module emitted for a spec has one function per job:
- `losses(nets, inputs)`: every player's objective and every term, each distinct network
  application computed once and shared across terms and players;
- `step_<player>(nets, inputs, optimizer, parameters)`: one optimizer step of that player.
  Network calls its gradient does not pass through run under `torch.no_grad()`, terms constant
  for it are not computed, and backward runs with `inputs=parameters`, so no player computes
  gradients for another's networks;
- `samples(nets, inputs)` and `evaluate(nets, inputs)`: sample-grid rows and held-out metrics.

Naming (Note [Generated names]): values are named after the spec: data and networks keep their
names, a network application is named after the network and its argument
(`G_YX_G_XY_x` is `G_YX(G_XY(x))`), terms keep their term names, `let:` bindings their let names.
A `Namespace` keeps names unique and never shadows a keyword, a builtin or the module's globals.
A value is inlined where it is used once and is cheap (elementwise or a reduction); network
calls, shared values and terms get a line of their own, with a comment pointing at the spec line
that wrote it.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Mapping, Sequence

from lossgraph.language.errors import CodegenError
from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph, Player, consumers
from lossgraph.compiler.ops import OPS, Ops
from lossgraph.compiler.passes.gradients import PlayerPlan
from lossgraph.compiler.phases import CALLS, plan_phases
from lossgraph.compiler.printing import number_text

_ATOM = 100
_PRECEDENCE = {ast.Add: 10, ast.Sub: 10, ast.Mult: 20, ast.Div: 20, ast.Pow: 40}
# Note [Generated code's own names]: the names the emitted module itself uses (its imports, the
# functions' parameters, the runtime helpers, the loop variable). A spec name equal to one of them
# (data named `parameters`, a network named `torch`) is renamed in the generated code, never
# allowed to shadow it; tests/codegen/test_namespace.py compiles a spec with each of them.
GENERATED_NAMES = frozenset({"torch", "F", "nets", "inputs", "optimizer", "optimizers", "parameters", "pools",
                             "frozen", "gradient_penalty", "batched", "_"})
MAX_NAME = 32


class Namespace:
    """Unique, readable Python names that never shadow keywords, builtins or module globals."""

    def __init__(self, reserved: set[str] = frozenset()):
        self.used: set[str] = set(reserved)

    def claim(self, name: str) -> str:
        """A local variable for a spec name (data, networks): the name itself, unless the generated
        code needs it for itself or it is a builtin (Note [Generated code's own names])."""
        if name in GENERATED_NAMES or hasattr(builtins, name):
            return self.fresh(name)
        self.used.add(name)
        return name

    def fresh(self, hint: str) -> str:
        base = re.sub(r"\W", "_", hint).strip("_") or "v"
        if base[0].isdigit():
            base = f"v_{base}"
        if len(base) > MAX_NAME:
            base = base[:MAX_NAME].rstrip("_")
        candidate, count = base, 1
        while candidate in self.used or keyword.iskeyword(candidate) or hasattr(builtins, candidate):
            count += 1
            candidate = f"{base}_{count}"
        self.used.add(candidate)
        return candidate


def _precedence(code: str) -> int:
    body = ast.parse(code, mode="eval").body
    if isinstance(body, ast.BinOp):
        return _PRECEDENCE[type(body.op)]
    if isinstance(body, ast.UnaryOp):
        return 30
    if isinstance(body, ast.Constant) and isinstance(body.value, (int, float)) and body.value < 0:
        return 30
    return _ATOM


def _wrap(code: str, needed: int, strict: bool = False) -> str:
    power = _precedence(code)
    return f"({code})" if power < needed or (strict and power == needed) else code


@dataclass
class _Line:
    code: str
    comment: str
    no_grad: bool = False
    depth: int = 0  # extra indentation: the body of a repeated phase's loop


class FunctionWriter:
    """Writes one function: decides what to name, orders the lines, renders expressions."""

    def __init__(self, graph: Graph, ranks: Mapping[Expr, int], names: Namespace, hints: Mapping[Expr, str]):
        self.graph = graph
        self.ranks = ranks
        self.names = names
        self.hints = hints
        self.named: dict[Expr, str] = {}
        self.networks: dict[str, str] = {}  # network name -> the local variable holding the module
        self.lines: list[_Line] = []
        self.after: dict[Expr, str] = {}  # a line to emit right after a node's own (a pool query)
        self.depth = 0  # indentation of the lines being written (emit_iteration's loops)
        # emit_iteration: values kept with autograd for a later step, read detached inside the
        # expressions this step differentiates (`differentiated`), where its gradient must not enter them
        self.detach: set[Expr] = set()
        self.differentiated: frozenset[Expr] = frozenset()
        self._detaching = False

    # -- naming -------------------------------------------------------------------------------

    def hint(self, node: Expr) -> str:
        if node in self.hints:
            return self.hints[node]
        if node in self.graph.names:
            return self.graph.names[node]
        if node.op in (Ops.DATA, Ops.RANDOM):
            return str(node.arg)
        if node.op in (Ops.APPLY, Ops.FROZEN):
            parts = [self.named.get(a) or self.hint(a) for a in node.args]
            joined = f"{node.arg}_{'_'.join(parts)}"
            return joined if len(joined) <= MAX_NAME else f"{node.arg}_out"
        if node.op is Ops.HEAD:
            call = node.args[0]
            parts = [self.named.get(a) or self.hint(a) for a in call.args]
            return f"{call.arg}_{node.arg[0]}_{'_'.join(parts)}"
        if node.op is Ops.CONST:
            return "c"
        return OPS[node.op].spelling if OPS[node.op].spelling.isidentifier() else "v"

    def comment(self, node: Expr) -> str:
        origins = self.graph.origins.get(node) or ()
        if not origins and node.op is Ops.MUL and node.args[0].op is Ops.CONST:
            origins = self.graph.origins.get(node.args[1]) or ()  # a weighted term: its formula
        if not origins:
            return ""
        first = origins[0]
        more = f" (+{len(origins) - 1} more)" if len(origins) > 1 else ""
        return f"{PurePath(first.file).name}:{first.line} {first.key}{more}"

    # -- rendering ----------------------------------------------------------------------------

    def render(self, node: Expr) -> str:
        """The expression for `node`, using names for named nodes."""
        if node in self.named:
            return f"{self.named[node]}.detach()" if self._detaching and node in self.detach else self.named[node]
        op = node.op
        if op is Ops.CONST:
            return number_text(node.arg)
        if op is Ops.APPLY:
            return f"{self.networks[node.arg]}({', '.join(self.render(a) for a in node.args)})"
        if op is Ops.HEAD:
            return f"{_wrap(self.render(node.args[0]), _ATOM)}[{node.arg[1]}]"
        if op is Ops.FROZEN:
            args = ", ".join(self.render(a) for a in node.args)
            network = self.networks[node.arg]
            return f"torch.func.functional_call({network}, frozen({network}), ({args},))"
        if op is Ops.GRADIENT_PENALTY:
            name, head, _ = node.arg
            extra = f", head={head}" if head is not None else ""
            return f"gradient_penalty({self.networks[name]}, {self.render(node.args[0])}, {self.render(node.args[1])}{extra})"
        row = OPS.get(op)
        if row is None or row.torch is None:
            raise CodegenError(op.name, self.graph.origin(node))
        args = [self.render(a) for a in node.args]
        ranks = [self.ranks.get(a, 0) for a in node.args]
        if row.infix and len(args) == 2:
            right_assoc = op is Ops.POW
            args = [
                _wrap(args[0], row.infix, strict=right_assoc),
                _wrap(args[1], row.infix, strict=not right_assoc),
            ]
        elif row.infix:
            args = [_wrap(args[0], row.infix)]
        elif row.atomic:
            args = [_wrap(a, _ATOM) for a in args]
        return row.torch(args, ranks)

    def assign(self, node: Expr, hint: str | None = None, no_grad: bool = False) -> str:
        self._detaching = node in self.differentiated
        code = self.render(node)
        self._detaching = False
        name = self.names.fresh(hint or self.hint(node))
        self.named[node] = name
        self.lines.append(_Line(f"{name} = {code}", self.comment(node), no_grad, self.depth))
        if node in self.after:
            self.lines.append(_Line(self.after[node].format(name=name), "", no_grad, self.depth))
        return name

    def assign_batched(self, first: Expr, second: Expr, no_grad: bool = False) -> tuple[str, str]:
        """`a, b = batched(D, (args of first,), (args of second,))`: two calls of one network as one."""
        rendered = []
        for node in (first, second):
            self._detaching = node in self.differentiated
            rendered.append(f"({', '.join(self.render(arg) for arg in node.args)},)")
            self._detaching = False
        names = (self.names.fresh(self.hint(first)), self.names.fresh(self.hint(second)))
        self.named[first], self.named[second] = names
        comment = self.comment(first) or self.comment(second)
        self.lines.append(_Line(f"{names[0]}, {names[1]} = batched({self.networks[first.arg]}, {rendered[0]}, {rendered[1]})", comment, no_grad, self.depth))
        return names

    def line(self, code: str, no_grad: bool = False) -> None:
        self.lines.append(_Line(code, "", no_grad, self.depth))

    # -- a whole body ---------------------------------------------------------------------------

    def compute(self, roots: list[tuple[Expr, str | None]], no_grad: frozenset[Expr] = frozenset()) -> None:
        """Emit lines computing every root. `no_grad` nodes are network calls run without autograd."""
        order: dict[Expr, None] = {}
        for root, _ in roots:
            for node in root.walk():
                order.setdefault(node, None)
        uses = consumers(order)
        root_hints = {}
        for root, hint in roots:
            root_hints.setdefault(root, hint)
        must_name = {
            node for node in order
            if node.op in (Ops.APPLY, Ops.FROZEN, Ops.HEAD, Ops.GRADIENT_PENALTY) or node in root_hints or (uses.get(node, 0) > 1 and node.op not in (Ops.CONST, Ops.DATA, Ops.RANDOM))
        }
        # network calls without autograd first, inside one no_grad block; they never depend on a
        # value that carries gradient, so hoisting them keeps a valid order
        for node in order:
            if node in no_grad and node in must_name and node not in self.named:
                self.assign(node, root_hints.get(node), no_grad=True)
        for node in order:
            if node in must_name and node not in self.named:
                self.assign(node, root_hints.get(node))

    def body(self, indent: str = "    ") -> list[str]:
        out: list[str] = []
        block: int | None = None  # depth of the open `with torch.no_grad():` block
        for line in self.lines:
            at = indent + "    " * line.depth
            if line.no_grad and block != line.depth:
                out.append(f"{at}with torch.no_grad():")
                block = line.depth
            elif not line.no_grad:
                block = None
            pad = at + ("    " if line.no_grad else "")
            text = f"{pad}{line.code}"
            out.append(f"{text}  # {line.comment}" if line.comment else text)
        return out


def _prologue(writer: FunctionWriter, roots: list[Expr]) -> list[str]:
    """`G_XY = nets["G_XY"]` and `x = inputs["x"]` for what the function uses."""
    nets_used: dict[str, None] = {}
    data_used: dict[Expr, None] = {}
    for root in roots:
        for node in root.walk():
            if node.op in (Ops.APPLY, Ops.FROZEN):
                nets_used.setdefault(node.arg, None)
            elif node.op is Ops.GRADIENT_PENALTY:
                nets_used.setdefault(node.arg[0], None)
            elif node.op in (Ops.DATA, Ops.RANDOM):
                data_used.setdefault(node, None)
    lines = []
    for net in sorted(nets_used):
        writer.networks[net] = writer.names.claim(net)
        lines.append(f'    {writer.networks[net]} = nets["{net}"]')
    declared = list(writer.graph.data)
    for node in sorted(data_used, key=lambda n: declared.index(n.arg) if n.arg in declared else len(declared)):
        writer.named[node] = writer.names.claim(node.arg)
        lines.append(f'    {writer.named[node]} = inputs["{node.arg}"]')
    return lines


def _writer(graph: Graph, ranks: Mapping[Expr, int], hints: Mapping[Expr, str], roots: list[Expr]) -> tuple[FunctionWriter, list[str]]:
    """A fresh writer for one function, and its prologue loading the networks and inputs it uses."""
    writer = FunctionWriter(graph, ranks, Namespace(_spec_names(graph)), hints)
    return writer, _prologue(writer, roots)


def _spec_names(graph: Graph) -> set[str]:
    # data and network names are claimed by the prologue; keep generated names off them
    return set(graph.networks) | set(graph.data) | set(graph.held_out) | set(graph.random) | GENERATED_NAMES


def emit_losses(graph: Graph, ranks: Mapping[Expr, int], hints: Mapping[Expr, str]) -> str:
    roots = [term.value for player in graph.players for term in player.terms] + [p.loss for p in graph.players]
    writer, prologue = _writer(graph, ranks, hints, roots)
    writer.compute([(term.value, term.name) for player in graph.players for term in player.terms])
    writer.compute([(player.loss, f"loss_{player.name}") for player in graph.players])
    returns = []
    for player in graph.players:
        returns.append(f'        "{player.name}": {writer.named[player.loss]},')
        returns += [f'        "{player.name}/{term.name}": {writer.named[term.value]},' for term in player.terms]
    doc = '    """Every player\'s objective and term; each network application runs once."""'
    return "\n".join(["def losses(nets, inputs):", doc, *prologue, *writer.body(), "    return {", *returns, "    }"])


def emit_step(graph: Graph, player: Player, plan: PlayerPlan, ranks: Mapping[Expr, int], hints: Mapping[Expr, str]) -> str:
    live = [term for term in player.terms if term.name in plan.live_terms]
    loss = _loss_of(player, live)
    writer, prologue = _writer(graph, ranks, hints, [loss])
    lets = {name: node for node, name in graph.names.items()}
    for let_name, _ in player.pool:
        if let_name in lets:
            # the discriminator sees earlier generated images too; losses() does not
            writer.after[lets[let_name]] = f'{{name}} = pools["{let_name}"].query({{name}})'
    no_grad = frozenset(node for node in loss.walk() if node.op in (Ops.APPLY, Ops.HEAD, Ops.FROZEN) and not plan.carries_gradient(node))
    writer.compute([(term.value, term.name) for term in live], no_grad)
    writer.compute([(loss, "loss")])
    verb = "maximize" if player.sense == "maximize" else "minimize"
    dead = f" ({', '.join(plan.dead_terms)} constant here: not computed)" if plan.dead_terms else ""
    doc = f'    """Player {player.name}: {verb} {" + ".join(t.name for t in player.terms)} over {", ".join(player.networks)}{dead}."""'
    if player in graph.judges:
        doc = f'    """Judge {player.name}: fitted on real batches before training, then held fixed; it only evaluates."""'
    returns = [f'        "{player.name}": {writer.named[loss]}.detach(),']
    returns += [f'        "{player.name}/{term.name}": {writer.named[term.value]}.detach(),' for term in live]
    for code, no_grad in _update(player, writer.named[loss], "optimizer", "parameters"):
        writer.line(code, no_grad)
    tail = [
        "    return {",
        *returns,
        "    }",
    ]
    signature = "nets, inputs, optimizer, parameters" + (", pools" if player.pool else "")
    return "\n".join([f"def step_{player.name}({signature}):", doc, *prologue, *writer.body(), *tail])


def _loss_of(player: Player, live) -> Expr:
    from dataclasses import replace

    return replace(player, terms=tuple(live)).loss


def emit_iteration(graph: Graph, plans: Mapping[str, PlayerPlan], schedule, ranks: Mapping[Expr, int], hints: Mapping[Expr, str],
                   batchable=None) -> str:
    """One iteration of the schedule as one function, following the phase plan (phases.py):
    network calls kept across phases while they are current, or data, to the phase that reads them."""
    phases = plan_phases(graph, plans, schedule, batchable)
    writer, prologue = _writer(graph, ranks, hints, [phase.loss for phase in phases])
    leaves = dict(writer.named)
    kept: dict[Expr, str] = {}       # call -> the variable of its latest computation (the plan says when it is reused)
    kept_grad: set[Expr] = set()     # calls whose latest computation has autograd
    stats: dict[str, str] = {}
    for phase in phases:
        plan = plans[phase.player]
        own = set(graph.player(phase.player).networks)
        writer.named = dict(leaves)
        writer.named.update({node: kept[node] for node in phase.reused})
        writer.differentiated = plan.grad_nodes

        def read_detached(node: Expr) -> bool:
            # kept with autograd for a later step, but this step's gradient does not pass through it
            return node not in plan.grad_nodes and not _tuple_valued(graph, node)

        writer.detach = {node for node in phase.reused & kept_grad if read_detached(node)}
        writer.depth = 0
        verb = "maximize" if graph.player(phase.player).sense == "maximize" else "minimize"
        times = f", {phase.repeats} times" if phase.repeats > 1 else ""
        writer.line(f"# {phase.player}: {verb} {' + '.join(t.name for t in phase.live)} over {', '.join(sorted(own))}{times}")

        def record(node: Expr, name: str) -> None:
            grad = node in phase.with_grad
            if node not in phase.local:
                kept[node] = name
                (kept_grad.add if grad else kept_grad.discard)(node)
            if grad and read_detached(node):
                writer.detach.add(node)
            else:
                writer.detach.discard(node)

        def compute(node: Expr) -> None:
            if node in partner:  # the later of a batched pair: both in one call
                first = partner[node]
                for member, name in zip((first, node), writer.assign_batched(first, node, no_grad=node not in phase.with_grad)):
                    record(member, name)
                for head in heads[node]:
                    compute(head)
                return
            if node in cut_below:
                # its graph outlives this step's backward (a later step differentiates it again);
                # its differentiated inputs enter as leaves, so the graph below them does not
                saved = {}
                for arg in node.args:
                    if arg in plan.grad_nodes and arg not in saved:
                        saved[arg] = writer.named[arg]
                        leaf = writer.names.fresh(f"{saved[arg]}_in")
                        writer.line(f"{leaf} = {saved[arg]}.detach().requires_grad_()")
                        writer.named[arg] = leaf
                        cut_leaves.append((leaf, saved[arg]))
                record(node, writer.assign(node, None, no_grad=node not in phase.with_grad))
                writer.named.update(saved)
                return
            record(node, writer.assign(node, None, no_grad=node not in phase.with_grad))

        # calls whose graph must outlive the backward: computed here, each input a named value
        cut_below = {node for node in phase.kept_graph if node in phase.computed and node.op in (Ops.APPLY, Ops.FROZEN)}
        cut_leaves: list[tuple[str, str]] = []  # (leaf, the value it was cut from)
        order = list(dict.fromkeys(phase.loss.walk()))
        uses = consumers(order)
        terms = {term.value: term.name for term in phase.live}
        pooled = {value: let for let, value in phase.pooled}

        def emitted(node: Expr) -> bool:  # written as a line of its own (else inlined where used)
            return (node.op in CALLS or node in pooled or node.op is Ops.GRADIENT_PENALTY
                    or node in terms or uses.get(node, 0) > 1)

        partner, heads = _batch_positions(phase.batched, order, emitted)
        deferred = set(partner.values()) | {head for waiting in heads.values() for head in waiting}
        for node in order:
            if node in phase.hoisted:
                compute(node)
        loop_top = None
        if phase.repeats > 1:
            writer.line(f"for _ in range({phase.repeats}):")
            writer.depth = 1
            loop_top, named_before = len(writer.lines), dict(writer.named)
        for node in order:
            if node in pooled:
                if node not in writer.named:
                    compute(node)
                source = kept.get(node, writer.named[node])
                name = writer.names.fresh(f"{pooled[node]}_pool")
                writer.line(f'{name} = pools["{phase.player}"]["{pooled[node]}"].query({source})')
                writer.named[node] = name
                continue
            if node in writer.named or node.op in (Ops.CONST, Ops.DATA, Ops.RANDOM) or node in deferred:
                continue
            if node.op in CALLS:
                compute(node)
            elif emitted(node):
                writer.assign(node, terms.get(node))
        loss = writer.assign(phase.loss, f"loss_{phase.player}") if phase.loss not in writer.named else writer.named[phase.loss]
        if loop_top is not None and cut_below:
            # only the last repeat's calls serve the later step: free the previous repeat's graph
            # of them (the calls, and the values computed from them) before this repeat's forward
            holding = [name for node, name in writer.named.items() if named_before.get(node) != name
                       and not cut_below.isdisjoint(node.walk())]
            writer.lines.insert(loop_top, _Line(" = ".join([*holding, "None"]), "the previous repeat's graph of the calls a later step reuses", False, 1))
        # a kept graph this step could not cut below (a call reused from an earlier step): keep it all
        uncut = any(node not in cut_below for node in phase.kept_graph if node.op is not Ops.HEAD)
        retain = bool(phase.kept_graph) and (uncut or not cut_leaves)
        later = [other.player for other in phases[phases.index(phase) + 1:] if other.reused & phase.kept_graph]
        for code, no_grad in _update(graph.player(phase.player), loss, f'optimizers["{phase.player}"]', f'parameters["{phase.player}"]',
                                     retain=retain, cut=() if retain else cut_leaves, reused_by=list(dict.fromkeys(later))):
            writer.line(code, no_grad)
        stats[phase.player] = f"{loss}.detach()"
        for term in phase.live:
            stats[f"{phase.player}/{term.name}"] = f"{writer.named[term.value]}.detach()"
    doc = '    """One iteration of the schedule: each player\'s step in order, a network call kept across steps while it is current, or data, to the step that reads it."""'
    returns = [f'        "{key}": {value},' for key, value in stats.items()]
    writer.depth = 0
    return "\n".join(["def iteration(nets, inputs, optimizers, parameters, pools):", doc, *prologue, *writer.body(), "    return {", *returns, "    }"])


def _batch_positions(pairs, order: list[Expr], emitted) -> tuple[dict[Expr, Expr], dict[Expr, list[Expr]]]:
    """Where each batched pair is written: at its later call, the earlier waiting with its heads.
    A pair is written as two calls instead when a line written between them reads the earlier.
    Returns {later: earlier} and {later: the earlier call's heads that wait with it}."""
    partner: dict[Expr, Expr] = {}
    heads: dict[Expr, list[Expr]] = {}
    for first, second in pairs:
        early, late = sorted((first, second), key=order.index)
        between = order[order.index(early) + 1:order.index(late)]
        waiting = [node for node in between if node.op is Ops.HEAD and node.args[0] is early]
        if not any(emitted(node) and early in set(node.walk()) for node in between if node not in waiting):
            partner[late] = early
            heads[late] = waiting
    return partner, heads


def _update(player: Player, loss: str, optimizer: str, parameters: str, retain: bool = False,
            cut: Sequence[tuple[str, str]] = (), reused_by: Sequence[str] = ()) -> list[tuple[str, bool]]:
    """The lines of one optimizer step, as (code, under no_grad); `retain` keeps the autograd graph
    for a later step that differentiates the same network calls; `cut` (leaf, value) pairs: the
    backward stops at the leaves, keeping the graph above them for the steps `reused_by`, and goes
    on from the values below, freeing their graph (phases.py).

    The gradient at the leaves is taken by `backward(inputs=leaves)` into the leaves' `.grad`, not
    by `torch.autograd.grad`: hooks that ask the engine whether it will run a leaf's node (the
    module tracker of `FlopCounterMode`) reject `autograd.grad` to a leaf, and a hand-written step
    takes its gradients by `backward` too. The leaves' `.grad` is released once it is passed on."""
    keep = ", retain_graph=True" if retain else ""
    if cut:
        leaves, values = ", ".join(leaf for leaf, _ in cut), ", ".join(value for _, value in cut)
        grads = ", ".join(f"{leaf}.grad" for leaf, _ in cut)
        later = " and ".join(f"{name}'s step" for name in reused_by) or "a later step"
        them = "it" if len(cut) == 1 else "them"
        backward = [
            (f"# {player.name}'s backward frees the graph below {leaves} but keeps the one above {them}, which {later}", False),
            (f"# differentiates again: it runs to {leaves} retaining the graph, then on from {values}", False),
            (f"torch.autograd.backward({loss}, inputs=({leaves}{',' if len(cut) == 1 else ''}), retain_graph=True)", False),
            (f"torch.autograd.backward(({loss}, {values}), (None, {grads}), inputs={parameters})", False),
            (f"{' = '.join(f'{leaf}.grad' for leaf, _ in cut)} = None", False),
        ]
    else:
        backward = [(f"{loss}.backward(inputs={parameters}{keep})", False)]
    lines = [
        (f"{optimizer}.zero_grad(set_to_none=True)", False),
        *backward,
        (f"{optimizer}.step()", False),
    ]
    if player.clip is not None:
        # the Lipschitz bound of a WGAN critic, kept by clipping after each step
        lines += [(f"torch._foreach_clamp_min_({parameters}, -{player.clip!r})", True),
                  (f"torch._foreach_clamp_max_({parameters}, {player.clip!r})", True)]
    return lines


def _tuple_valued(graph: Graph, node: Expr) -> bool:
    """A call of a network with heads returns a tuple: its heads are detached instead."""
    return node.op in (Ops.APPLY, Ops.FROZEN) and bool(graph.networks[node.arg].heads)


def emit_samples(graph: Graph, ranks: Mapping[Expr, int], hints: Mapping[Expr, str]) -> str:
    roots = [expr for _, expr in graph.samples]
    writer, prologue = _writer(graph, ranks, hints, roots)
    writer.compute([(expr, None) for expr in roots])
    rows = [f"        ({label!r}, {writer.named[expr]})," for label, expr in graph.samples]
    doc = '    """Rows of the sample grid: (label, images in [-1, 1])."""'
    return "\n".join(["@torch.no_grad()", "def samples(nets, inputs):", doc, *prologue, *writer.body(), "    return [", *rows, "    ]"])


def emit_evaluate(graph: Graph, ranks: Mapping[Expr, int], hints: Mapping[Expr, str]) -> str:
    roots = [expr for _, expr in graph.evaluate]
    writer, prologue = _writer(graph, ranks, hints, roots)
    writer.compute([(expr, name) for name, expr in graph.evaluate])
    rows = [f'        "{name}": {writer.named[expr]},' for name, expr in graph.evaluate]
    doc = '    """Held-out metrics, as the spec\'s evaluate: section defines them."""'
    return "\n".join(["@torch.no_grad()", "def evaluate(nets, inputs):", doc, *prologue, *writer.body(), "    return {", *rows, "    }"])


def emit_module(graph: Graph, plans: Mapping[str, PlayerPlan], ranks: Mapping[Expr, int], hints: Mapping[Expr, str], schedule=(),
                batchable=None) -> str:
    header = [
        f'"""Generated by lossgraph from {PurePath(graph.file).name} ({graph.name}): `lossgraph emit` prints it again."""',
        "",
        "import torch",
        "import torch.nn.functional as F",
    ]
    used = {node.op for node in graph.nodes()}
    functions = [emit_losses(graph, ranks, hints)]
    functions += [emit_step(graph, player, plans[player.name], ranks, hints) for player in (*graph.players, *graph.judges)]
    if schedule:
        functions.append(emit_iteration(graph, plans, schedule, ranks, hints, batchable))
    helpers = [name for op, name in ((Ops.FROZEN, "frozen"), (Ops.GRADIENT_PENALTY, "gradient_penalty")) if op in used]
    if any(" = batched(" in function for function in functions):
        helpers.insert(0, "batched")
    if helpers:
        header.append(f"from lossgraph.compiler.runtime import {', '.join(helpers)}")
    functions.append(emit_samples(graph, ranks, hints))
    functions.append(emit_evaluate(graph, ranks, hints))
    return "\n".join(header) + "\n\n\n" + "\n\n\n".join(functions) + "\n"
