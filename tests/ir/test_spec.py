"""Spec files: the located YAML loader, the pydantic models and the name checks.

Each case asserts the parts of the message a user reads (`file:line:col`, the dotted key, the
caret, the did-you-mean hint), not only the exception type. The few checks that need the
networks (arch options, shapes, gradient paths) go through `lossgraph.compile`.
"""

from __future__ import annotations

import time

import pytest

import lossgraph
from lossgraph.compiler.passes.lower import lower

FILE = "t.yaml"

GOOD = """\
name: t
data: {x: image, y: image}
networks:
  G_XY: {arch: unet, width: 8, depth: 2}
  G_YX: {arch: unet, width: 8, depth: 2}
  D_X: {arch: patchgan, width: 8, layers: 2}
  D_Y: {arch: patchgan, width: 8, layers: 2}
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
      cycle: {weight: 10, expr: "E[l1(G_YX(fake_y) - x)] + E[l1(G_XY(fake_x) - y)]"}
schedule: [D, G]
optim:
  D: {adam: {lr: 2.0e-4, betas: [0.5, 0.999]}}
  G: {adam: {lr: 2.0e-4, betas: [0.5, 0.999]}}
train: {steps: 10, batch_size: 2, image_size: 16}
"""


def edit(old: str, new: str, text: str = GOOD) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def error_of(text: str, file: str = FILE) -> lossgraph.SpecError:
    with pytest.raises(lossgraph.SpecError) as info:
        lossgraph.loads(text, file)
    assert isinstance(info.value, ValueError)
    return info.value


def compile_error_of(text: str) -> lossgraph.SpecError:
    spec = lossgraph.loads(text, FILE)
    with pytest.raises(lossgraph.SpecError) as info:
        lossgraph.compile(spec)
    return info.value


def where(text: str, needle: str, occurrence: int = 0, within: str = "") -> tuple[int, int]:
    """1-based (line, col) of the `occurrence`-th `needle` in `text`, or of `needle` in `within`."""
    if within:
        index = text.index(within) + within.index(needle)
    else:
        index = -1
        for _ in range(occurrence + 1):
            index = text.index(needle, index + 1)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def assert_located(message: str, text: str, needle: str, key: str = "", occurrence: int = 0, width: int | None = None, within: str = "") -> None:
    """The message names `t.yaml:line:col key` of `needle` and draws a caret under it.

    The caret row after some showing of that source line (or of a window of it, for a long
    line) must underline exactly the needle.
    """
    line, col = where(text, needle, occurrence, within)
    head = f"{FILE}:{line}:{col}: {key}: " if key else f"{FILE}:{line}:{col}: "
    assert head in message, message
    rows = message.splitlines()
    source = text.splitlines()[line - 1]
    gutter = f"{line:>5} | "
    width = width or len(needle)
    found = False
    for index, row in enumerate(rows[:-1]):
        if not row.startswith(gutter):
            continue
        shown, caret = row[len(gutter):], rows[index + 1][len(gutter):]
        at = caret.find("^")
        if at < 0 or caret.rstrip() != " " * at + "^" + "~" * (width - 1) or shown[at:at + width] != needle[:width]:
            continue
        found = found or shown != source or at + 1 == col
    assert found, message


def test_good_spec_loads():
    spec = lossgraph.loads(GOOD, FILE)
    assert spec.order == ["D", "G"]
    assert spec.players["G"].terms["cycle"].weight == 10


# -- keys --------------------------------------------------------------------------------------------


def test_unknown_top_level_key_did_you_mean():
    text = GOOD + "shedule: [G, D]\n"
    message = str(error_of(text))
    assert "unknown key 'shedule' (did you mean 'schedule'?)" in message
    assert_located(message, text, "shedule", "shedule")


