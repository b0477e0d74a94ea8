"""The lines of one optimizer step: zero the gradients, backward, step, and a critic's clipping.

Note [Cut leaves]: a step whose backward passes through network calls that a later step
differentiates again keeps their graph (phases.py). Those calls take their differentiated inputs
as leaves cut from the graph below (`fake_in = fake.detach().requires_grad_()`); the step's
backward first runs to the leaves, keeping the graph above them, then goes on from the values
they were cut from, freeing the graph below as a hand-written step's backward would. The gradient
at the leaves is taken by `backward(inputs=leaves)` into their `.grad`, not by
`torch.autograd.grad`: hooks that ask the engine whether it will run a leaf's node (the module
tracker of `FlopCounterMode`) reject `autograd.grad` to a leaf, and a hand-written step takes its
gradients by `backward` too. The leaves' `.grad` is released once it is passed on.
"""

from __future__ import annotations

from typing import Sequence

from lossgraph.compiler.graph import Player


def update_lines(player: Player, loss: str, retain: bool = False,
                 cut: Sequence[tuple[str, str]] = (), reused_by: Sequence[str] = ()) -> list[tuple[str, bool, int]]:
    """(code, under no_grad, extra depth) lines; `retain` keeps the whole autograd graph for a later
    step; `cut` (leaf, value) pairs: Note [Cut leaves], for the steps `reused_by`.

    A step steps its player's optimizer (the player it is a step of, `step_of`) and those of the
    players it also steps (`also_steps`): each zeroed before the one backward, each stepped and
    clipped after it, as its own step would."""
    optimizers = [(f'optimizers["{name}"]', f'parameters["{name}"]', clip) for name, clip in player.optimizers]
    parameters = " + ".join(held for _, held, _ in optimizers)
    if cut:
        leaves, values = ", ".join(leaf for leaf, _ in cut), ", ".join(value for _, value in cut)
        grads = ", ".join(f"{leaf}.grad" for leaf, _ in cut)
        later = " and ".join(f"{name}'s step" for name in reused_by) or "a later step"
        them = "it" if len(cut) == 1 else "them"
        backward = [
            f"# {player.name}'s backward frees the graph below {leaves} but keeps the one above {them}, which {later}",
            f"# differentiates again: it runs to {leaves} retaining the graph, then on from {values}",
            f"torch.autograd.backward({loss}, inputs=({leaves}{',' if len(cut) == 1 else ''}), retain_graph=True)",
            f"torch.autograd.backward(({loss}, {values}), (None, {grads}), inputs={parameters})",
            f"{' = '.join(f'{leaf}.grad' for leaf, _ in cut)} = None",
        ]
    else:
        backward = [f"{loss}.backward(inputs={parameters}{', retain_graph=True' if retain else ''})"]
    lines = []
    if player.also:
        others = " and ".join(f"{other.player}'s networks with {other.player}'s optimizer" for other in player.also)
        lines.append((f"# one backward: {player.name}'s gradient also steps {others}", False, 0))
    lines += [(f"{optimizer}.zero_grad(set_to_none=True)", False, 0) for optimizer, _, _ in optimizers]
    lines += [(code, False, 0) for code in backward]
    for optimizer, held, clip in optimizers:
        lines.append((f"{optimizer}.step()", False, 0))
        if clip is not None:
            bound = repr(clip)
            lines += [(f"for parameter in {held}:  # a WGAN critic's Lipschitz bound: clip every weight", True, 0),
                      (f"parameter.clamp_(-{bound}, {bound})", True, 1)]
    return lines
