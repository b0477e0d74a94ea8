"""Spec to IR: parse every formula, inline `let:` bindings, check names and call arities.

Each formula is parsed against a scope that knows the spec's data, lets and networks. A let is parsed the
first time it is used and then shared (interning makes every use the same node); a let that reaches itself
is a cycle, reported with the chain. Every problem in every formula is collected before one `SpecError`.

The IR produced here is the objective *as written*: a probability network's `D(v)` is still a
plain application. `insert_sigmoids` (the next pass) makes the sigmoid explicit.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from lossgraph.language.errors import FormulaError, Origin, Problem, Problems, SpecError, did_you_mean
from lossgraph.compiler.expr import Expr, transform
from lossgraph.compiler.distributions import FORMS, lower_evaluate, refuse_nested
from lossgraph.compiler.formula import NetworkRef, Site, parse
from lossgraph.compiler.passes.calls import freeze, share_variables
from lossgraph.compiler.passes.losses import check_loss
from lossgraph.language.macros import Macro, parse_signature, standard_library
from lossgraph.compiler.graph import AlsoStepped, Graph, Network, Player, Term
from lossgraph.language.kinds import SOURCE_CALL, Kind
from lossgraph.compiler.ops import BUILTINS, Ops
from lossgraph.language.spec import Spec

RESERVED = frozenset({"E"} | set(BUILTINS) | set(FORMS))  # a formula's own; generated code's names are free (codegen renames)


def check_reserved(spec: Spec) -> None:
    """Refuse data, networks, random variables and lets named E or like a builtin; a network may be
    named E (BicycleGAN's encoder): E(...) is a call and E[...] the expectation."""
    problems = Problems()
    for section, what in (("data", "data"), ("networks", "network"), ("random", "random variable"), ("let", "let")):
        for name in getattr(spec, section):
            if name in RESERVED and not (what == "network" and name == "E"):
                problems.add(f"{what} name '{name}' is reserved", spec.source.origin((section, name), at_key=True), "choose another name")
    problems.raise_if_any(SpecError)


def held_out_kinds(spec: Spec) -> dict[str, Kind]:
    """The dataset's evaluation-only extras (`dataset.held_out:`) that `evaluate:` and `samples:`
    may name, with the kind each has: a function of an image and a label (`restyle(x, c_t)`) is
    an image like that one; a function of an image alone (`shape(x_t)`) is a label whose class
    count is known only once the data opens (0 here). A name the spec already draws under
    `random:` stays that draw, which held-out data replaces at evaluation (StarGAN's `c_t`).
    The dataset checks the functions themselves when it opens."""
    extras = spec.dataset.get("held_out") if isinstance(spec.dataset, dict) else None
    kinds: dict[str, Kind] = {}
    for name, text in (extras or {}).items() if isinstance(extras, dict) else ():
        match = SOURCE_CALL.match(text) if isinstance(text, str) else None
        if not isinstance(name, str) or match is None or name in spec.random or name in spec.data:
            continue
        image = spec.kinds.get(match.group(2))
        if match.group(3) and image is not None and image.kind == "image":
            kinds[name] = image
        elif not match.group(3):
            kinds[name] = Kind("label", 0)
    return kinds


class SpecScope:
    """Names as the spec declares them."""

    def __init__(self, spec: Spec, origins: dict[Expr, list[Origin]]):
        self.spec = spec
        self.origins = origins
        self.macros: dict[str, Macro] = {**standard_library(), **spec_macros(spec)}
        self.expanding: list[str] = []   # macros being expanded, to refuse recursion
        self.draws = 0                   # random draws written in formulas so far (interpolate)
        self.lets: dict[str, Expr] = {}
        self.resolving: list[str] = []
        self.broken: set[str] = set()  # lets whose problem is already reported
        self.arity: dict[str, tuple[int, Origin | None]] = {}
        self.held_out = held_out_kinds(spec)

    def site(self, path: tuple, text: str) -> Site:
        source = self.spec.source
        return Site(text, lambda span: source.origin(path, span), self.origins)

    # -- Scope protocol -----------------------------------------------------------------------

    def name(self, name: str, where: Site, span: tuple[int, int]) -> Expr:
        spec = self.spec
        if name in spec.data:
            return Expr(Ops.DATA, (), name)
        if name in spec.random:
            return Expr(Ops.RANDOM, (), name)
        if name in spec.let:
            return self.let(name, where, span)
        if name in self.held_out:
            return Expr(Ops.DATA, (), name)  # evaluation-only: `check_losses` keeps it out of losses
        if name in spec.queues:
            return Expr(Ops.DATA, (), name)  # the trainer's queue, an input of the step (language/queues.py)
        if name in spec.networks:
            raise where.error(f"network '{name}' must be applied to its inputs", span, f"write {name}(...)")
        if name in BUILTINS:
            raise where.error(f"'{name}' is a function", span, f"write {name}(...)")
        known = list(spec.data) + list(spec.random) + list(spec.let) + list(self.held_out) + list(spec.queues)
        raise where.error(f"unknown name '{name}'", span, did_you_mean(name, known + list(spec.networks)))

    def call(self, name: str, head: str | None, args: list[Expr], where: Site, span: tuple[int, int]) -> Expr | None:
        if name not in self.spec.networks:
            if head is not None:
                raise where.error(f"unknown network '{name}'", span, did_you_mean(name, self.spec.networks))
            return None
        heads = list(self.spec.networks[name].heads or ())
        if head is not None and head not in heads:
            hint = did_you_mean(head, heads) if heads else f"write {name}(...)"
            raise where.error(f"network '{name}' has no head '{head}'", span, hint)
        if head is None and heads:
            raise where.error(f"network '{name}' has heads {', '.join(heads)}: choose one", span, f"write {name}.{heads[0]}(...)")
        if not args:
            raise where.error(f"network '{name}' needs at least one input", span)
        known = self.arity.get(name)
        if known is None:
            self.arity[name] = (len(args), where.origin(span))
        elif known[0] != len(args):
            first = f" at {known[1].file}:{known[1].line}:{known[1].col}" if known[1] else ""
            raise where.error(f"network '{name}' applied to {len(args)} inputs here but {known[0]}{first}", span)
        call = Expr(Ops.APPLY, tuple(args), name)
        if head is None:
            return call
        # two heads of one network on one input share this APPLY node: one forward, written where
        # each head is (the parser records the head; the call is recorded here)
        where.record(call, span)
        return Expr(Ops.HEAD, (call,), (head, heads.index(head)))

    def callables(self) -> list[str]:
        return list(self.spec.networks) + list(self.macros)

    # -- macros ---------------------------------------------------------------------------------

    def is_macro(self, name: str) -> bool:
        return name in self.macros or (name in FORMS and name not in self.spec.networks)

    def network_ref(self, name: str) -> NetworkRef | None:
        return NetworkRef(name) if name in self.spec.networks else None

    def expand(self, name: str, args: list, where: Site, span: tuple[int, int]) -> Expr:
        if name in FORMS and name not in self.macros:
            raise where.error(refuse_nested(name), span)
        macro = self.macros[name]
        if len(args) != len(macro.params):
            raise where.error(f"macro {name}({', '.join(macro.params)}) takes {len(macro.params)} arguments, got {len(args)}", span)
        if name in self.expanding:
            raise where.error(f"macro '{name}' expands into itself: {' -> '.join(self.expanding + [name])}", span)
        self.expanding.append(name)
        try:
            scope = MacroScope(self, macro, dict(zip(macro.params, args)))
            site = Site(macro.body, macro.locate, self.origins)
            try:
                return parse(macro.body, scope, site)
            except FormulaError as error:
                inner = error.problems[0] if error.problems else None
                message = f"in macro '{name}': {inner.message}" if inner else f"in macro '{name}'"
                raise FormulaError([Problem(message, where.origin(span), inner.hint if inner else None), *error.problems[:1]]) from None
        finally:
            self.expanding.pop()

    def draw(self, name: str) -> str:
        """A random draw written in a formula (`interpolate`): named by its order in the spec, so
        each written draw is its own and the generated code is the same on every compile."""
        self.draws += 1
        return f"{name}{self.draws}"

    # -- lets -----------------------------------------------------------------------------------

    def let(self, name: str, where: Site, span: tuple[int, int]) -> Expr:
        if name in self.lets:
            return self.lets[name]
        if name in self.broken:
            # NOTE: reported once, at the let; a use of a broken let adds no problem of its own,
            # or one typo in `fake_y` would be repeated for every term that uses it.
            raise FormulaError(())
        if name in self.resolving:
            chain = " -> ".join(self.resolving[self.resolving.index(name):] + [name])
            raise where.error(f"let binding '{name}' refers to itself: {chain}", span)
        if self.resolving:
            raise _Unresolved(name)  # while resolving: parsed first by `resolve`'s stack
        self.resolve(name)
        return self.lets[name]

    def resolve(self, name: str) -> None:
        """Parse let `name` and, first, every let it uses.

        Note [Flat let resolution]: parsing a let inside the parse of the let that uses it would
        nest the parser once per link, so a chain of a few hundred lets (`a0: a1 + x`,
        `a1: a2 + x`, ...) ran out of Python's recursion limit. Instead a use of an unparsed let
        stops the parse (`_Unresolved`); the let goes on an explicit stack, is parsed, and the
        user is parsed again. `resolving` is that stack, so a cycle is a name already on it.
        """
        stack = self.resolving
        stack.append(name)
        try:
            while stack:
                current = stack[-1]
                text = self.spec.let[current]
                try:
                    self.lets[current] = parse(text, self, self.site(("let", current), text))
                except _Unresolved as needed:
                    stack.append(needed.name)
                    continue
                stack.pop()
        except FormulaError:
            self.broken.update(stack)  # the failed let and every let waiting on it
            raise
        finally:
            stack.clear()


class MacroScope:
    """A macro body's names: its parameters (values or networks) and the builtins, nothing else."""

    def __init__(self, parent: SpecScope, macro: Macro, bindings: dict):
        self.parent = parent
        self.macro = macro
        self.bindings = bindings

    def name(self, name: str, where: Site, span: tuple[int, int]) -> Expr:
        bound = self.bindings.get(name)
        if isinstance(bound, NetworkRef):
            raise where.error(f"network parameter '{name}' must be applied", span, f"write {name}(...)")
        if bound is not None:
            return bound
        raise where.error(f"unknown name '{name}' in macro '{self.macro.name}'", span, did_you_mean(name, self.macro.params))

    def call(self, name: str, head: str | None, args: list[Expr], where: Site, span: tuple[int, int]) -> Expr | None:
        bound = self.bindings.get(name)
        if bound is None:
            return None
        if not isinstance(bound, NetworkRef):
            raise where.error(f"parameter '{name}' is a value here, not a network", span)
        if head is not None and bound.head is not None:
            raise where.error(f"'{name}' is already the head {bound.name}.{bound.head}", span)
        return self.parent.call(bound.name, head or bound.head, args, where, span)

    def callables(self) -> list[str]:
        return [name for name, bound in self.bindings.items() if isinstance(bound, NetworkRef)] + list(self.parent.macros)

    def is_macro(self, name: str) -> bool:
        return name not in self.bindings and self.parent.is_macro(name)

    def network_ref(self, name: str) -> NetworkRef | None:
        bound = self.bindings.get(name)
        return bound if isinstance(bound, NetworkRef) else None

    def expand(self, name: str, args: list, where: Site, span: tuple[int, int]) -> Expr:
        return self.parent.expand(name, args, where, span)

    def draw(self, name: str) -> str:
        return self.parent.draw(name)


def spec_macros(spec: Spec) -> dict[str, Macro]:
    """The spec's own `macros:`, each able to point into the spec file."""
    macros = {}
    for key, body in spec.macros.items():
        name, params = parse_signature(key)
        path = ("macros", key)
        macros[name] = Macro(name, params, body, lambda span, path=path: spec.source.origin(path, span))
    return macros


class _Unresolved(Exception):
    """A let used before it was parsed (Note [Flat let resolution])."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def lower(spec: Spec) -> Graph:
    check_reserved(spec)  # first: formulas that use such a name would only add confusing errors
    origins: dict[Expr, list[Origin]] = {}
    scope = SpecScope(spec, origins)
    problems = Problems()

    def formula(path: tuple, text: str) -> Expr | None:
        try:
            return parse(text, scope, scope.site(path, text))
        except FormulaError as error:
            problems.extend(error)
            return None

    for name in spec.let:  # every let is checked, used or not
        try:
            scope.let(name, scope.site(("let", name), spec.let[name]), (0, 1))
        except FormulaError as error:
            problems.extend(error)

    owner = {net: name for name, player in spec.players.items() for net in player.networks}
    let_names = {expr: name for name, expr in scope.lets.items() if expr.op not in (Ops.DATA, Ops.CONST)}
    players = []
    for player_name in spec.order:
        player = spec.players[player_name]
        terms = []
        for term_name, term in player.terms.items():
            raw = (player.maximize if player.sense == "maximize" else player.minimize)[term_name]
            path = ("players", player_name, player.sense, term_name) + (() if isinstance(raw, str) else ("expr",))
            expr = formula(path, term.expr)
            if expr is not None and term.updates is not None:
                expr = freeze(expr, set(spec.stepped_networks(player_name)) - set(term.updates), origins, let_names)
            if expr is not None:
                scheduled = term.weight if not isinstance(term.weight, (int, float)) else None
                terms.append(Term(term_name, 1.0 if scheduled else term.weight, expr, ".".join(str(p) for p in path[:4]), scheduled))
        clip = spec.players[player.step_of or player_name].clip  # a step of another player clips as it does
        players.append(Player(player_name, player.sense, tuple(player.networks), tuple(terms), clip, tuple(player.pool.items()),
                              spec.source.origin(("players", player_name, player.sense), at_key=True), player.step_of or player_name,
                              tuple(AlsoStepped(o, tuple(spec.players[o].networks), spec.players[o].clip) for o in player.also_steps), frozenset(player.fresh)))

    judges = []
    for name, judge in spec.judges.items():
        path = ("judges", name, "minimize")
        expr = formula(path, judge.minimize)
        if expr is not None:
            judges.append(Player(name, "minimize", (name,), (Term("fit", 1.0, expr, ".".join(path)),)))

    for player in (*players, *judges):
        for term in player.terms:
            check_loss(term, scope.held_out, origins, spec, problems)
    shared = share_variables([term.expr for player in (*players, *judges) for term in player.terms], origins)
    players = [replace(player, terms=tuple(replace(term, expr=shared[term.expr]) for term in player.terms)) for player in players]
    judges = [replace(judge, terms=tuple(replace(term, expr=shared[term.expr]) for term in judge.terms)) for judge in judges]

    random_like = {}
    for name, draw in spec.draws.items():
        if draw.like is None:
            continue
        offset = draw.like_offset
        site = Site(draw.like, lambda span, name=name, offset=offset: spec.source.origin(("random", name), (span[0] + offset, span[1] + offset)), origins)
        try:
            expr = parse(draw.like, scope, site)
        except FormulaError as error:
            problems.extend(error)
            continue
        drawn = [n.arg for n in expr.walk() if n.op is Ops.RANDOM and spec.draws[n.arg].like is not None]
        if drawn:
            problems.add(f"'{name}' is shaped like a value that uses '{drawn[0]}', itself shaped like another value", spec.source.origin(("random", name)), "shape it like data or a network's output")
            continue
        random_like[name] = expr

    def without_gradients(path: tuple, expr: Expr | None) -> Expr | None:
        """Samples and metrics run without autograd, which a grad needs."""
        found = next((node for node in expr.walk() if node.op is Ops.GRAD), None) if expr is not None else None
        if found is None:
            return expr
        written = origins.get(found)
        problems.add("grad needs autograd, which samples: and evaluate: run without", written[0] if written else spec.source.origin(path),
                     "use grad in a player's term")
        return None

    def queue_read(expr: Expr | None, path: tuple, what: str, hint: str) -> Expr | None:
        """A queue is filled by the trainer for the steps: samples, metrics and pushes do not see it."""
        found = next((node for node in expr.walk() if node.op is Ops.DATA and node.arg in spec.queues), None) if expr is not None else None
        if found is None:
            return expr
        # at the entry: the name's node is shared with the losses that read it, whose place it records first
        problems.add(f"queue '{found.arg}' is read by losses only, not by {what}", spec.source.origin(path), hint)
        return None

    queues = {}
    for name, queue in spec.queues.items():
        path = ("queues", name, "push")
        expr = queue_read(formula(path, queue.push), path, "a push formula", "push the values themselves, e.g. C_ema.style(x_tf)")
        if expr is not None:
            queues[name] = (queue.size, expr)

    samples = []
    for index, text in enumerate(spec.samples):
        expr = without_gradients(("samples", index), formula(("samples", index), text))
        expr = queue_read(expr, ("samples", index), "samples:", "show what it is pushed from instead")
        if expr is not None:
            samples.append((text.strip(), expr))
    # evaluate, distributions, features; grad is refused where autograd is off
    evaluated = lower_evaluate(spec, scope, lambda path, text: queue_read(without_gradients(path, formula(path, text)), path, "evaluate:", "evaluate what it is pushed from instead"), problems)
    problems.raise_if_any(SpecError)

    networks = {
        name: Network(name, net.arch, net.output, tuple(sorted(net.options.items())), net.out_channels, owner.get(name), tuple((net.heads or {}).items()))
        for name, net in spec.networks.items()
    }
    return Graph(
        name=spec.name,
        file=spec.path or "<spec>",
        players=tuple(players),
        networks=MappingProxyType(networks),
        data=MappingProxyType(spec.kinds),
        random=MappingProxyType(spec.draws),
        random_like=MappingProxyType(random_like),
        queues=MappingProxyType(queues),
        samples=tuple(samples),
        **evaluated,
        judges=tuple(judges),
        held_out=MappingProxyType(scope.held_out),
        weights=MappingProxyType({term.weight_input: term.schedule for player in players for term in player.terms if term.schedule}),
        origins=MappingProxyType({node: tuple(found) for node, found in origins.items()}),
        names=MappingProxyType(let_names),
    )