@pytest.mark.parametrize(
    "old, new, needle, key, hint",
    [
        ("    networks: [D_X, D_Y]\n", "    networks: [D_X, D_Y]\n    minimise: {a: 'E[x]'}\n", "minimise", "players.D.minimise", "did you mean 'minimize'?"),
        ("D: {adam: {lr: 2.0e-4, betas", "D: {adam: {lr: 2.0e-4, beta: [0.5, 0.9], betas", "beta", "optim.D.adam.beta", "did you mean 'betas'?"),
        ("D: {adam: {lr", "D: {adamw: {lr", "adamw", "optim.D.adamw", "did you mean 'adam'?"),
        ("train: {steps: 10,", "train: {stesp: 10,", "stesp", "train.stesp", "did you mean 'steps'?"),
        ("cycle: {weight: 10, expr:", "cycle: {wieght: 10, expr:", "wieght", "players.G.minimize.cycle.wieght", "did you mean 'weight'?"),
    ],
)
def test_unknown_nested_key(old, new, needle, key, hint):
    text = edit(old, new)
    message = str(error_of(text))
    assert f"unknown key '{needle}' ({hint})" in message
    assert_located(message, text, needle, key)


def test_missing_required_keys_are_all_reported():
    text = "name: t\nschedule: [D]\n"
    error = error_of(text)
    message = str(error)
    for key in ("data", "networks", "players"):
        assert f"{FILE}:1:1: missing key '{key}' (add '{key}:')" in message
    assert message.startswith("3 problems:\n")


def test_a_macro_library_is_not_a_spec():
    text = "# macros only\nmacros:\n  lsgan_g(D, fake): E[(D(fake) - 1)^2]\n"
    message = str(error_of(text))
    assert message.startswith(f"{FILE}:2:1: macros: a macro library, not a spec")
    assert "missing key" not in message  # one problem, not four missing keys
    assert "specs/stdlib.yaml" in message


def test_missing_key_of_a_player():
    text = edit("    networks: [D_X, D_Y]\n", "")
    message = str(error_of(text))
    line, col = where(text, "    minimize:\n      adv: E[(D_Y(y)")
    assert f"{FILE}:{line}:{col + 4}: players.D: missing key 'networks' (add 'networks:')" in message


@pytest.mark.parametrize(
    "old, new, needle, key, words",
    [
        ("steps: 10", "steps: many", "many", "train.steps", "input should be a valid integer"),
        ("steps: 10", "steps: -1", "-1", "train.steps", "input should be greater than 0"),
        ("image_size: 16", "image_size: 4", "4", "train.image_size", "greater than or equal to 8"),
        ("lr: 2.0e-4, betas: [0.5, 0.999]}}\n  G", "lr: fast, betas: [0.5, 0.999]}}\n  G", "fast", "optim.D.adam.lr", "valid number"),
        ("name: t", "name: [t]", "[t]", "name", "input should be a valid string"),
        ("    networks: [D_X, D_Y]", "    networks: D_X", "D_X", "players.D.networks", "input should be a valid list"),
        ("    networks: [D_X, D_Y]", "    networks: []", "[]", "players.D.networks", "at least 1 item"),
        ("cycle: {weight: 10,", "cycle: {weight: heavy,", "heavy", "players.G.minimize.cycle.weight", "valid number"),
        ("  D_X: {arch: patchgan, width: 8, layers: 2}", "  D_X: patchgan", "patchgan", "networks.D_X", "valid dictionary"),
        ("  D_X: {arch: patchgan, width: 8, layers: 2}", "  D_X: {arch: patchgan, output: prob}", "prob", "networks.D_X.output", "'raw' or 'probability'"),
        ("data: {x: image, y: image}", "data: {x: image, y: imag}", "imag}", "data.y", "unknown data kind 'imag' (did you mean 'image'?)"),
        ("adv: E[(D_Y(fake_y) - 1)^2] + E[(D_X(fake_x) - 1)^2]", "adv: 3", "3", "players.G.minimize.adv", "a term is a formula string or {weight: <number>, expr: <formula>}"),
    ],
)
def test_wrong_types_and_values(old, new, needle, key, words):
    text = edit(old, new)
    message = str(error_of(text))
    assert words in message
    assert_located(message, text, needle, key, within=new, width=len(needle.rstrip("}")))


