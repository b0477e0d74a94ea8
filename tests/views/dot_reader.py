"""A small reader of the DOT language, enough to check what `lossgraph graph -o x.dot` writes.

It follows the grammar of Graphviz's DOT language (graphviz.org/doc/info/lang.html): a graph of
statements (node, edge, attribute, `ID = ID`, subgraphs), IDs as names, numerals, quoted strings
with `\\"` and HTML-like strings in balanced `<...>`, and `//`, `/* */` and `#` comments. Anything
else is a `DotSyntaxError` naming the offset, so a test that reads a file back checks that it
parses. HTML-like labels are also checked to be well-formed XML, as Graphviz requires.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

KEYWORDS = {"strict", "graph", "digraph", "node", "edge", "subgraph"}
_NAME = re.compile(r"[A-Za-z_\u0080-\uffff][A-Za-z_0-9\u0080-\uffff]*")
_NUMERAL = re.compile(r"-?(\.[0-9]+|[0-9]+(\.[0-9]*)?)")


class DotSyntaxError(ValueError):
    pass


@dataclass
class Html:
    """An HTML-like string: `<...>` in the source, its text without the outer brackets."""

    text: str


@dataclass
class DotGraph:
    name: str | None
    directed: bool
    attributes: dict[str, object] = field(default_factory=dict)
    nodes: dict[str, dict[str, object]] = field(default_factory=dict)       # in order of first mention
    edges: list[tuple[str, str, dict[str, object]]] = field(default_factory=list)
    ranks: list[tuple[str, list[str]]] = field(default_factory=list)       # (rank=..., node ids) of subgraphs


def escstring(text: str) -> str:
    """A label's or tooltip's text as Graphviz draws it: `\\\\` a backslash, `\\n` `\\l` `\\r` line ends."""
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "l": "\n", "r": "\n"}.get(m.group(1), m.group(1)), text)


def _tokens(source: str) -> list[tuple[str, object, int]]:
    out: list[tuple[str, object, int]] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        line_start = i == 0 or source[i - 1] == "\n"
        if c.isspace():
            i += 1
        elif source.startswith("//", i) or (c == "#" and line_start):
            i = source.find("\n", i) if "\n" in source[i:] else n
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            if end < 0:
                raise DotSyntaxError(f"unclosed comment at {i}")
            i = end + 2
        elif source.startswith("->", i) or source.startswith("--", i):
            out.append(("op", source[i:i + 2], i))
            i += 2
        elif c in "{}[];,=:":
            out.append(("punct", c, i))
            i += 1
        elif c == '"':
            j, text = i + 1, []
            while True:
                if j >= n:
                    raise DotSyntaxError(f"unclosed string at {i}")
                if source[j] == "\\" and j + 1 < n and source[j + 1] == '"':
                    text.append('"')
                    j += 2
                elif source[j] == '"':
                    break
                else:
                    text.append(source[j])
                    j += 1
            out.append(("id", "".join(text), i))
            i = j + 1
        elif c == "<":
            depth, j = 0, i
            while j < n:
                depth += {"<": 1, ">": -1}.get(source[j], 0)
                if depth == 0:
                    break
                j += 1
            if depth:
                raise DotSyntaxError(f"unbalanced HTML string at {i}")
            text = source[i + 1:j]
            try:
                ElementTree.fromstring(f"<html>{text}</html>")
            except ElementTree.ParseError as error:
                raise DotSyntaxError(f"HTML-like label at {i} is not well-formed: {error}") from None
            out.append(("id", Html(text), i))
            i = j + 1
        else:
            match = _NAME.match(source, i) or _NUMERAL.match(source, i)
            if not match:
                raise DotSyntaxError(f"unexpected {c!r} at {i}")
            word = match.group(0)
            out.append(("keyword" if word.lower() in KEYWORDS else "id", word, i))
            i = match.end()
    return out


class _Reader:
    def __init__(self, source: str):
        self.tokens = _tokens(source)
        self.at = 0

    def peek(self, kind: str | None = None, value: object = None) -> bool:
        if self.at >= len(self.tokens):
            return False
        token_kind, token_value, _ = self.tokens[self.at]
        return (kind is None or token_kind == kind) and (value is None or token_value == value)

    def take(self, kind: str, value: object = None):
        if not self.peek(kind, value):
            where = self.tokens[self.at][2] if self.at < len(self.tokens) else "the end"
            found = self.tokens[self.at][1] if self.at < len(self.tokens) else "nothing"
            raise DotSyntaxError(f"expected {value or kind} at {where}, found {found!r}")
        self.at += 1
        return self.tokens[self.at - 1][1]

    def graph(self) -> DotGraph:
        if self.peek("keyword", "strict"):
            self.take("keyword")
        kind = self.take("keyword")
        if kind not in ("graph", "digraph"):
            raise DotSyntaxError(f"a DOT file starts with graph or digraph, not {kind}")
        name = self.take("id") if self.peek("id") else None
        result = DotGraph(name, kind == "digraph")
        self.take("punct", "{")
        self.statements(result, [])
        self.take("punct", "}")
        if self.at != len(self.tokens):
            raise DotSyntaxError(f"text after the graph at {self.tokens[self.at][2]}")
        return result

    def statements(self, graph: DotGraph, members: list[str]) -> dict[str, object]:
        own: dict[str, object] = {}
        while not self.peek("punct", "}"):
            self.statement(graph, members, own)
            if self.peek("punct", ";"):
                self.take("punct")
        return own

    def attributes(self) -> dict[str, object]:
        found: dict[str, object] = {}
        while self.peek("punct", "["):
            self.take("punct")
            while not self.peek("punct", "]"):
                key = self.take("id")
                self.take("punct", "=")
                found[str(key)] = self.take("id")
                if self.peek("punct", ",") or self.peek("punct", ";"):
                    self.take("punct")
            self.take("punct", "]")
        return found

    def operand(self, graph: DotGraph, members: list[str]) -> list[str]:
        if self.peek("keyword", "subgraph") or self.peek("punct", "{"):
            return self.subgraph(graph)
        name = str(self.take("id"))
        if self.peek("punct", ":"):  # a port
            self.take("punct")
            self.take("id")
        graph.nodes.setdefault(name, {})
        members.append(name)
        return [name]

    def subgraph(self, graph: DotGraph) -> list[str]:
        if self.peek("keyword", "subgraph"):
            self.take("keyword")
            if self.peek("id"):
                self.take("id")
        self.take("punct", "{")
        inner: list[str] = []
        own = self.statements(graph, inner)
        self.take("punct", "}")
        if "rank" in own:
            graph.ranks.append((str(own["rank"]), inner))
        return inner

    def statement(self, graph: DotGraph, members: list[str], own: dict[str, object]) -> None:
        if self.peek("keyword", "graph") or self.peek("keyword", "node") or self.peek("keyword", "edge"):
            which = self.take("keyword")
            values = self.attributes()
            if which == "graph" and not members and graph.nodes == {}:
                graph.attributes.update(values)
            return
        if self.peek("id") and self.at + 1 < len(self.tokens) and self.tokens[self.at + 1][1] == "=":
            key = self.take("id")
            self.take("punct", "=")
            own[str(key)] = self.take("id")
            return
        left = self.operand(graph, members)
        if not self.peek("op"):  # a node statement, or a subgraph on its own
            values = self.attributes()
            for name in left if values else ():
                graph.nodes[name].update(values)
            return
        chain = [left]
        while self.peek("op"):
            op = self.take("op")
            if op != ("->" if graph.directed else "--"):
                raise DotSyntaxError(f"'{op}' in a {'digraph' if graph.directed else 'graph'}")
            chain.append(self.operand(graph, members))
        values = self.attributes()
        for sources, targets in zip(chain, chain[1:]):
            for source in sources:
                for target in targets:
                    graph.edges.append((source, target, dict(values)))


def read_dot(source: str) -> DotGraph:
    """The graph of DOT `source`; a `DotSyntaxError` where it does not follow the grammar."""
    return _Reader(source).graph()
