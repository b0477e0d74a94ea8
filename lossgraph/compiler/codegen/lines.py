"""The lines of a generated function, each with the spec line it came from.

A `Body` collects lines with their indentation (a repeated step's loop) and whether they run
without autograd; consecutive such lines share one `with torch.no_grad():` block. Every line that
computes a value says where the spec wrote it: `# cyclegan.yaml:24 players.D.minimize.adv_Y`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath

from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph
from lossgraph.compiler.ops import Ops
from lossgraph.language.errors import Origin


@dataclass
class Line:
    code: str
    comment: str = ""
    no_grad: bool = False
    depth: int = 0  # extra indentation (a repeated step's loop body, a block's body)


@dataclass
class Body:
    lines: list[Line] = field(default_factory=list)
    depth: int = 0  # indentation of the lines being added

    def add(self, code: str, comment: str = "", no_grad: bool = False, depth: int = 0) -> None:
        self.lines.append(Line(code, comment, no_grad, self.depth + depth))

    def text(self, indent: str = "    ") -> list[str]:
        out: list[str] = []
        block: int | None = None  # depth of the open `with torch.no_grad():` block
        for line in self.lines:
            if line.no_grad and (block is None or line.depth < block):
                out.append(f"{indent}{'    ' * line.depth}with torch.no_grad():")
                block = line.depth
            elif not line.no_grad:
                block = None
            pad = indent + "    " * line.depth + ("    " if line.no_grad else "")
            out.append(f"{pad}{line.code}  # {line.comment}" if line.comment else f"{pad}{line.code}")
        return out


def origin_comment(graph: Graph, node: Expr, prefer: str | None = None, fallback: Expr | None = None) -> str:
    """`file:line key (+n more)` for where the spec wrote `node`: a let-bound value at its let; else
    under the spec key `prefer` (`players.D.`: an interned node may be written by several players,
    or by a judge and a metric); else wherever; a node the spec did not write itself (a lowering's
    intermediate) points at `fallback`, the value it serves."""
    origins = _origins(graph, node) or (_origins(graph, fallback) if fallback is not None else ())
    if not origins:
        return ""
    let = f"let.{graph.names[node]}" if node in graph.names else None
    first = (next((o for o in origins if let and o.key == let), None)
             or next((o for o in origins if prefer and o.key.startswith(prefer)), None) or origins[0])
    more = f" (+{len(origins) - 1} more)" if len(origins) > 1 else ""
    return f"{PurePath(first.file).name}:{first.line} {first.key}{more}"


def _origins(graph: Graph, node: Expr) -> tuple[Origin, ...]:
    found = graph.origins.get(node) or ()
    if not found and node.op is Ops.MUL and node.args[0].op in (Ops.CONST, Ops.WEIGHT):
        found = graph.origins.get(node.args[1]) or ()  # a weighted term: its formula
    return tuple(found)


def player_comment(origin: Origin | None) -> str:
    """`file:line players.D.minimize`: where the spec declares the objective a loss line sums."""
    return f"{PurePath(origin.file).name}:{origin.line} {origin.key}" if origin is not None else ""