@pytest.mark.parametrize(
    "old, new, hint",
    [
        ("      adv: E[(D_Y(fake_y)", "\tadv: E[(D_Y(fake_y)", "YAML indents with spaces only: replace the tab with spaces"),
        ('{weight: 10, expr: "E[l1(G_YX(fake_y) - x)] + E[l1(G_XY(fake_x) - y)]"}', "{weight: 10, expr: E[l1(G_YX(fake_y) - x)]}",
         'inside {...} a formula needs quotes: {weight: 10, expr: "E[l1(a - b)]"}'),
        ("schedule: [D, G]", "schedule: [D, E[x]]", "inside [...] a value holding brackets, ':' or ',' needs quotes"),
        ("      cycle:", "       cycle:", 'quote a value that holds ": " (adv: "E[...]"), or indent this line as the keys beside it'),
        ("schedule: [D, G]", "schedule: [D, G]\n  bad: indent", "indent this line as the keys beside it, with spaces"),
    ],
)
def test_yaml_syntax_errors_say_how_to_fix_the_usual_slips(old, new, hint):
    message = str(error_of(edit(old, new)))
    assert message.startswith(f"{FILE}:") and "invalid YAML: " in message
    assert f"({hint})\n" in message, message


def test_duplicate_yaml_key():
    text = edit("schedule: [D, G]\n", "schedule: [D, G]\nschedule: [G, D]\n")
    message = str(error_of(text))
    assert "duplicate key 'schedule' (each key may appear once in a mapping)" in message
    line, _ = where(text, "schedule: [G, D]")
    assert f"{FILE}:{line}:1: " in message


def test_duplicate_nested_key():
    text = edit("  fake_x: G_YX(y)\n", "  fake_x: G_YX(y)\n  fake_y: G_XY(y)\n")
    message = str(error_of(text))
    line, _ = where(text, "  fake_y: G_XY(y)")
    assert f"{FILE}:{line}:3: duplicate key 'fake_y'" in message


@pytest.mark.parametrize("key, shown", [("1", "int 1"), ("null", "NoneType None"), ("true", "bool True"), ("[a]", "list")])
def test_non_string_keys(key, shown):
    text = edit("let:\n", f"let:\n  {key}: x\n")
    message = str(error_of(text))
    line, _ = where(text, f"  {key}: x")
    assert f"{FILE}:{line}:3: keys must be names, not {shown}" in message
    assert "(quote the key)" in message


@pytest.mark.parametrize(
    "old, new, line, col, words",
    [
        ("name: t", "name: [t", 2, 5, "invalid YAML: expected ',' or ']', but got ':'"),
        ("  D_X: {arch", "  D_X: {arch: patchgan, widt\n  x: {arch", 7, 4, "invalid YAML: expected ',' or '}', but got ':'"),
        ("schedule: [D, G]", "schedule: [D, G]\n  bad: indent", 22, 3, "invalid YAML: expected <block end>, but found '<block mapping start>'"),
        ("name: t", "name: 'unterminated", 1, 7, "invalid YAML: found unexpected end of stream while scanning a quoted scalar"),
        ("name: t", "\tname: t", 1, 1, "invalid YAML: found character '\\t' that cannot start any token"),
        ("name: t", "name: t\x00", 1, 8, "invalid YAML: character U+0000 is not allowed"),
    ],
)
def test_yaml_syntax_errors_have_positions(old, new, line, col, words):
    text = edit(old, new)
    message = str(error_of(text))
    assert message.startswith(f"{FILE}:{line}:{col}: {words}"), message
    assert f"\n{line:>5} | " in message and "^" in message


