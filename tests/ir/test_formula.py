"""Formulas in a spec: the whitelist parser, its located errors, lets, arities and `^`.

Every case goes through `lossgraph.loads` and `lower` (no torch), and checks the message parts a
user reads: `file:line:col`, the dotted key, the caret under the exact span and the hint.
"""

from __future__ import annotations

import json
import time

import pytest

import lossgraph
from lossgraph.compiler.expr import Expr, const
from lossgraph.compiler.ops import Ops
from lossgraph.compiler.passes.lower import lower

FILE = "t.yaml"

# A small but complete spec; TERM is replaced by the text of one YAML term of player G.
TEMPLATE = """\
name: t
data: {x: image, y: image}
networks:
  G_XY: {arch: unet}
  G_YX: {arch: unet}
  D_X: {arch: patchgan}
  D_Y: {arch: patchgan}
let:
  fake_y: G_XY(x)
  fake_x: G_YX(y)
players:
  D:
    networks: [D_X, D_Y]
    minimize:
      adv: E[(D_Y(y) - 1)^2] + E[D_Y(fake_y)^2] + E[(D_X(x) - 1)^2] + E[D_X(fake_x)^2]
  G:
    networks: [G_XY, G_YX]
    minimize:
      adv: E[(D_Y(fake_y) - 1)^2] + E[(D_X(fake_x) - 1)^2]
      TERM
"""


def spec_text(term: str) -> str:
    """The template with `term` (YAML text, possibly several lines) as a term of G."""
    return TEMPLATE.replace("TERM", term)


def quoted(formula: str) -> str:
    """A formula as a double-quoted YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(formula)


def lowered(text: str):
    return lower(lossgraph.loads(text, FILE))


def error_of(text: str) -> lossgraph.SpecError:
    with pytest.raises(lossgraph.SpecError) as info:
        lowered(text)
    assert isinstance(info.value, ValueError)
    return info.value


def position(text: str, needle: str, occurrence: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the `occurrence`-th `needle` in `text`."""
    index = -1
    for _ in range(occurrence + 1):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, col


def assert_points_at(message: str, text: str, needle: str, key: str, occurrence: int = 0, width: int | None = None) -> None:
    """`message` names `file:line:col key` of `needle`, shows its line and a caret under it.

    A long line is shown as a window around the caret; either way the characters above the
    caret must be the needle's.
    """
    line, col = position(text, needle, occurrence)
    assert f"{FILE}:{line}:{col}: {key}: " in message, message
    source_line = text.splitlines()[line - 1]
    lines = message.splitlines()
    gutter = f"{line:>5} | "
    shown = [i for i, row in enumerate(lines) if row.startswith(gutter) and (row[len(gutter):] == source_line or "..." in row)]
    assert shown, f"source line {line} not shown in:\n{message}"
    row, caret = lines[shown[0]][len(gutter):], lines[shown[0] + 1][len(gutter):]
    assert lines[shown[0] + 1][: len(gutter)] == " " * (len(gutter) - 2) + "| ", message
    at = caret.index("^")
    width = width or len(needle)
    assert caret.rstrip() == " " * at + "^" + "~" * (width - 1), message
    assert row[at:at + width] == needle[:width], message
    if row == source_line:
        assert at + 1 == col, message


# -- names ----------------------------------------------------------------------------------------


def test_unknown_network_has_did_you_mean_and_exact_caret():
    text = spec_text("bad: E[(D_Y(G_XZ(x)) - 1)^2]")
    message = str(error_of(text))
    assert "unknown network 'G_XZ'" in message
    assert "(did you mean 'G_XY'?)" in message  # not G_YX: the common prefix breaks the tie
    assert_points_at(message, text, "G_XZ", "players.G.minimize.bad")
    assert message.count("\n") == 2  # one problem: message, line, caret


def test_unknown_function_suggests_builtin():
    text = spec_text("bad: E[lg(D_Y(fake_y))]")
    message = str(error_of(text))
    assert "unknown function 'lg'" in message and "did you mean 'log'?" in message
    assert_points_at(message, text, "lg", "players.G.minimize.bad")


def test_unknown_name_suggests_let():
    text = spec_text("bad: E[D_Y(fake_yy)]")
    message = str(error_of(text))
    assert "unknown name 'fake_yy'" in message and "did you mean 'fake_y'?" in message
    assert_points_at(message, text, "fake_yy", "players.G.minimize.bad")


