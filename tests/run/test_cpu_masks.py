"""The CPU compile pass (cpu_masks.py, Note [Boolean masks on the CPU]): a LeakyReLU's backward
reads its mask off the output, so a network compiled on the CPU saves no boolean tensor, and its
gradients are eager's."""


import pytest
import torch
from torch import fx, nn

from lossgraph.train.accelerate import compiled
from lossgraph.train.cpu_masks import MasksFromOutputs

aten = torch.ops.aten


def joint_graph(slope: float, shared_test: bool) -> tuple[fx.Graph, dict[str, fx.Node]]:
    """A joint graph as AOTAutograd traces a LeakyReLU: y = where(x > 0, x, s * x) forward and
    where(x > 0, g, s * g) backward, the two tests one node (`shared_test`) or two."""
    graph = fx.Graph()
    x = graph.placeholder("primals_1")
    g = graph.placeholder("tangents_1")
    test = graph.call_function(aten.gt.Scalar, (x, 0))
    y = graph.call_function(aten.where.self, (test, x, graph.call_function(aten.mul.Tensor, (x, slope))))
    backward_test = test if shared_test else graph.call_function(aten.gt.Scalar, (x, 0))
    grad = graph.call_function(aten.where.self, (backward_test, g, graph.call_function(aten.mul.Tensor, (g, slope))))
    graph.output((y, grad))
    return graph, {"x": x, "y": y, "grad": grad, "test": test}


@pytest.mark.parametrize("shared_test", [False, True])
def test_backward_mask_reads_the_output(shared_test):
    graph, nodes = joint_graph(0.2, shared_test)
    MasksFromOutputs()(graph)
    mask = nodes["grad"].args[0]
    assert mask.target is aten.gt.Scalar and mask.args == (nodes["y"], 0)
    assert mask.meta["partitioner_tag"] == "must_be_in_backward"  # never saved: computed from y in the backward
    assert nodes["y"].args[0] is nodes["test"] and nodes["test"].args[0] is nodes["x"]  # the forward as it was
    # the rewritten graph still computes a LeakyReLU and its gradient
    module = fx.GraphModule(torch.nn.Module(), graph)
    x, g = torch.tensor([-2.0, -0.0, 0.0, 3.0, float("nan")]), torch.arange(1.0, 6.0)
    y, grad = module(x, g)
    torch.testing.assert_close(y, torch.where(x > 0, x, 0.2 * x), equal_nan=True)
    torch.testing.assert_close(grad, torch.where(x > 0, g, 0.2 * g))


def test_a_negative_slope_keeps_its_mask():
    # with s < 0 the output's sign is not the input's: y > 0 would be the wrong mask
    graph, nodes = joint_graph(-0.5, shared_test=False)
    MasksFromOutputs()(graph)
    assert nodes["grad"].args[0].args == (nodes["x"], 0)


def test_uuid_follows_the_pass_source():
    assert MasksFromOutputs().uuid() == MasksFromOutputs().uuid()
    assert len(MasksFromOutputs().uuid()) == 64


def saved_dtypes(module: nn.Module, x: torch.Tensor) -> list[torch.dtype]:
    saved = []

    def pack(tensor):
        saved.append(tensor.dtype)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = module(x)
    out.square().mean().backward()
    return saved


def network() -> nn.Module:
    torch.manual_seed(0)  # the same weights each call
    # a LeakyReLU whose output a convolution saves anyway, one after a norm, one that only a
    # pooling reads (its output saved for the mask alone), and a ReLU
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.LeakyReLU(0.2), nn.Conv2d(8, 4, 3), nn.InstanceNorm2d(4),
                         nn.LeakyReLU(0.2), nn.Conv2d(4, 4, 3), nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1))


def test_compiled_on_the_cpu_saves_no_boolean_and_matches_eager():
    x = torch.randn(2, 3, 12, 12, requires_grad=True)
    gradients = {}
    saved = {}
    for label, module in (("eager", network()), ("plain", torch.compile(network(), dynamic=False)),
                          ("lossgraph", compiled(network(), "cpu"))):
        saved[label] = saved_dtypes(module, x)
        gradients[label] = (x.grad.clone(), [p.grad.clone() for p in module.parameters()])
        x.grad = None
    assert torch.bool in saved["plain"]  # torch.compile alone saves the mask: what the pass removes
    assert torch.bool not in saved["lossgraph"]
    for label in ("plain", "lossgraph"):
        torch.testing.assert_close(gradients[label][0], gradients["eager"][0], rtol=1e-4, atol=1e-6)
        for ours, wanted in zip(gradients[label][1], gradients["eager"][1]):
            torch.testing.assert_close(ours, wanted, rtol=1e-4, atol=1e-6)