def test_python_tags_are_rejected_and_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "marker"
    for value in (
        f'!!python/object/apply:os.system ["touch {marker}"]',
        f'!!python/object/apply:subprocess.check_call [["touch", "{marker}"]]',
        f'!!python/object/new:os.system ["touch {marker}"]',
        "!!python/name:os.system",
        f'!!python/object/apply:os.system {{args: ["touch {marker}"]}}',
    ):
        text = edit("name: t", f"name: {value}")
        message = str(error_of(text))
        assert f"{FILE}:1:7: " in message, message
        assert "not allowed in a spec" in message or "could not determine a constructor for the tag" in message
    assert not marker.exists()


def test_tags_on_collections_are_not_silently_dropped():
    text = edit("data: {x: image, y: image}", "data: !!omap [{x: image}, {y: image}]")
    message = str(error_of(text))
    assert "YAML tag 'tag:yaml.org,2002:omap' is not allowed in a spec (remove the tag)" in message
    assert_located(message, text, "!", "", width=1)


def test_billion_laughs_is_bounded():
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 9)}]")
    text = "\n".join(lines) + "\n"
    start = time.perf_counter()
    message = str(error_of(text))
    assert time.perf_counter() - start < 5
    assert "more than 100000 YAML values (alias expansion?)" in message
    assert f"{FILE}:" in message and "^" in message


def test_recursive_alias_is_bounded():
    message = str(error_of("name: &a [*a]\n"))
    assert "YAML nested deeper than 64 levels" in message and f"{FILE}:1:7" in message


def test_deep_yaml_nesting_is_located():
    message = str(error_of("name: " + "[" * 1000 + "]" * 1000 + "\n"))
    assert message.startswith(f"{FILE}:1:1: YAML nested too deeply (a spec needs at most 64 levels)\n    1 | name: [[[")
    assert message.endswith("\n      | ^")
    assert len(message) < 1000  # the 2000-character line is cut to a window


def test_nesting_past_the_limit_is_located():
    message = str(error_of("name: " + "[" * 70 + "]" * 70 + "\n"))
    assert message.startswith(f"{FILE}:1:71: YAML nested deeper than 64 levels")


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n", "---\n"])
def test_empty_file(text):
    message = str(error_of(text))
    assert message.startswith(f"{FILE}:1:1: the spec file is empty (a spec is a mapping")


@pytest.mark.parametrize("text", ["- name: t\n- data: {}\n", "42\n", "just a string\n"])
def test_top_level_must_be_a_mapping(text):
    message = str(error_of(text))
    assert message.startswith(f"{FILE}:1:1: a spec must be a mapping of keys (name, networks, players, ...)")
    assert "    1 | " in message


def test_two_documents_are_rejected():
    text = GOOD + "---\nname: u\n"
    message = str(error_of(text))
    assert "invalid YAML: but found another document" in message
    assert_located(message, text, "---", width=1)


def test_oversized_file():
    message = str(error_of("name: " + "x" * 1_100_000))
    assert message.startswith(f"{FILE}:1:1: spec file is larger than 1000000 bytes")
    assert "\n    1 | name: xxx" in message and message.endswith("\n      | ^")
    assert len(message) < 1000


# -- names ---------------------------------------------------------------------------------------------


def test_player_names_unknown_network():
    text = edit("networks: [D_X, D_Y]", "networks: [D_X, D_Z]")
    message = str(error_of(text))
    assert "unknown network 'D_Z' (did you mean 'D_X'?)" in message or "unknown network 'D_Z' (did you mean 'D_Y'?)" in message
    assert_located(message, text, "D_Z", "players.D.networks[1]")


def test_network_claimed_by_two_players():
    text = edit("networks: [G_XY, G_YX]", "networks: [G_XY, G_YX, D_X]")
    message = str(error_of(text))
    assert "network 'D_X' is already updated by player 'D' (each network belongs to one player)" in message
    assert_located(message, text, "D_X", "players.G.networks[2]", within="[G_XY, G_YX, D_X]")


def test_schedule_names_unknown_player():
    text = edit("schedule: [D, G]", "schedule: [D, GG]")
    message = str(error_of(text))
    assert "unknown player 'GG' in schedule (did you mean 'G'?)" in message
    assert_located(message, text, "GG", "schedule[1]")