def test_unknown_name_far_from_everything_lists_names():
    text = spec_text("bad: E[D_Y(qqq)]")
    message = str(error_of(text))
    assert "unknown name 'qqq'" in message
    assert "expected one of 'D_X', 'D_Y', 'G_XY', 'G_YX', 'fake_x', 'fake_y', 'x', 'y'" in message


def test_network_used_without_call():
    text = spec_text("bad: E[D_Y] + E[D_Y(fake_y)]")
    message = str(error_of(text))
    assert "network 'D_Y' must be applied to its inputs (write D_Y(...))" in message
    assert_points_at(message, text, "D_Y", "players.G.minimize.bad", occurrence=text.count("D_Y") - 2)


def test_builtin_used_without_call():
    text = spec_text("bad: E[log] + E[D_Y(fake_y)]")
    message = str(error_of(text))
    assert "'log' is a function (write log(...))" in message
    assert_points_at(message, text, "log", "players.G.minimize.bad")


@pytest.mark.parametrize("formula, width", [("E(D_Y(fake_y))", 14), ("E + E[D_Y(fake_y)]", 1)])
def test_expectation_takes_brackets(formula, width):
    text = spec_text(f"bad: {formula}")
    message = str(error_of(text))
    assert "E is the expectation and takes brackets (write E[...])" in message
    assert_points_at(message, text, formula, "players.G.minimize.bad", width=width)


@pytest.mark.parametrize(
    "formula, needle, reason",
    [
        ("E[D_Y(x[0])]", "x[0]", "the only subscript is the expectation E[...] (indexing is not part of the formula language)"),
        ("E[D_Y(x)[1:2]]", "D_Y(x)[1:2]", "the only subscript is the expectation E[...]"),
        ("E[D_Y(x), x]", "E[D_Y(x), x]", "E[...] takes one expression"),
        ("E[D_Y(x):x]", "E[D_Y(x):x]", "E[...] takes one expression"),
    ],
)
def test_subscripts_other_than_expectation(formula, needle, reason):
    text = spec_text(f"bad: {quoted(formula)}")
    message = str(error_of(text))
    assert reason in message
    assert_points_at(message, text, needle, "players.G.minimize.bad")


# -- the whitelist -------------------------------------------------------------------------------

# (formula, the span the caret must underline, words of the reason)
REJECTED = [
    ("E[D_Y(x)] + __import__('os').system('touch hacked')", "__import__('os').system", "only names, network heads and builtins can be called"),
    ("E[D_Y(x)] + __import__('os')", "__import__", "unknown function '__import__'"),
    ("E[D_Y(x.__class__)]", "x.__class__", "dunder attribute '__class__' is not allowed"),
    ("E[D_Y.__call__(x)]", "D_Y.__call__", "attribute '__call__' is not allowed"),
    ("E[D_Y(x)] + (lambda: 1)", "lambda: 1", "lambdas are not part of the formula language"),
    ("E[D_Y(x)] + E[[v for v in x]]", "[v for v in x]", "comprehensions are not part of the formula language"),
    ("E[D_Y(x)] + E[(v for v in x)]", "(v for v in x)", "comprehensions are not part of the formula language"),
    ("E[D_Y(x)] + 'abc'", "'abc'", "string literals are not part of the formula language"),
    ("E[D_Y(x)] + f'{x}'", "f'{x}'", "strings are not part of the formula language"),
    ("E[D_Y((z := x))]", "z := x", "assignment expressions (:=) are not part of the formula language"),
    ("E[D_Y(x) < 1]", "D_Y(x) < 1", "the only comparison is ==, as in E[argmax(C(x)) == c]"),
    ("E[D_Y(x) if x else y]", "D_Y(x) if x else y", "conditional expressions are not part of the formula language"),
    ("E[D_Y(x) or y]", "D_Y(x) or y", "'and'/'or' are not part of the formula language"),
    ("E[log(D_Y(x), base=2)]", "base=2", "keyword arguments are not part of the formula language"),
    ("E[log(*x)]", "*x", "star-arguments are not part of the formula language"),
    ("E[D_Y(x) @ x]", "D_Y(x) @ x", "operator '@' is not part of the formula language (use + - * / ^)"),
    ("E[D_Y(x) % 2]", "D_Y(x) % 2", "operator '%' is not part of the formula language"),
    ("E[D_Y(x) // 2]", "D_Y(x) // 2", "operator '//' is not part of the formula language"),
    ("E[~D_Y(x)]", "~D_Y(x)", "only unary minus is part of the formula language"),
    ("E[D_Y(x)] + [x]", "[x]", "lists are not part of the formula language"),
    ("E[D_Y(x)] + {x}", "{x}", "sets are not part of the formula language"),
    ("E[D_Y(x)] + (x, y)", "(x, y)", "tuples are not part of the formula language"),
    ("E[D_Y(x)] + True", "True", "bool constants are not part of the formula language"),
    ("E[D_Y(x)] + None", "None", "NoneType constants are not part of the formula language"),
    ("E[D_Y(x)] + 1j", "1j", "complex constants are not part of the formula language"),
    ("E[D_Y(x)](y)", "E[D_Y(x)]", "only names, network heads and builtins can be called"),
    ("E[D_Y.head(x)]", "D_Y.head(x)", "network 'D_Y' has no head 'head'"),
    ("E[D_Y.head]", "D_Y.head", "a network head must be applied to inputs: D_Y.head(...)"),
    ("E[D_Y()]", "D_Y()", "network 'D_Y' needs at least one input"),
    ("E[log(D_Y(x), x)]", "log(D_Y(x), x)", "log takes 1 argument, got 2"),
    ("E[D_Y(x)] #+ E[D_X(y)]", "#", "'#' is not part of the formula language"),
    ("E[D_Y(x)] +", "E[D_Y(x)] +", "syntax error"),
    ("E[D_Y(x)] $ 2", "$", "syntax error"),
]


