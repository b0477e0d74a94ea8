"""The objective as IR: players, their weighted terms, and the side tables passes share.

A `Graph` is immutable. Passes return a new one through `replace` or `map_exprs`; the latter
carries origins over from each rewritten node to its replacement, so a rewritten
`-softplus(-D_Y(y))` still points at the `log D_Y(y)` the user wrote (Note [Interning versus
origins]: an interned node keeps *all* its origins, a tuple, since one node may be written in
several places).

`to_networkx` is the DAG view used by analyses; `to_sympy` the symbolic view used by `show` and
rule proofs. Both import their library lazily: this module imports neither torch, sympy nor
networkx at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from lossgraph.language.errors import Origin
from lossgraph.language.kinds import Draw, Kind
from lossgraph.language.schema import WeightSchedule
from lossgraph.compiler.expr import Expr, const
from lossgraph.compiler.ops import OPS, Ops


@dataclass(frozen=True)
class Network:
    name: str
    arch: str
    output: str                 # "raw" or "probability": how formulas read the module's logits
    options: tuple[tuple[str, Any], ...]
    out_channels: int | None
    player: str | None          # the player whose optimizer updates it
    heads: tuple[tuple[str, str], ...] = ()  # (name, "raw" | "probability"), in tuple order

    def reads_probability(self, head: str | None) -> bool:
        return dict(self.heads).get(head) == "probability" if self.heads else self.output == "probability"


@dataclass(frozen=True)
class Term:
    name: str
    weight: float
    expr: Expr                  # unweighted
    key: str                    # dotted spec path, e.g. players.G.minimize.cycle
    schedule: WeightSchedule | None = None  # a weight that changes with the iteration (then `weight` is unused)

    @property
    def weight_input(self) -> str | None:
        """The name of the scheduled weight among the step's inputs: `weight/G/ds`."""
        return None if self.schedule is None else f"weight/{self.key.split('.')[1]}/{self.name}"

    @property
    def value(self) -> Expr:
        """The term as reported: weight times expression. A scheduled weight is an input of the
        step (a WEIGHT leaf), so the code does not change as the weight does."""
        if self.schedule is not None:
            return Expr.make(Ops.MUL, Expr(Ops.WEIGHT, (), self.weight_input), self.expr)
        return self.expr if self.weight == 1.0 else Expr.make(Ops.MUL, const(self.weight), self.expr)


@dataclass(frozen=True)
class AlsoStepped:
    """A player whose networks another's step also updates (`also_steps:`): with its optimizer, the
    very object of its own step, and its clip."""

    player: str
    networks: tuple[str, ...]
    clip: float | None = None


@dataclass(frozen=True)
class Player:
    name: str
    sense: str                  # "minimize" or "maximize"
    networks: tuple[str, ...]
    terms: tuple[Term, ...]
    clip: float | None = None                       # weight clipping after each step
    pool: tuple[tuple[str, int], ...] = ()          # (let name, size): history pools in its step
    origin: Origin | None = field(default=None, compare=False)  # where the spec declares the player
    optimizer: str = ""                             # whose optimizer steps it: its own name, or the player it is a step of (step_of)
    also: tuple[AlsoStepped, ...] = ()              # players whose networks its one backward also steps (also_steps)
    fresh: frozenset[str] = frozenset()             # networks it reads as the earlier steps left them (phases.py)

    def __post_init__(self):
        if not self.optimizer:
            object.__setattr__(self, "optimizer", self.name)

    @property
    def stepped(self) -> tuple[str, ...]:
        """The networks its step differentiates and updates: its own, then those it also steps."""
        return self.networks + tuple(net for other in self.also for net in other.networks)

    @property
    def optimizers(self) -> tuple[tuple[str, float | None], ...]:
        """(player whose optimizer it is, its clip) for each optimizer the step zeroes and steps."""
        return ((self.optimizer, self.clip), *((other.player, other.clip) for other in self.also))

    @property
    def objective(self) -> Expr:
        """The sum of the weighted terms, as written (before the sign of maximize)."""
        total = self.terms[0].value
        for term in self.terms[1:]:
            total = Expr.make(Ops.ADD, total, term.value)
        return total

    @property
    def loss(self) -> Expr:
        """What this player's optimizer minimizes."""
        return Expr.make(Ops.NEG, self.objective) if self.sense == "maximize" else self.objective