def test_optim_for_unknown_player():
    text = edit("  G: {adam", "  GG: {adam")
    message = str(error_of(text))
    assert "optimizer for unknown player 'GG' (did you mean 'G'?)" in message
    assert_located(message, text, "GG", "optim.GG")


@pytest.mark.parametrize("value", ["{}", "{adam: {}, sgd: {lr: 0.1}}"])
def test_optim_needs_exactly_one_optimizer(value):
    text = edit("  G: {adam: {lr: 2.0e-4, betas: [0.5, 0.999]}}", f"  G: {value}")
    message = str(error_of(text))
    assert "choose exactly one optimizer: adam, rmsprop or sgd" in message
    assert_located(message, text, value, "optim.G")


def lowering_error_of(text: str) -> lossgraph.SpecError:
    """The error `lower` raises for a spec that loads: names a formula gives its own meaning are
    the compiler's to refuse, since the op table is the compiler's."""
    spec = lossgraph.loads(text, FILE)
    with pytest.raises(lossgraph.SpecError) as info:
        lower(spec)
    return info.value


@pytest.mark.parametrize("name", ["log", "exp", "l1", "sigmoid"])
def test_reserved_names(name):
    text = edit("data: {x: image, y: image}", f"data: {{x: image, y: image, {name}: image}}")
    message = str(lowering_error_of(text))
    assert f"data name '{name}' is reserved (choose another name)" in message
    assert_located(message, text, name, f"data.{name}", within=f"{name}: image")
    text = edit("  D_Y: {arch", f"  {name}: {{arch: unet}}\n  D_Y: {{arch")
    message = str(lowering_error_of(text))
    assert f"network name '{name}' is reserved (choose another name)" in message
    assert_located(message, text, name, f"networks.{name}", within=f"  {name}: {{arch: unet}}")


def test_reserved_names_of_random_variables_and_lets_all_at_once():
    text = edit("data: {x: image, y: image}", "data: {x: image, y: image}\nrandom: {exp: normal(8)}")
    text = edit("  fake_x: G_YX(y)\n", "  fake_x: G_YX(y)\n  softplus: x\n", text)
    error = lowering_error_of(text)
    message = str(error)
    assert len(error.problems) == 2
    assert "random variable name 'exp' is reserved (choose another name)" in message
    assert "let name 'softplus' is reserved (choose another name)" in message
    assert_located(message, text, "exp", "random.exp")
    assert_located(message, text, "softplus", "let.softplus")


def test_reserved_names_load_but_do_not_compile():
    """`load` knows no formula's meaning; `compile` (and so `lossgraph check`) refuses the name."""
    text = edit("data: {x: image, y: image}", "data: {x: image, y: image, log: image}")
    assert "log" in lossgraph.loads(text, FILE).data
    message = str(compile_error_of(text))
    assert "data name 'log' is reserved (choose another name)" in message
    assert_located(message, text, "log", "data.log", within="log: image")


def test_E_is_reserved_for_data_but_may_name_a_network():
    """BicycleGAN's encoder is E: E(...) is a call and E[...] the expectation."""
    text = edit("data: {x: image, y: image}", "data: {x: image, y: image, E: image}")
    assert "data name 'E' is reserved (choose another name)" in str(lowering_error_of(text))
    text = edit("  D_Y: {arch", "  E: {arch: unet}\n  D_Y: {arch")
    spec = lossgraph.loads(text, FILE)
    assert "E" in spec.networks
    assert "E" in lower(spec).networks


def test_name_clashes_between_data_let_and_network():
    text = edit("  fake_x: G_YX(y)\n", "  fake_x: G_YX(y)\n  x: y\n  D_X: y\n")
    text = edit("  D_Y: {arch", "  y: {arch: unet}\n  D_Y: {arch", text)
    error = error_of(text)
    message = str(error)
    assert len(error.problems) == 3
    assert "'x' is already declared at data.x (names of data, lets and networks must differ)" in message
    assert "'D_X' is already declared at networks.D_X" in message
    assert "'y' is already declared at data.y" in message
    line, _ = where(text, "  x: y")
    assert f"{FILE}:{line}:3: let.x: " in message
    line, _ = where(text, "  y: {arch: unet}")
    assert f"{FILE}:{line}:3: networks.y: " in message