@pytest.mark.parametrize("formula, needle, reason", REJECTED, ids=[case[0] for case in REJECTED])
def test_rejected_syntax_is_located(formula, needle, reason):
    text = spec_text(f"bad: {quoted(formula)}")
    message = str(error_of(text))
    assert reason in message
    assert_points_at(message, text, needle, "players.G.minimize.bad", width=1 if reason == "syntax error" else None)
    assert "Traceback" not in message


def test_formulas_never_execute_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for formula in ("__import__('os').system('touch hacked')", "E[D_Y(x)] + exec('open(\"hacked\", \"w\")')"):
        error_of(spec_text(f"bad: {quoted(formula)}"))
    assert not (tmp_path / "hacked").exists()


def test_comment_inside_block_scalar_is_an_error_not_a_dropped_term():
    # Python would read `#` as a comment; with the lines joined, the second term would vanish.
    text = spec_text("bad: |\n        E[D_Y(fake_y)]   # the adversarial part\n          + E[l1(G_YX(fake_y) - x)]")
    message = str(error_of(text))
    assert "'#' is not part of the formula language" in message
    assert "put comments after the YAML value" in message
    assert_points_at(message, text, "#", "players.G.minimize.bad", occurrence=0)


# -- constants -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "formula, needle, occurrence, reason",
    [
        ("9**9**9**9", "9**9**9", 1, "constant expression overflows"),  # 9**(9**9) overflows
        ("9^9^9^9", "9^9^9", 1, "constant expression overflows"),
        ("2^100000", "2^100000", 0, "constant expression overflows"),
        ("1/0", "1/0", 0, "division by zero"),
        ("2 / (1 - 1)", "2 / (1 - 1)", 0, "division by zero"),
        ("log(0)", "log(0)", 0, "log of this constant is not a finite real number"),
        ("sqrt(-1)", "sqrt(-1)", 0, "sqrt of this constant is not a finite real number"),
        ("exp(1000)", "exp(1000)", 0, "exp of this constant is not a finite real number"),
        ("(-1)**0.5", "(-1)**0.5", 0, "constant expression is not a finite real number"),
        ("(-1)^0.5", "(-1)^0.5", 0, "constant expression is not a finite real number"),
        ("1e400", "1e400", 0, "number too large"),
    ],
)
def test_constant_arithmetic_is_checked_quickly(formula, needle, occurrence, reason):
    text = spec_text(f"bad: {quoted('E[D_Y(fake_y)] + ' + formula)}")
    start = time.perf_counter()
    message = str(error_of(text))
    assert time.perf_counter() - start < 1.0
    assert reason in message
    assert_points_at(message, text, needle, "players.G.minimize.bad", occurrence=occurrence)


