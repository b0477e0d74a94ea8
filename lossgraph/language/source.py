"""YAML text to plain Python data, keeping the position of every key and value.

`Source.parse(text, file)` composes the document with PyYAML's *safe* loader (no tags that build
Python objects), then walks the node tree into dicts, lists and scalars. Positions go to side
tables keyed by the dotted path of each value, so the data stays plain for pydantic while any
error can point back at `file:line:col`. `Layered` lays one source's positions over another's
(a spec over the one it `extends:`, an override over the spec), so each value is located in the
text that wrote it.

Note [Formula columns]: a formula's `ast` columns count characters of the scalar's *value*.
To find the file column we align the value with the raw text of the scalar: the n-th
non-blank character of the value is the n-th non-blank character of the raw text after the
opening quote or the block-scalar header. That holds for plain, quoted, literal (`|`) and
folded (`>`) scalars alike, since YAML only changes blanks and line breaks when it folds.

Hostile input is bounded: file size, node count (alias expansion cannot explode) and nesting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from lossgraph.language.errors import Origin, Problem, SpecError

MAX_BYTES = 1_000_000
MAX_NODES = 100_000
MAX_DEPTH = 64
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_ESCAPES = yaml.scanner.Scanner.ESCAPE_REPLACEMENTS  # `\t` -> tab, as PyYAML reads them
_HEX_ESCAPES = yaml.scanner.Scanner.ESCAPE_CODES  # `\x` -> 2 hex digits, `\u` 4, `\U` 8

Path = tuple  # a dotted key path as a tuple of str keys and int indices


# PyYAML's words for the usual slips in a spec, and the fix (checked in order; the first that
# the problem contains gives the hint)
_YAML_HINTS = (
    ("'\\t' that cannot start any token", "YAML indents with spaces only: replace the tab with spaces"),
    ("expected ',' or '}'", 'inside {...} a formula needs quotes: {weight: 10, expr: "E[l1(a - b)]"}'),
    ("expected ',' or ']'", "inside [...] a value holding brackets, ':' or ',' needs quotes"),
    ("mapping values are not allowed here",
     'quote a value that holds ": " (adv: "E[...]"), or indent this line as the keys beside it'),
    ("expected <block end>", "indent this line as the keys beside it, with spaces"),
)


def _yaml_hint(problem: str | None) -> str | None:
    return next((hint for words, hint in _YAML_HINTS if problem and words in problem), None)


@dataclass(frozen=True)
class Span:
    """Where a YAML node sits in the file (0-based marks, as PyYAML gives them)."""

    line: int
    col: int
    index: int
    end_index: int
    style: str | None  # None for plain scalars and collections, or one of ' " | >


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Source:
    """A parsed spec file: its data plus the position of every key and value."""

    def __init__(self, text: str, file: str):
        self.text = text
        self.file = file
        self.lines = text.splitlines()
        self.values: dict[Path, Span] = {}
        self.keys: dict[Path, Span] = {}
        self.strings: dict[Path, str] = {}  # string scalars, to map spans inside them
        self._nodes = 0

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, file: str) -> tuple["Source", Any]:
        source = cls(text, file)
        if len(text.encode("utf-8", "replace")) > MAX_BYTES:
            raise SpecError(Problem(f"spec file is larger than {MAX_BYTES} bytes; is this really a spec?", source._origin_at(0, 0, 1)))
        loader = None
        try:
            loader = yaml.SafeLoader(text)  # checks the characters already: inside the try
            node = loader.get_single_node()
            if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null" and not node.value):
                raise SpecError(Problem("the spec file is empty", Origin(file, 1, 1), "a spec is a mapping with keys such as name, networks, players"))
            data = source._walk(node, (), loader, 0)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            problem = error.problem or error.context
            if error.context_mark is not None and error.problem and mark.line >= len(source.lines):
                # at the end of the file there is no line to show: point where the unfinished thing starts
                mark, problem = error.context_mark, f"{error.problem} {error.context}"
            raise SpecError(Problem(f"invalid YAML: {problem}", source._origin_at(mark.line, mark.column, 1),
                                    _yaml_hint(problem))) from None
        except yaml.reader.ReaderError as error:
            line = text.count("\n", 0, error.position)
            col = error.position - (text.rfind("\n", 0, error.position) + 1)
            what = f"U+{error.character:04X}" if isinstance(error.character, int) else repr(error.character)
            raise SpecError(Problem(f"invalid YAML: character {what} is not allowed ({error.reason})", source._origin_at(line, col, 1))) from None
        except yaml.YAMLError as error:
            raise SpecError(Problem(f"invalid YAML: {error}", Origin(file, 1, 1))) from None
        except RecursionError:
            raise SpecError(Problem("YAML nested too deeply", source._origin_at(0, 0, 1), f"a spec needs at most {MAX_DEPTH} levels")) from None
        finally:
            if loader is not None:
                loader.dispose()
        if not isinstance(data, dict):
            raise SpecError(Problem("a spec must be a mapping of keys (name, networks, players, ...)", source.origin(())))
        return source, data

    def _walk(self, node: yaml.Node, path: Path, loader: yaml.SafeLoader, depth: int) -> Any:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise SpecError(Problem(f"more than {MAX_NODES} YAML values (alias expansion?)", self._origin_of(node)))
        if depth > MAX_DEPTH:
            raise SpecError(Problem(f"YAML nested deeper than {MAX_DEPTH} levels", self._origin_of(node)))
        self.values[path] = self._span(node)
        if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN_TAGS:
            # NOTE: a tag on a collection would otherwise be dropped silently (the walk builds
            # plain dicts and lists), so `!!python/object/apply:os.system [...]` read as a list.
            raise SpecError(Problem(f"YAML tag '{node.tag}' is not allowed in a spec", self._origin_of(node), "remove the tag"))
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            loader.flatten_mapping(node)  # resolves `<<:` merge keys the way YAML defines them
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node)
                if not isinstance(key, str):
                    raise SpecError(Problem(f"keys must be names, not {type(key).__name__} {key!r}", self._origin_of(key_node), "quote the key"))
                if key in out:
                    raise SpecError(Problem(f"duplicate key '{key}'", self._origin_of(key_node), "each key may appear once in a mapping"))
                self.keys[path + (key,)] = self._span(key_node)
                out[key] = self._walk(value_node, path + (key,), loader, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._walk(item, path + (i,), loader, depth + 1) for i, item in enumerate(node.value)]
        value = loader.construct_object(node)
        if isinstance(value, str):
            self.strings[path] = value
        return value

    @staticmethod
    def _span(node: yaml.Node) -> Span:
        style = getattr(node, "style", None)
        return Span(node.start_mark.line, node.start_mark.column, node.start_mark.index, node.end_mark.index, style or None)

    # -- positions --------------------------------------------------------------------------

    def known(self, path: Path) -> int:
        """The length of the longest prefix of `path` this file wrote a value at, or -1."""
        for length in range(len(path), -1, -1):
            if path[:length] in self.values:
                return length
        return -1

    def _origin_of(self, node: yaml.Node) -> Origin:
        return self._origin_at(node.start_mark.line, node.start_mark.column, 1)

    def _origin_at(self, line: int, col: int, width: int, key: str = "") -> Origin:
        text = self.lines[line] if 0 <= line < len(self.lines) else None
        return Origin(self.file, line + 1, col + 1, key, col + 1 + max(1, width), text)

    def origin(self, path: Path, span: tuple[int, int] | None = None, *, at_key: bool = False) -> Origin:
        """The origin of the value at `path`, or of characters `span` within its scalar value.

        With `at_key`, point at the key itself (for an unknown or misplaced key). A path that
        does not exist points at its nearest existing parent.
        """
        key = dotted(path)
        if at_key and path in self.keys:
            mark = self.keys[path]
            return self._origin_at(mark.line, mark.col, max(1, mark.end_index - mark.index), key)
        while path and path not in self.values:
            path = path[:-1]
        mark = self.values.get(path)
        if mark is None:
            return Origin(self.file, 1, 1, key, 2, self.lines[0] if self.lines else None)
        if span is None:
            width = mark.end_index - mark.index
            first_line_end = self.text.find("\n", mark.index)
            if first_line_end != -1:
                width = min(width, first_line_end - mark.index)
            return self._origin_at(mark.line, mark.col, max(1, width), key)
        start = self._file_index(path, mark, span[0])
        end = self._file_index(path, mark, max(span[0], span[1] - 1), end=True)
        line = self.text.count("\n", 0, start)
        col = start - (self.text.rfind("\n", 0, start) + 1)
        line_end = self.text.find("\n", start)
        width = (min(end, line_end) if line_end != -1 else end) - start
        return self._origin_at(line, col, max(1, width), key)

    def _file_index(self, path: Path, mark: Span, offset: int, end: bool = False) -> int:
        """File index of character `offset` of the scalar's value (see Note [Formula columns]).

        With `end`, the index just past its raw spelling (`\\x78` is four characters).
        """
        raw_start = mark.index
        if mark.style in ("'", '"'):
            raw_start += 1
        elif mark.style in ("|", ">"):
            header_end = self.text.find("\n", mark.index)
            raw_start = header_end + 1 if header_end != -1 else mark.index
        value = self.strings.get(path)
        if value is None:
            return raw_start + offset + end
        target = sum(1 for ch in value[:offset] if not ch.isspace())
        seen = 0
        for index, ch, length in self._raw_characters(raw_start, mark):
            if ch.isspace():
                continue
            if seen == target:
                return index + length if end else index
            seen += 1
        return max(raw_start, mark.end_index - 1) + end

    def _raw_characters(self, start: int, mark: Span):
        """(file index, value character, raw length) for the raw text of a scalar from `start`.

        Quoted scalars spell one value character with several raw ones: `''` in single quotes,
        and escapes (`\\t`, `\\x41`, `\\u03bb`, `\\"`) in double quotes, where a backslash before
        a line break continues the line and stands for nothing. Each yields the character it
        means at the index of its first raw character, so the non-blank alignment holds.
        """
        text, end, index = self.text, mark.end_index, start
        while index < end:
            ch = text[index]
            if mark.style == "'" and text.startswith("''", index):
                yield index, "'", 2
                index += 2
            elif mark.style == '"' and ch == "\\" and index + 1 < end:
                code = text[index + 1]
                if code in _HEX_ESCAPES:
                    digits = _HEX_ESCAPES[code]
                    yield index, chr(int(text[index + 2:index + 2 + digits], 16)), 2 + digits
                    index += 2 + digits
                elif code in _ESCAPES:
                    yield index, _ESCAPES[code], 2
                    index += 2
                else:
                    index += 2  # an escaped line break: joins the lines, adds nothing
            else:
                yield index, ch, 1
                index += 1


class Layered:
    """Positions of data laid over other data: `own`'s where it wrote a value, else `base`'s.

    A derived spec over the spec it `extends:` (named after its own file), and an override over
    the spec it changes (`file=` the spec's: generated code names the spec file). Either layer may
    itself be a `Layered`.
    """

    def __init__(self, own: "Source | Layered", base: "Source | Layered", file: str | None = None):
        self.own = own
        self.base = base
        self.file = own.file if file is None else file

    def known(self, path: Path) -> int:
        """The length of the longest prefix of `path` some layer wrote a value at, or -1."""
        return max(self.own.known(path), self.base.known(path))

    def origin(self, path: Path, span: tuple[int, int] | None = None, *, at_key: bool = False) -> Origin:
        own = self.own.known(path)
        layer = self.own if own >= 0 and own >= self.base.known(path) else self.base
        return layer.origin(path, span, at_key=at_key)