def test_invalid_names():
    text = edit("  D:\n", "  D-1:\n")
    text = edit("      cycle:", "      cycle-loss:", text)
    message = str(error_of(text))
    assert_located(message, text, "D-1", "players.D-1")
    assert "player name 'D-1' is not a valid name" in message
    assert_located(message, text, "cycle-loss", "players.G.minimize.cycle-loss")


def test_player_with_both_or_neither_objective():
    text = edit("    networks: [G_XY, G_YX]\n", "    networks: [G_XY, G_YX]\n    maximize: {x: 'E[D_Y(x)]'}\n")
    message = str(error_of(text))
    assert "a player has exactly one of 'minimize' or 'maximize'" in message
    line, _ = where(text, "  G:")
    assert f"{FILE}:{line}:3: players.G: " in message


def test_several_problems_are_all_reported_and_bounded():
    text = edit("name: t\n", "name: t\nshedule: [D, G]\n")
    text = edit("networks: [D_X, D_Y]", "networks: [D_X, D_Z]", text)
    text = edit("steps: 10", "steps: many", text)
    text = edit("  G: {adam", "  Gen: {adam", text)
    error = error_of(text)
    message = str(error)
    # pydantic problems (unknown key, wrong type) come first; the name checks need a valid spec
    assert message.startswith("2 problems:\n")
    assert "unknown key 'shedule'" in message and "train.steps" in message
    text = edit("shedule: [D, G]\n", "", text).replace("steps: many", "steps: 10")
    error = error_of(text)
    message = str(error)
    assert message.startswith("2 problems:\n")
    assert "unknown network 'D_Z'" in message and "optimizer for unknown player 'Gen'" in message
    assert_located(message, text, "D_Z", "players.D.networks[1]")
    assert_located(message, text, "Gen", "optim.Gen")
    assert len(message.splitlines()) < 60


def test_message_length_is_bounded_for_a_few_errors():
    text = edit("name: t\n", "name: t\nshedule: 1\nplayrs: 2\nlett: 3\n")
    text = edit("steps: 10, batch_size: 2", "steps: many, batch_size: few", text)
    error = error_of(text)
    message = str(error)
    assert len(error.problems) == 5
    assert len(message.splitlines()) < 60
    assert all(len(line) < 200 for line in message.splitlines())


def test_hundreds_of_problems_are_kept_but_the_message_shows_twenty():
    text = GOOD + "".join(f"extra_{i}: 1\n" for i in range(300))
    error = error_of(text)
    message = str(error)
    assert len(error.problems) == 300
    assert message.startswith("300 problems:\n") and message.endswith("\n... and 280 more problems")
    assert len(message.splitlines()) < 70


def test_names_that_python_reads_differently_are_rejected():
    # ast NFKC-normalizes identifiers: a formula could never name the math-italic x
    text = edit("data: {x: image, y: image}", "data: {x: image, y: image, 𝑧: image}")
    message = str(error_of(text))
    assert "data name '𝑧' reads as 'z' in formulas (write 'z')" in message
    assert f"{FILE}:2:28: data.𝑧: " in message


