"""The IR: interning, immutability, traversal, substitution."""

import pytest

from lossgraph.compiler.expr import Expr, const, substitute
from lossgraph.compiler.ops import OPS, Ops


def data(name):
    return Expr(Ops.DATA, (), name)


def test_equal_structure_is_the_same_node():
    a = Expr.make(Ops.APPLY, data("x"), arg="G") if False else Expr(Ops.APPLY, (data("x"),), "G")
    b = Expr(Ops.APPLY, (data("x"),), "G")
    assert a is b
    assert Expr.make(Ops.MEAN, a) is Expr.make(Ops.MEAN, b)
    assert Expr(Ops.APPLY, (data("x"),), "H") is not a


def test_random_draws_with_different_names_stay_apart():
    assert Expr(Ops.RANDOM, (), "z1") is not Expr(Ops.RANDOM, (), "z2")


def test_nodes_are_immutable():
    node = data("x")
    with pytest.raises(AttributeError):
        node.op = Ops.CONST


def test_make_checks_arity():
    with pytest.raises(ValueError, match="takes 1 arguments"):
        Expr.make(Ops.LOG, data("x"), data("y"))


def test_walk_visits_shared_nodes_once_children_first():
    x = data("x")
    shared = Expr.make(Ops.EXP, x)
    root = Expr.make(Ops.ADD, shared, Expr.make(Ops.LOG, shared))
    order = list(root.walk())
    assert order.count(shared) == 1
    assert order.index(x) < order.index(shared) < order.index(root)


def test_substitute_rebuilds_through_interning():
    x, y = data("x"), data("y")
    root = Expr.make(Ops.ADD, Expr.make(Ops.LOG, x), const(1))
    assert substitute(root, {x: y}) is Expr.make(Ops.ADD, Expr.make(Ops.LOG, y), const(1))


def test_every_op_has_one_row_with_a_lowering_or_a_leaf_role():
    for op in Ops:
        row = OPS[op]
        assert row.op is op
        # leaves and network calls are rendered by codegen itself
        assert row.torch is not None or op in (Ops.CONST, Ops.DATA, Ops.RANDOM, Ops.WEIGHT, Ops.APPLY, Ops.HEAD, Ops.FROZEN)


def test_deep_chain_walks_without_recursion_error():
    node = data("x")
    for _ in range(5000):
        node = Expr.make(Ops.EXP, node)
    assert len(list(node.walk())) == 5001
    assert str(Expr.make(Ops.LOG, data("x"))) == "log(x)"