def test_constants_fold_to_one_number():
    graph = lowered(spec_text("c: E[D_Y(fake_y)] * (2^3^2 - 2 * 3 ^ 2 + -(-1))"))
    term = graph.player("G").terms[-1]
    assert term.expr.args[1] is const(2.0 ** 9 - 2 * 3.0 ** 2 + 1)  # `^` is right-associative


# -- hostile sizes ---------------------------------------------------------------------------------


def assert_short(message: str) -> None:
    assert len(message.splitlines()) < 10, message
    assert max(len(line) for line in message.splitlines()) < 250, message


def test_thousand_nested_parentheses_is_a_located_error():
    formula = "(" * 1000 + "x" + ")" * 1000
    text = spec_text(f"bad: E[D_Y({formula})]")
    message = str(error_of(text))
    assert "formula nested deeper than 100 levels (use let: bindings)" in message
    line, col = position(text, "bad: E[D_Y(")
    assert f"{FILE}:{line}:{col + 11 + 98}: players.G.minimize.bad" in message  # `[` and `D_Y(` count too
    assert_short(message)


def test_thousand_unary_minuses_is_a_located_error():
    text = spec_text("bad: " + quoted("-" * 1000 + "E[D_Y(fake_y)]"))
    message = str(error_of(text))
    assert "formula nested deeper than 100 levels" in message
    line, col = position(text, "-" * 1000)
    assert f"{FILE}:{line}:{col + 101}: players.G.minimize.bad" in message  # the 102nd minus
    assert_short(message)


@pytest.mark.parametrize("formula", ["-" * 3900 + "x", "(" * 150 + "x" + ")" * 150, "E[" * 500 + "x" + "]" * 500, "log(" * 500 + "x" + ")" * 500])
def test_deep_nesting_never_raises_recursion_error(formula):
    message = str(error_of(spec_text("bad: " + quoted(formula))))
    assert f"{FILE}:20:" in message and "players.G.minimize.bad" in message
    assert_short(message)


def test_five_thousand_unary_minuses_is_too_long():
    message = str(error_of(spec_text("bad: " + quoted("-" * 5000 + "x"))))
    assert f"{FILE}:20:13: players.G.minimize.bad: formula longer than 4000 characters (split it with let: bindings)" in message
    assert_short(message)


def test_very_long_formula_is_rejected_with_a_short_message():
    formula = " + ".join(["E[l1(G_YX(fake_y) - x)]"] * 400)
    message = str(error_of(spec_text(f"bad: {formula}")))
    assert "formula longer than 4000 characters" in message
    assert "..." in message  # the source line is cut to a window around the caret
    assert_short(message)


def test_long_flat_sum_within_limits_parses():
    formula = " + ".join(["E[l1(G_YX(fake_y) - x)]"] * 40)
    graph = lowered(spec_text(f"ok: {formula}"))
    assert graph.player("G").terms[-1].expr.op is Ops.ADD


def test_long_let_chain_is_fine_in_any_order():
    # Note [Flat let resolution]: each let used before it is declared, 400 deep
    lets = "".join(f"  a{i}: a{i + 1} + x\n" for i in range(399)) + "  a399: x\n"
    text = spec_text("chain: E[D_Y(a0)]").replace("let:\n", "let:\n" + lets)
    graph = lowered(text)
    expr = graph.player("G").terms[-1].expr
    assert sum(1 for node in expr.walk() if node.op is Ops.ADD) == 399


# -- lets and arities --------------------------------------------------------------------------------


def test_let_cycle_reports_the_chain_once():
    text = spec_text("uses: E[D_Y(a)] + E[D_X(b)]").replace("let:\n", "let:\n  a: b + 1\n  b: c * 2\n  c: a\n")
    error = error_of(text)
    message = str(error)
    assert len(error.problems) == 1, message
    assert "let binding 'a' refers to itself: a -> b -> c -> a" in message
    line, col = position(text, "c: a")
    assert f"{FILE}:{line}:{col + 3}: let.c: " in message