def test_term_player_and_head_names_that_python_reads_as_another_are_rejected():
    # the generated code names a term's value after the term: terms 'ﬁx' and 'fix' were one
    # variable, so G minimized the second term twice and the first not at all
    text = edit("      adv: E[(D_Y(fake_y) - 1)^2] + E[(D_X(fake_x) - 1)^2]",
                "      ﬁx: E[(D_Y(fake_y) - 1)^2]\n      fix: E[(D_X(fake_x) - 1)^2]")
    text = edit("  G:\n", "  Ｇ:\n", text).replace("[D, G]", "[D, Ｇ]")
    message = str(error_of(text))
    line, _ = where(text, "      ﬁx:")
    assert f"{FILE}:{line}:7: players.Ｇ.minimize.ﬁx: term name 'ﬁx' reads as 'fix' in the generated code (write 'fix')" in message
    assert "player name 'Ｇ' reads as 'G' in the generated code (write 'G')" in message
    heads = edit("  D_Y: {arch: patchgan, width: 8, layers: 2}", "  D_Y: {arch: patchgan, width: 8, layers: 2, heads: {ﬁrst: raw}}")
    assert "head name 'ﬁrst' reads as 'first' in the generated code (write 'first')" in str(error_of(heads))


# -- files and built-in names ----------------------------------------------------------------------------


def test_load_from_a_file_uses_its_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD + "shedule: [D, G]\n")
    with pytest.raises(lossgraph.SpecError) as info:
        lossgraph.load(path)
    line = GOOD.count("\n") + 1
    assert f"{path}:{line}:1: shedule: unknown key 'shedule' (did you mean 'schedule'?)" in str(info.value)


