"""Generated code a careful reviewer would accept, for every shipped spec (Note [Generated names]).

One training function; every line that computes a value says where the spec wrote it, and under
a player's step it cites that player's terms (or a let), never another player's; names from the
spec or from what a value computes, never numbered (`v_2`, `fake_2`); no private torch API; no
per-sample mean averaged again; no value computed that nothing reads.
"""

import re

import pytest

import lossgraph
from tests.conftest import SPECS

PROGRAMS = {spec.stem: lossgraph.compile(str(spec)) for spec in SPECS}
NOT_COMPUTING = re.compile(r'^\s*(\w+ = (nets|inputs)\[|[\w, .=]+ = None\b|loss_\w+ = \w+$|return|"|#|def |@|for |with |\}|\]|optimizers|torch\.autograd\.backward|\w+\.backward)')


def functions(code: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current = None
    for line in code.splitlines():
        match = re.match(r"def (\w+)\(", line)
        if match:
            current = found.setdefault(match.group(1), [])
        elif current is not None and line.startswith("    "):
            current.append(line)
    return found


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_one_training_function(name):
    program = PROGRAMS[name]
    # a spec with `diversity(...)` metrics also gets the outputs they compare (munit), one with
    # fid, kid or cluster_accuracy the images or labels those compare (tunit)
    written = [formula.strip() for formula in program.spec.evaluate.values()]
    diverse = any(formula.startswith("diversity(") for formula in written)
    paired = any(formula.startswith(("fid(", "kid(", "cluster_accuracy(")) for formula in written)
    assert list(functions(program.code)) == (["losses", "iteration", "samples", "evaluate"]
                                             + ["distribution_images"] * paired + ["diversity_images"] * diverse)
    for judge in PROGRAMS[name].judge_code.values():
        assert list(functions(judge)) == ["iteration"]


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_computing_line_points_at_the_spec(name):
    program = PROGRAMS[name]
    for code in (program.code, *program.judge_code.values()):
        for function, lines in functions(code).items():
            for line in lines:
                if " = " in line and not NOT_COMPUTING.match(line):
                    # a spec line, or what the compiler adds for the step's mechanics, said as such
                    assert re.search(r"  # (\S+\.yaml:\d+ |a leaf cut from the graph below|the history pool of)", line), \
                        f"{name} {function}: {line.strip()}"


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_a_step_cites_its_own_players_terms(name):
    iteration = functions(PROGRAMS[name].code)["iteration"]
    player = None
    for line in iteration:
        header = re.match(r"\s*# (\w+): (minimize|maximize) ", line)
        if header:
            player = header.group(1)
            continue
        cited = re.search(r"# \S+\.yaml:\d+ players\.(\w+)\.", line)
        if cited and player is not None:
            assert cited.group(1) == player, f"{name}: {player}'s step cites {cited.group(1)}'s term: {line.strip()}"


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_names_are_not_numbered_and_no_private_torch(name):
    program = PROGRAMS[name]
    code = program.code
    spec = program.spec
    spec_names = {*spec.let, *spec.data, *spec.random, *spec.networks, *spec.evaluate,
                  *(term for p in spec.players.values() for term in p.terms)}
    assigned = re.findall(r"^\s*([\w, ]+) = ", code, re.M)
    names = {part.strip() for group in assigned for part in group.split(",")}
    numbered = [n for n in names if (re.fullmatch(r"v(_\d+)?", n) or re.fullmatch(r"\w+_\d+", n)) and n not in spec_names]
    assert not numbered, numbered
    assert "torch._" not in code
    assert not re.search(r"\.mean\(dim=[^)]*\)\)?\.mean\(\)", code), "a per-sample mean averaged again"


def test_lets_keep_their_names():
    """BicycleGAN's z_enc is a let the user named: it gets a line of its own, under its name."""
    assert "z_enc = E_mu_y + torch.exp(E_logvar_y / 2) * eps  # bicyclegan.yaml:20 let.z_enc" in PROGRAMS["bicyclegan"].code


def test_a_loss_has_its_players_name_though_it_is_one_term():
    code = PROGRAMS["cogan-ns"].code
    iteration = "\n".join(functions(code)["iteration"])
    assert "loss_G = real + fake_G  # cogan-ns.yaml:10 players.G.minimize" in "\n".join(functions(code)["losses"])
    assert "loss_D = -(real + fake_D)  # cogan.yaml:32 players.D.maximize" in "\n".join(functions(code)["losses"])
    assert re.search(r"loss_G = fake_G  # cogan-ns.yaml:10 players.G.minimize\n", iteration)


def test_a_let_keeps_its_name_where_a_term_freezes_its_network():
    """StarGAN v2's G_ref updates G only, so its `sr1` reads S frozen: a value other than the `sr1`
    of G's and D_ref's steps, named after the let and the player, never numbered. Scheduled weights
    are named as their terms' variables are (`ds_G`, `ds_G_ref`)."""
    losses = "\n".join(functions(PROGRAMS["stargan-v2"].code)["losses"])
    assert re.search(r"^\s*sr1 = .*\(S_x_ref, ", losses, re.M)
    assert re.search(r"^\s*sr1_G_ref = .*\(S_x_ref_G_ref, ", losses, re.M)
    assert "S_x_ref_G_ref = torch.func.functional_call(S, frozen(S), (x_ref,))" in losses
    assert 'weight_ds_G = inputs["weight/G/ds"]' in losses and 'weight_ds_G_ref = inputs["weight/G_ref/ds"]' in losses


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_value_the_iteration_computes_is_read(name):
    """No dead line: a let under a call a step reads kept is not written again there (BicycleGAN's
    z_enc and UNIT's z1, z2 were, in D's step), and every name bound is read later or returned."""
    import ast

    tree = ast.parse(PROGRAMS[name].code)
    iteration = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "iteration")
    statements = [node for node in ast.walk(iteration) if isinstance(node, (ast.Assign, ast.AugAssign))]
    reads = [(node.lineno, node.id) for node in ast.walk(iteration) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)]
    dead = []
    for statement in statements:
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        for target in targets:
            for bound in (n for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)):
                if isinstance(statement.value, ast.Constant) and statement.value.value is None:
                    continue  # `a = b = None`: a repeat frees the previous repeat's graph
                if bound.id == "_" or any(line > statement.lineno and read == bound.id for line, read in reads):
                    continue
                if any(line == statement.lineno and read == bound.id for line, read in reads):
                    continue  # `x.grad = None` style and reads in its own loop
                dead.append(f"{bound.id} (line {statement.lineno})")
    assert not dead, dead
