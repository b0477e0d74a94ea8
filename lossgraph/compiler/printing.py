"""IR back to formula text, in the spec language itself (`E[l1(G_YX(G_XY(x)) - x)]`).

Used in error messages, `explain` notes and rule listings. Precedence comes from the op table.
"""

from __future__ import annotations

from lossgraph.compiler.ops import OPS, Ops


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def formula_text(node, names=None) -> str:
    """`node` as formula text; `names` (node -> let name) writes let-bound values by their name."""
    return _text(node, names or {}, top=True)[0]


_ATOM = 100


def _text(node, names, top: bool = False) -> tuple[str, int]:
    if not top and node in names:
        return names[node], _ATOM
    op = node.op
    if op is Ops.CONST:
        text = number_text(node.arg)
        return (text, _ATOM) if node.arg >= 0 else (text, OPS[Ops.NEG].infix)
    if op in (Ops.DATA, Ops.RANDOM, Ops.WEIGHT):
        return str(node.arg), _ATOM
    if op is Ops.LEAF:  # grad's variable reads as the value it was cut from: grad(D(x), x)
        return _text(node.args[0], names)
    if op in (Ops.APPLY, Ops.FROZEN):
        return f"{node.arg}({', '.join(_text(a, names)[0] for a in node.args)})", _ATOM
    if op is Ops.HEAD:
        call = node.args[0]
        return f"{call.arg}.{node.arg[0]}({', '.join(_text(a, names)[0] for a in call.args)})", _ATOM
    row = OPS[op]
    if op is Ops.MEAN:
        return f"E[{_text(node.args[0], names)[0]}]", _ATOM
    if row.infix and len(node.args) == 1:
        inner, power = _text(node.args[0], names)
        return f"-{_wrap(inner, power, row.infix)}", row.infix
    if row.infix:
        (left, left_power), (right, right_power) = (_text(a, names) for a in node.args)
        right_assoc = op is Ops.POW
        left = _wrap(left, left_power, row.infix + (1 if right_assoc else 0))
        right = _wrap(right, right_power, row.infix + (0 if right_assoc else 1))
        return f"{left} {row.spelling} {right}", row.infix
    return f"{row.spelling}({', '.join(_text(a, names)[0] for a in row.written(node.args))})", _ATOM


def _wrap(text: str, power: int, needed: int) -> str:
    return f"({text})" if power < needed else text