def test_let_self_reference():
    text = spec_text("uses: E[D_Y(a)]").replace("let:\n", "let:\n  a: a + x\n")
    message = str(error_of(text))
    assert "let binding 'a' refers to itself: a -> a" in message
    line, col = position(text, "a: a + x")
    assert f"{FILE}:{line}:{col + 3}: let.a: " in message


def test_broken_let_is_reported_once_not_at_every_use():
    text = spec_text("more: E[D_X(G_YX(fake_y))]").replace("fake_y: G_XY(x)", "fake_y: G_XZ(x)")
    error = error_of(text)
    assert len(error.problems) == 1, str(error)
    assert_points_at(str(error), text, "G_XZ", "let.fake_y")


def test_network_applied_with_inconsistent_numbers_of_arguments():
    text = spec_text("bad: E[D_Y(fake_y, x)]")
    message = str(error_of(text))
    first_line, first_col = position(text, "D_Y(y)")
    assert f"network 'D_Y' applied to 2 inputs here but 1 at {FILE}:{first_line}:{first_col}" in message
    assert_points_at(message, text, "D_Y(fake_y, x)", "players.G.minimize.bad")


def test_several_formula_problems_are_all_reported():
    text = spec_text("a: E[D_Y(zz)]\n      b: E[lg(x)]\n      c: E[x % 2]")
    error = error_of(text)
    message = str(error)
    assert message.startswith("3 problems:\n")
    assert "unknown name 'zz'" in message and "unknown function 'lg'" in message and "operator '%'" in message
    for key in ("players.G.minimize.a", "players.G.minimize.b", "players.G.minimize.c"):
        assert f": {key}: " in message
    assert len(message.splitlines()) < 12


def test_problems_in_samples_and_evaluate_are_located():
    text = spec_text("ok: E[D_Y(fake_y)]") + "samples: [x, G_XY(xx)]\nevaluate:\n  err: E[l1(fake_y - yy)]\n"
    message = str(error_of(text))
    assert_points_at(message, text, "xx", "samples[1]")
    assert_points_at(message, text, "yy", "evaluate.err")


def test_empty_formula():
    text = spec_text('bad: ""')
    message = str(error_of(text))
    assert f"{FILE}:20:13: players.G.minimize.bad: empty formula" in message  # inside the quotes


# -- `^` is power -----------------------------------------------------------------------------------


def test_caret_is_power_with_power_precedence():
    text = spec_text("a: E[(D_Y(y) - 1)^2]\n      b: E[(D_Y(y) - 1)**2]\n      c: 2 * E[D_Y(y)] ^ 2\n      d: -E[D_Y(y)]^2")
    terms = {term.name: term.expr for term in lowered(text).player("G").terms}
    assert terms["a"] is terms["b"]  # interned: the same node
    mean = Expr.make(Ops.MEAN, Expr(Ops.APPLY, (Expr(Ops.DATA, (), "y"),), "D_Y"))
    assert terms["c"] is Expr.make(Ops.MUL, const(2.0), Expr.make(Ops.POW, mean, const(2.0)))
    assert terms["d"] is Expr.make(Ops.NEG, Expr.make(Ops.POW, mean, const(2.0)))


def test_caret_columns_map_back_to_the_original_text():
    # `^` becomes `**` before parsing; the columns after it must still be the user's
    text = spec_text("bad: E[(D_Y(y) - 1)^2] + E[(D_X(x) - 1)^2] + E[G_XZ(x)^2]")
    assert_points_at(str(error_of(text)), text, "G_XZ", "players.G.minimize.bad")


# -- columns in every scalar style -----------------------------------------------------------------

