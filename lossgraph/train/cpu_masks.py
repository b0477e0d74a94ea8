"""A pass for `torch.compile` on the CPU: a LeakyReLU's backward reads its mask off the output.

Note [Boolean masks on the CPU]
    Inductor's vectorized CPU kernels (torch 2.13, AVX-512 and AVX2 alike) store and load `bool`
    tensors far slower than eager does: `x > 0` on a 16x32x16x16 map takes about 1.6 ms compiled
    against 0.14 ms eager (0.11 ms with vectorization off), so one saved mask costs more than a
    PatchGAN's whole forward. A LeakyReLU (`where(x > 0, x, s * x)`) is differentiated by a mask
    of its input, `x > 0`, and AOTAutograd's partitioner saves that mask, one byte an element,
    from the forward for the backward: a compiled PatchGAN's step was 1.27 times eager and a
    U-Net's 1.08. For a slope s >= 0, `y > 0` is the same mask (y = x where x > 0, else s * x
    <= 0; a NaN compares false either way), so this pass makes the backward compare the output,
    in the backward (the partitioner's tag `must_be_in_backward`): the partitioner saves y, which
    a convolution reading it saves anyway, or else saves y as eager's autograd saves the input,
    four bytes an element, and never a mask. Each gradient is the same float computation as
    before. On CUDA masks are cheap; the pass runs on CPU graphs only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch._inductor.custom_graph_pass import CustomGraphPass

aten = torch.ops.aten
SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


class MasksFromOutputs(CustomGraphPass):
    """A joint-graph pass (`torch._inductor.config.joint_custom_post_pass`): each backward mask
    `x > 0` of a LeakyReLU or ReLU output `y = where(x > 0, x, s * x)`, s >= 0, becomes `y > 0`."""

    def __call__(self, graph: torch.fx.Graph) -> None:
        backward = _backward_nodes(graph)
        rewritten = 0
        for node in list(graph.nodes):
            if node in backward or not _is_positive_test(node):
                continue
            readers = [user for user in node.users if user in backward]
            value = node.args[0]
            outputs = [user for user in value.users if _leaky_of(user, value)]
            if not readers or not outputs:
                continue
            with graph.inserting_after(outputs[0]):
                mask = graph.call_function(aten.gt.Scalar, (outputs[0], 0))
            mask.meta.update(node.meta)  # the same shape and dtype
            # computed in the backward, from y: the partitioner may save y but never the mask itself
            mask.meta["partitioner_tag"] = "must_be_in_backward"
            for reader in readers:
                reader.replace_input_with(node, mask)
            if not node.users:
                graph.erase_node(node)
            rewritten += 1
        if rewritten:
            graph.lint()

    def uuid(self) -> Any:
        # inductor caches compiled graphs by their passes' uuid: this file's text as imported, so
        # an edit recompiles
        return SOURCE_HASH


# one instance for every compile: torch.compile reuses a compiled graph only under an equal backend,
# and backends with this pass are equal when they hold the same pass (a network compiled twice, or
# discogan's two discriminators of one shape, then share one graph instead of compiling again)
MASKS_FROM_OUTPUTS = MasksFromOutputs()


def _is_positive_test(node: torch.fx.Node) -> bool:
    """`x > 0` on a tensor x."""
    return (node.op == "call_function" and node.target is aten.gt.Scalar and len(node.args) == 2
            and isinstance(node.args[0], torch.fx.Node) and node.args[1] == 0)


def _leaky_of(node: torch.fx.Node, value: torch.fx.Node) -> bool:
    """`node` is where(value > 0, value, value * s) with a constant s >= 0 (LeakyReLU; s = 0 is ReLU)."""
    if node.op != "call_function" or node.target is not aten.where.self or len(node.args) != 3:
        return False
    test, kept, scaled = node.args
    return (isinstance(test, torch.fx.Node) and _is_positive_test(test) and test.args[0] is value and kept is value
            and isinstance(scaled, torch.fx.Node) and scaled.op == "call_function"
            and scaled.target in (aten.mul.Tensor, aten.mul.Scalar) and len(scaled.args) == 2
            and scaled.args[0] is value and isinstance(scaled.args[1], (int, float)) and scaled.args[1] >= 0)


def _backward_nodes(graph: torch.fx.Graph) -> set[torch.fx.Node]:
    """The joint graph's backward: the nodes that depend on an incoming gradient (a tangent)."""
    found: set[torch.fx.Node] = set()
    for node in graph.nodes:  # in topological order
        if (node.op == "placeholder" and node.name.startswith("tangents")) or not found.isdisjoint(node.all_input_nodes):
            found.add(node)
    return found