@dataclass(frozen=True)
class DistributionMetric:
    """An `evaluate:` metric of the whole held-out set rather than of one batch (distributions.py):
    `fid(generated, real)` and `kid(generated, real)` compare two sets of images through a feature
    network; `diversity(outputs, draws)` is the mean feature distance between outputs for one input
    under `draws` fresh draws of the random variables."""

    name: str                   # its evaluate: key, the eval.csv column
    kind: str                   # "fid" | "kid" | "diversity"
    images: tuple[Expr, ...]    # fid, kid: (generated, real); diversity: (outputs,)
    draws: int = 0              # diversity: draws per held-out input


@dataclass(frozen=True)
class FeatureChoice:
    """The network whose features the distribution metrics compare: the FID Inception network,
    read from a weights file, or a judge's own features."""

    kind: str                   # "inception" | "judge"
    judge: str | None = None
    weights: str | None = None  # the Inception weights file, as the spec or --fid-weights gives it


@dataclass(frozen=True)
class Graph:
    name: str
    file: str
    players: tuple[Player, ...]             # schedule order
    networks: Mapping[str, Network]
    data: Mapping[str, Kind]                # name -> kind
    samples: tuple[tuple[str, Expr], ...]   # label -> image-valued expression
    evaluate: tuple[tuple[str, Expr], ...]  # metric name -> scalar expression
    random: Mapping[str, Draw] = field(default_factory=dict)         # named random draws
    random_like: Mapping[str, Expr] = field(default_factory=dict)    # draws shaped like a value
    queues: Mapping[str, tuple[int, Expr]] = field(default_factory=dict)  # queue -> (size, push formula); read as data
    origins: Mapping[Expr, tuple[Origin, ...]] = field(default_factory=dict)
    names: Mapping[Expr, str] = field(default_factory=dict)  # let-bound values: their let name
    judges: tuple[Player, ...] = ()         # networks fitted to real data before training (evaluation only)
    held_out: Mapping[str, Kind] = field(default_factory=dict)  # evaluation-only data: the dataset's held_out extras
    distributions: tuple[DistributionMetric, ...] = ()  # evaluate: metrics of the whole held-out set
    features: FeatureChoice | None = None    # what the distribution metrics compare features of
    weights: Mapping[str, WeightSchedule] = field(default_factory=dict)  # scheduled weights by input name (Term.weight_input)
    # a probability network's D(v) is written as sigmoid(logits) in the IR (passes/sigmoids.py);
    # until then its APPLY node reads as the probability itself
    sigmoids_explicit: bool = False

    def player(self, name: str) -> Player:
        return next(p for p in self.players if p.name == name)

    def roots(self) -> list[Expr]:
        out = [term.expr for player in (*self.players, *self.judges) for term in player.terms]
        out += [expr for _, expr in self.samples] + [expr for _, expr in self.evaluate]
        return out + [image for metric in self.distributions for image in metric.images]

    def nodes(self) -> list[Expr]:
        """Every distinct node, children first."""
        seen: dict[Expr, None] = {}
        for root in self.roots():
            for node in root.walk():
                seen.setdefault(node, None)
        return list(seen)

    def origin(self, node: Expr) -> Origin | None:
        found = self.origins.get(node)
        return found[0] if found else None

    def map_exprs(self, rule: Callable[[Expr], Expr | None]) -> "Graph":
        """Rebuild every expression bottom-up with `rule`, carrying origins and names along.

        A node whose children changed is rebuilt, and the rebuilt node (and whatever `rule`
        turns it into) inherits the original's origins and name.
        """
        origins = dict(self.origins)
        names = dict(self.names)
        done: dict[Expr, Expr] = {}

        def rebuild(root: Expr) -> Expr:
            for node in root.walk():
                if node in done:
                    continue
                args = tuple(done[child] for child in node.args)
                result = node if args == node.args else node.replace(args=args)
                replacement = rule(result)
                if replacement is not None:
                    result = replacement
                if result is not node:
                    inherited = origins.get(node, ())
                    if inherited:
                        origins[result] = tuple(dict.fromkeys(origins.get(result, ()) + inherited))
                    if node in names:
                        names.setdefault(result, names[node])
                done[node] = result
            return done[root]

        def rebuild_player(player: Player) -> Player:
            return replace(player, terms=tuple(replace(term, expr=rebuild(term.expr)) for term in player.terms))

        return replace(
            self,
            players=tuple(rebuild_player(player) for player in self.players),
            judges=tuple(rebuild_player(judge) for judge in self.judges),
            samples=tuple((label, rebuild(expr)) for label, expr in self.samples),
            evaluate=tuple((name, rebuild(expr)) for name, expr in self.evaluate),
            distributions=tuple(replace(metric, images=tuple(rebuild(image) for image in metric.images))
                                for metric in self.distributions),
            random_like=MappingProxyType({name: rebuild(expr) for name, expr in self.random_like.items()}),
            queues=MappingProxyType({name: (size, rebuild(expr)) for name, (size, expr) in self.queues.items()}),
            origins=MappingProxyType(origins),
            names=MappingProxyType(names),
        )

    # -- views ------------------------------------------------------------------------------

    def to_networkx(self):
        """The DAG: an edge from each argument to its user; `params:NET` feeds NET's calls."""
        import networkx as nx

        dag = nx.DiGraph()
        for node in self.nodes():
            dag.add_node(node)
            for child in node.args:
                dag.add_edge(child, node)
            if node.op is Ops.APPLY:
                dag.add_edge(f"params:{node.arg}", node)
        return dag