STYLES = {
    "plain": "bad: E[D_Y(fake_y)] + E[D_Y(G_XZ(x))]",
    "single quoted": "bad: 'E[D_Y(fake_y)] + E[D_Y(G_XZ(x))]'",
    "double quoted": 'bad: "E[D_Y(fake_y)] + E[D_Y(G_XZ(x))]"',
    "double quoted with escapes": 'bad: "E[D_Y(fake_y)]\\t+ E[D_Y(\\x78)] + E[D_Y(G_XZ(x))]"',
    "double quoted with unicode escape": 'bad: "E[D_Y(fake_y)] + E[D_Y(\\u0078)] + E[D_Y(G_XZ(x))]"',
    "flow mapping": 'bad: {weight: 10, expr: "E[D_Y(fake_y)] + E[D_Y(G_XZ(x))]"}',
    "flow mapping single quoted": "bad: {expr: 'E[D_Y(fake_y)] + E[D_Y(G_XZ(x))]', weight: 10}",
    "block mapping": "bad:\n        weight: 10\n        expr: E[D_Y(fake_y)] + E[D_Y(G_XZ(x))]",
    "literal block": "bad: |\n        E[D_Y(fake_y)]\n          + E[D_Y(G_XZ(x))]",
    "folded block": "bad: >\n        E[D_Y(fake_y)]\n          + E[D_Y(G_XZ(x))]",
    "folded block with blank line": "bad: >-\n        E[D_Y(fake_y)] +\n\n        E[D_Y(G_XZ(x))]",
    "plain multi-line": "bad: E[D_Y(fake_y)]\n        + E[D_Y(G_XZ(x))]",
    "plain on the next line": "bad:\n        E[D_Y(fake_y)] + E[D_Y(G_XZ(x))]",
    "double quoted multi-line": 'bad: "E[D_Y(fake_y)]\n        + E[D_Y(G_XZ(x))]"',
    "double quoted escaped line break": 'bad: "E[D_Y(fake_y)] \\\n        + E[D_Y(G_XZ(x))]"',
}


@pytest.mark.parametrize("term", STYLES.values(), ids=list(STYLES))
def test_columns_are_right_in_every_scalar_style(term):
    text = spec_text(term)
    message = str(error_of(text))
    key = "players.G.minimize.bad.expr" if "expr" in term else "players.G.minimize.bad"
    assert "unknown network 'G_XZ' (did you mean 'G_XY'?)" in message
    assert_points_at(message, text, "G_XZ", key)


@pytest.mark.parametrize(
    "term, needle",
    [
        ("bad: 'E[D_Y(fake_y)] + E[''q''] + E[D_Y(x)]'", "''q''"),  # `''` is one quote of the value
        ('bad: "E[D_Y(fake_y)] + E[\\"q\\"] + E[D_Y(x)]"', '\\"q\\"'),
        ('bad: "E[D_Y(fake_y)] + E[\\x27q\\x27] + E[D_Y(x)]"', "\\x27q\\x27"),
    ],
)
def test_span_of_escaped_characters_covers_their_spelling(term, needle):
    text = spec_text(term)
    message = str(error_of(text))
    assert "string literals are not part of the formula language" in message
    assert_points_at(message, text, needle, "players.G.minimize.bad")


def test_caret_in_a_long_line_is_shown_in_a_window():
    formula = " + ".join(["E[l1(G_YX(fake_y) - x)]"] * 20) + " + E[D_Y(G_XZ(x))]"
    text = spec_text(f"bad: {formula}")
    message = str(error_of(text))
    assert "..." in message
    assert_points_at(message, text, "G_XZ", "players.G.minimize.bad")
    assert max(len(row) for row in message.splitlines()) < 200


def test_columns_after_non_ascii_names():
    # ast columns count UTF-8 bytes and SyntaxError offsets count characters: both must map
    text = spec_text("bad: E[D_Y(λλ)] + E[D_Y(G_XZ(λλ))]").replace("data: {x: image, y: image}", "data: {x: image, y: image, λλ: image}")
    assert_points_at(str(error_of(text)), text, "G_XZ", "players.G.minimize.bad")
    text = spec_text("bad: E[D_Y(λλ)] + E[D_Y(λλ)] $ 2").replace("data: {x: image, y: image}", "data: {x: image, y: image, λλ: image}")
    message = str(error_of(text))
    assert "syntax error" in message
    assert_points_at(message, text, "$", "players.G.minimize.bad")


def test_let_formula_columns():
    text = spec_text("ok: E[D_Y(fake_y)]").replace("fake_x: G_YX(y)", "fake_x: 'G_YX(y) + G_YZ(y)'")
    message = str(error_of(text))
    assert "did you mean 'G_YX'?" in message
    assert_points_at(message, text, "G_YZ", "let.fake_x")


def test_shipped_specs_lower():
    for name, order in (("discogan", ["G", "D"]), ("cyclegan", ["D", "G"])):
        graph = lower(lossgraph.load(name))
        assert [player.name for player in graph.players] == order  # schedule order
        assert set(graph.names.values()) == {"fake_x", "fake_y"}