def test_load_a_good_file(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    spec = lossgraph.load(path)
    assert spec.path == str(path) and spec.name == "t"
    assert lossgraph.load(str(path)).order == ["D", "G"]


def test_load_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(lossgraph.SpecError) as info:
        lossgraph.load(path)
    assert f"{path}: cannot read spec" in str(info.value)


def test_builtin_specs_by_name():
    for name in ("discogan", "cyclegan"):
        spec = lossgraph.load(name)
        assert spec.name == name and spec.path == f"{name}.yaml"
        assert lower(spec).players


def test_unknown_builtin_name_did_you_mean():
    with pytest.raises(lossgraph.SpecError) as info:
        lossgraph.load("discogn")
    assert "no spec file 'discogn' and no built-in spec of that name (did you mean 'discogan'?)" in str(info.value)


def test_missing_file_lists_builtins(tmp_path):
    with pytest.raises(lossgraph.SpecError) as info:
        lossgraph.load(tmp_path / "nothing-like-it.yaml")
    assert "no spec file" in str(info.value) and "'cyclegan', 'cyclegan-authors', 'discogan'" in str(info.value)


def test_folder_is_not_a_spec(tmp_path):
    with pytest.raises(lossgraph.SpecError) as info:
        lossgraph.load(tmp_path)
    assert f"{tmp_path}: is a folder, not a spec file" in str(info.value)


# -- checks that need the networks (compile) --------------------------------------------------------------


def test_unknown_arch_did_you_mean():
    text = edit("G_XY: {arch: unet,", "G_XY: {arch: unte,")
    message = str(compile_error_of(text))
    assert "unknown arch 'unte' (did you mean 'unet'?)" in message
    assert_located(message, text, "unte", "networks.G_XY.arch")


def test_unknown_arch_option_did_you_mean():
    text = edit("G_XY: {arch: unet, width: 8", "G_XY: {arch: unet, widht: 8")
    text = edit("D_X: {arch: patchgan, width: 8", "D_X: {arch: patchgan, outptu: raw, width: 8", text)
    message = str(compile_error_of(text))
    assert message.startswith("2 problems:\n")  # every network's options, collected
    assert "unknown option 'widht' for arch unet (did you mean 'width'?)" in message
    assert_located(message, text, "widht", "networks.G_XY.widht")
    assert "unknown option 'outptu' for arch patchgan (did you mean 'output'?)" in message
    assert_located(message, text, "outptu", "networks.D_X.outptu")


def test_network_declared_but_never_applied():
    text = edit("  D_Y: {arch", "  D_Z: {arch: patchgan, width: 8, layers: 2}\n  D_Y: {arch")
    message = str(compile_error_of(text))
    assert "network 'D_Z' is declared but never applied (apply it in a term or remove it)" in message
    assert_located(message, text, "D_Z", "networks.D_Z")


def test_term_that_is_not_a_scalar_is_located_at_the_term():
    text = edit("adv: E[(D_Y(fake_y) - 1)^2] + E[(D_X(fake_x) - 1)^2]", "adv: D_Y(fake_y)")
    message = str(compile_error_of(text))
    assert "term 'adv' is not a scalar: its value has shape (2, 1," in message
    assert "(take the expectation E[...] of per-sample values)" in message
    assert_located(message, text, "D_Y(fake_y)", "players.G.minimize.adv", occurrence=1)


@pytest.mark.parametrize("argument, shown", [("1", "1 (a number)"), ("E[x]", "E[x] of shape ()")])
def test_network_applied_to_a_scalar(argument, shown):
    # D_X is applied to images elsewhere first: the check must hold at every application
    text = edit("E[D_X(fake_x)^2]", f"E[D_X(fake_x)^2] + E[D_X({argument})]")
    message = str(compile_error_of(text))
    assert f"network 'D_X' applied to {shown}; networks take images (N, C, H, W) or vectors (N, k)" in message
    assert_located(message, text, f"D_X({argument})", "players.D.minimize.adv")


def test_player_whose_objective_ignores_its_networks():
    text = edit("adv: E[(D_Y(fake_y) - 1)^2] + E[(D_X(fake_x) - 1)^2]", "adv: E[l1(x - y)]")
    text = edit("      cycle: {weight: 10, expr: \"E[l1(G_YX(fake_y) - x)] + E[l1(G_XY(fake_x) - y)]\"}\n", "", text)
    message = str(compile_error_of(text))
    assert "the objective of player 'G' does not depend on its networks (G_XY, G_YX)" in message
    assert "(apply one of them in a term, or move the networks to the player that uses them)" in message
    assert_located(message, text, "E[l1(x - y)]", "players.G.minimize.adv")


def test_player_whose_objective_ignores_its_networks_is_located_at_its_own_term():
    text = edit("adv: E[(D_Y(fake_y) - 1)^2] + E[(D_X(fake_x) - 1)^2]", "adv: E[(D_Y(y) - 1)^2]")
    text = edit("      cycle: {weight: 10, expr: \"E[l1(G_YX(fake_y) - x)] + E[l1(G_XY(fake_x) - y)]\"}\n", "", text)
    message = str(compile_error_of(text))
    assert "the objective of player 'G' does not depend on its networks (G_XY, G_YX)" in message
    assert_located(message, text, "E[(D_Y(y) - 1)^2]", "players.G.minimize.adv", occurrence=1)


def test_samples_of_one_channel_images_are_images():
    """A spec whose images are grey (image(1)) shows its samples as grey grids (a spec of
    three-channel images refuses a one-channel sample: the next test)."""
    grey = GOOD.replace("data: {x: image, y: image}", "data: {x: image(1), y: image(1)}")
    assert grey != GOOD
    program = lossgraph.compile(lossgraph.loads(grey + "samples: [x, fake_y]\n"))
    assert [label for label, _ in program.graph.samples] == ["x", "fake_y"]


def test_metric_and_sample_problems_are_located_at_their_own_keys():
    # `fake_y` is also written in the let and in terms: the problem belongs at samples[1]
    text = GOOD + "samples: [x, D_Y(fake_y)]\nevaluate:\n  bad: l1(fake_y - y)\n"
    message = str(compile_error_of(text))
    assert "sample 'D_Y(fake_y)' is not an image batch (N, 3, H, W): shape (2, 1," in message
    assert_located(message, text, "D_Y(fake_y)", "samples[1]", within="[x, D_Y(fake_y)]")
    assert "metric 'bad' is not a scalar: shape (2,) (take the expectation E[...])" in message
    assert_located(message, text, "l1(fake_y - y)", "evaluate.bad")


def test_good_spec_compiles():
    program = lossgraph.compile(lossgraph.loads(GOOD, FILE))
    assert program.players == ["D", "G"]
