"""The functions of a generated module besides the iteration: `losses`, `samples`, `evaluate`.

`losses(nets, inputs)` computes every player's objective and every term as written, each distinct
network application once, shared across terms and players; `samples` the rows of the sample grid;
`evaluate` the held-out metrics of one batch. A spec with `fid`, `kid` or `diversity` metrics
(compiler/distributions.py) also gets `distribution_images` and `diversity_images`: the image
batches those metrics compare, which the run computes batch by batch over the whole held-out set.
None of them steps an optimizer.
"""

from __future__ import annotations

from typing import Mapping

from lossgraph.compiler.codegen.lines import player_comment
from lossgraph.compiler.codegen.names import term_names
from lossgraph.compiler.codegen.writer import FunctionWriter, Root, straight_line
from lossgraph.compiler.distributions import FORMS
from lossgraph.compiler.expr import Expr
from lossgraph.compiler.graph import Graph


def emit_losses(graph: Graph, ranks: Mapping[Expr, int]) -> str:
    names = term_names(graph)
    roots = [Root(term.value, names[(player.name, term.name)], f"players.{player.name}.", player.name)
             for player in graph.players for term in player.terms]
    writer = FunctionWriter(graph, ranks, [player.loss for player in graph.players])
    straight_line(writer, roots)
    losses = {}
    for player in graph.players:
        if player.loss in writer.named:  # the loss is one term's value: say so, under the loss's name
            losses[player.name] = writer.names.fresh(f"loss_{player.name}")
            writer.body.add(f"{losses[player.name]} = {writer.named[player.loss]}", player_comment(player.origin))
        else:
            losses[player.name] = writer.assign(player.loss, f"loss_{player.name}")
            writer.body.lines[-1].comment = player_comment(player.origin)
    returns = []
    for player in graph.players:
        returns.append(f'"{player.name}": {losses[player.name]}')
        returns += [f'"{player.name}/{term.name}": {writer.named[term.value]}' for term in player.terms]
    doc = "Every player's objective and term; each network application runs once."
    return writer.function("losses(nets, inputs)", doc, returns)


def emit_samples(graph: Graph, ranks: Mapping[Expr, int]) -> str:
    writer = FunctionWriter(graph, ranks, [expr for _, expr in graph.samples])
    straight_line(writer, [Root(expr, None, "samples") for _, expr in graph.samples])
    rows = [f"({label!r}, {writer.named.get(expr) or writer.renderer.text(expr)})" for label, expr in graph.samples]
    return writer.function("samples(nets, inputs)", "Rows of the sample grid: (label, images in [-1, 1]).", rows,
                           decorator="@torch.no_grad()", returns_list=True)


def emit_evaluate(graph: Graph, ranks: Mapping[Expr, int]) -> str:
    writer = FunctionWriter(graph, ranks, [expr for _, expr in graph.evaluate])
    straight_line(writer, [Root(expr, name, "evaluate.") for name, expr in graph.evaluate])
    rows = [f'"{name}": {writer.named.get(expr) or writer.renderer.text(expr)}' for name, expr in graph.evaluate]
    return writer.function("evaluate(nets, inputs)", "Held-out metrics, as the spec's evaluate: section defines them.", rows,
                           decorator="@torch.no_grad()")


def emit_distribution_images(graph: Graph, ranks: Mapping[Expr, int], kinds: tuple[str, ...], signature: str, doc: str) -> str | None:
    """The images of the distribution metrics of `kinds`, keyed `<metric>/<role>` (`fid_XY/generated`,
    `fid_XY/real`, `div/outputs`); None when the spec has no such metric."""
    entries = [(f"{metric.name}/{role}", image, metric.name) for metric in graph.distributions if metric.kind in kinds
               for role, image in zip(FORMS[metric.kind].arguments, metric.images)]
    if not entries:
        return None
    writer = FunctionWriter(graph, ranks, [image for _, image, _ in entries])
    straight_line(writer, [Root(image, None, f"evaluate.{name}") for _, image, name in entries])
    rows = [f'"{key}": {writer.named.get(image) or writer.renderer.text(image)}' for key, image, _ in entries]
    return writer.function(signature, doc, rows, decorator="@torch.no_grad()")