def differentiated(root: Expr) -> frozenset[Expr]:
    """The nodes under `root` that a `grad` differentiates: those between a grad's variable (its
    LEAF) and the grad, the variable included. They run with autograd wherever they are computed,
    on that very variable, so a step computes them itself (phases.py) and a network among them has
    its gradient differentiated again (accelerate.py: not compiled)."""
    found: set[Expr] = set()
    for node in root.walk():
        if node.op is Ops.GRAD:
            out, leaf = node.args
            reached = {leaf}
            for inner in out.walk():  # children first: a node reaches the leaf through a child
                if any(child in reached for child in inner.args):
                    reached.add(inner)
            found |= reached
    return frozenset(found)


def to_sympy(expr: Expr):
    """The sympy form of `expr`, evaluated (for proofs; `show.py` renders unevaluated forms).
    Networks become undefined functions, data become symbols."""
    import sympy as sp

    done: dict[Expr, Any] = {}
    for node in expr.walk():
        args = [done[child] for child in node.args]
        if node.op is Ops.CONST:
            value = node.arg
            done[node] = sp.Integer(int(value)) if float(value).is_integer() and abs(value) < 1e15 else sp.Float(value)
        elif node.op in (Ops.DATA, Ops.RANDOM, Ops.WEIGHT):
            done[node] = sp.Symbol(str(node.arg))
        elif node.op in (Ops.APPLY, Ops.FROZEN):
            done[node] = sp.Function(f"{node.arg}")(*args) if args else sp.Symbol(node.arg)
        elif node.op is Ops.HEAD:
            inner = node.args[0]
            done[node] = sp.Function(f"{inner.arg}.{node.arg[0]}")(*[done[a] for a in inner.args])
        else:
            done[node] = OPS[node.op].sympy(sp, *args)
    return done[expr]


def consumers(nodes: Iterable[Expr]) -> dict[Expr, int]:
    """How many times each node is used as an argument among `nodes`."""
    counts: dict[Expr, int] = {}
    for node in nodes:
        for child in node.args:
            counts[child] = counts.get(child, 0) + 1
    return counts
