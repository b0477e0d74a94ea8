"""Contrastive and clustering ops (TUNIT's, docs/methods.md's conventions): `softmax(v)`,
`nce(q, k, Q, tau)`, `mi(p, p2)`, and `argmax` as a pseudo-label inside a loss.

Each compiled loss is checked against the formula written out here independently, in float64 (the
mutual information entry by entry in plain Python), on the same networks and inputs; hypothesis
varies seeds, batch sizes and scales. The ops stay finite with logits in the hundreds, the key and
negatives of `nce` get no gradient, and an `argmax` that a gradient would have to pass through is
refused at its place.
"""

import math

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import lossgraph
from lossgraph.compiler.interpret import interpret
from lossgraph.compiler.runtime import info_nce, mutual_information
from lossgraph.language.errors import SpecError
from lossgraph.views.show import render
from tests.conftest import count_forwards

PROPERTY = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], phases=(Phase.explicit, Phase.reuse, Phase.generate))

SPEC = """
name: contrastive
data: {x: image, x2: image}
networks:
  C: {arch: classifier, classes: 5, width: 8, depth: 2}
  S: {arch: classifier, classes: 6, width: 8, depth: 2}
let:
  p: softmax(C(x))
  p2: softmax(C(x2))
players:
  C:
    networks: [C, S]
    minimize:
      moco: E[nce(S(x), S(x2), S(roll(x)), 0.07)]
      mi: {weight: -5, expr: "mi(p, p2)"}
      pseudo: E[ce(C(x2), argmax(C(x)))]
      picked: E[relu(1 - pick(C(x2), roll(argmax(C(x)))))]
train: {image_size: 16}
"""


def compile_text(text, name="contrastive.yaml"):
    return lossgraph.compile(lossgraph.loads(text, name))


@pytest.fixture(scope="module")
def program():
    return compile_text(SPEC)


def float64(program, seed, batch):
    nets = {name: net.double() for name, net in program.build_networks(seed=seed).items()}
    inputs = {k: (v.double() if v.is_floating_point() else v) for k, v in program.example_inputs(batch_size=batch, seed=seed).items()}
    return nets, inputs


def nce_reference(q, k, negatives, tau):
    """-log(exp(q.k / tau) / (exp(q.k / tau) + sum_m exp(q.Q_m / tau))) per sample, k and Q constants."""
    k, negatives = k.detach(), negatives.detach()
    positive = (q * k).sum(1) / tau
    others = q @ negatives.T / tau
    every = torch.cat([positive[:, None], others], 1)
    return torch.logsumexp(every, 1) - positive


def mi_reference(p, p2, lamb=1.0):
    """docs/methods.md's `mi`, entry by entry in plain Python floats; `lamb` weighs the marginals'
    log terms (IIC's code's lamb)."""
    p, p2 = p.tolist(), p2.tolist()
    K = len(p[0])
    J = [[sum(a[i] * b[j] for a, b in zip(p, p2)) for j in range(K)] for i in range(K)]
    J = [[(J[i][j] + J[j][i]) / 2 for j in range(K)] for i in range(K)]
    total = sum(map(sum, J))
    P = [[J[i][j] / total for j in range(K)] for i in range(K)]
    rows = [max(sum(P[i]), 1e-10) for i in range(K)]
    columns = [max(sum(P[i][j] for i in range(K)), 1e-10) for j in range(K)]
    value = 0.0
    for i in range(K):
        for j in range(K):
            entry = max(P[i][j], 1e-10)
            value += entry * (math.log(entry) - lamb * math.log(rows[i]) - lamb * math.log(columns[j]))
    return value


def reference(nets, v):
    C, S, x, x2 = nets["C"], nets["S"], v["x"], v["x2"]
    logits, logits2 = C(x), C(x2)
    softmax = lambda z: torch.exp(z - z.max(1, keepdim=True).values) / torch.exp(z - z.max(1, keepdim=True).values).sum(1, keepdim=True)  # noqa: E731
    labels = logits.detach().argmax(1)
    moco = nce_reference(S(x), S(x2), S(torch.roll(x, 1, 0)), 0.07).mean()
    mi = torch.tensor(mi_reference(softmax(logits), softmax(logits2)), dtype=torch.float64)
    pseudo = (torch.logsumexp(logits2, 1) - logits2[torch.arange(len(x)), labels]).mean()
    picked = torch.relu(1 - logits2[torch.arange(len(x)), torch.roll(labels, 1, 0)]).mean()
    return {"C/moco": moco, "C/mi": -5 * mi, "C/pseudo": pseudo, "C/picked": picked}


@settings(max_examples=8, **PROPERTY)
@given(seed=st.integers(0, 2**16), batch=st.integers(2, 6))
def test_losses_equal_the_formulas_in_float64(program, seed, batch):
    nets, inputs = float64(program, seed, batch)
    got = program.losses(nets, inputs)
    want = reference(nets, inputs)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value.to(got[key].dtype), rtol=1e-9, atol=1e-10, msg=key)
    torch.testing.assert_close(got["C"], sum(want.values()), rtol=1e-9, atol=1e-10)


def test_the_interpreter_computes_what_the_generated_code_does(program):
    nets, inputs = float64(program, 5, 4)
    got = program.losses(nets, inputs)
    for player in program.graph.players:
        values = interpret([player.loss], nets, inputs)
        torch.testing.assert_close(values[player.loss], got[player.name], rtol=1e-12, atol=1e-12)


def test_each_network_application_runs_once(program):
    nets = program.build_networks(seed=0)
    counts = count_forwards(nets)
    program.losses(nets, program.example_inputs(batch_size=3))
    assert counts == {"C": 2, "S": 3}  # C(x), C(x2); S(x), S(x2), S(roll(x))


@settings(max_examples=25, **PROPERTY)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 6), m=st.integers(1, 9), d=st.integers(1, 7),
       scale=st.sampled_from([1e-3, 1.0, 30.0, 300.0]), tau=st.sampled_from([0.07, 0.5, 2.0]))
def test_nce_is_infonce_with_constant_key_and_negatives(seed, n, m, d, scale, tau):
    generator = torch.Generator().manual_seed(seed)
    q = (scale * torch.randn(n, d, generator=generator, dtype=torch.float64)).requires_grad_()
    k = (scale * torch.randn(n, d, generator=generator, dtype=torch.float64)).requires_grad_()
    negatives = (scale * torch.randn(m, d, generator=generator, dtype=torch.float64)).requires_grad_()
    got = info_nce(q, k, negatives, tau)
    torch.testing.assert_close(got, nce_reference(q, k, negatives, tau), rtol=1e-9, atol=1e-9)
    assert got.shape == (n,) and bool((got >= 0).all())
    got.sum().backward()
    assert k.grad is None and negatives.grad is None and q.grad is not None


def test_nce_flattens_maps_and_is_finite_in_float32_with_logits_in_the_hundreds():
    q = torch.randn(4, 2, 3, 3) * 300
    k = torch.randn(4, 2, 3, 3) * 300
    negatives = torch.randn(7, 18) * 300
    value = info_nce(q, k, negatives, 0.07)
    assert torch.isfinite(value).all()
    torch.testing.assert_close(value.double(), nce_reference(q.flatten(1).double(), k.flatten(1).double(), negatives.double(), 0.07), rtol=1e-5, atol=1e-2)


@settings(max_examples=25, **PROPERTY)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 8), classes=st.integers(1, 6), scale=st.sampled_from([0.1, 3.0, 300.0]))
def test_mi_is_the_symmetric_clamped_batch_mutual_information(seed, n, classes, scale):
    generator = torch.Generator().manual_seed(seed)
    p = torch.softmax(scale * torch.randn(n, classes, generator=generator, dtype=torch.float64), 1)
    p2 = torch.softmax(scale * torch.randn(n, classes, generator=generator, dtype=torch.float64), 1)
    got = mutual_information(p, p2)
    assert got.shape == () and math.isfinite(float(got))
    assert float(got) == pytest.approx(mi_reference(p, p2), rel=1e-9, abs=1e-9)


@settings(max_examples=25, **PROPERTY)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 8), classes=st.integers(1, 6), lamb=st.sampled_from([0.5, 1.5, 2.0]))
def test_mi_with_a_weight_on_the_marginals_is_iics_lamb_form(seed, n, classes, lamb):
    """mi(p, p2, lamb) weighs log P_i and log P_j by lamb: mi plus (lamb - 1) times the two
    marginals' entropies."""
    generator = torch.Generator().manual_seed(seed)
    p = torch.softmax(3 * torch.randn(n, classes, generator=generator, dtype=torch.float64), 1)
    p2 = torch.softmax(3 * torch.randn(n, classes, generator=generator, dtype=torch.float64), 1)
    got = float(mutual_information(p, p2, lamb))
    assert got == pytest.approx(mi_reference(p, p2, lamb), rel=1e-9, abs=1e-9)
    joint = p.T @ p2
    marginal = ((joint + joint.T) / 2 / joint.sum()).sum(1).clamp_min(1e-10)
    entropy = -float((marginal * marginal.log()).sum())
    assert got == pytest.approx(mi_reference(p, p2) + 2 * (lamb - 1) * entropy, rel=1e-6, abs=1e-9)


def test_mi_with_lamb_compiles_and_reads_as_written(program):
    """The third argument reaches the step; left out, it is 1, and the generated code and `show`
    read mi(p, p2) as written."""
    weighted = compile_text(SPEC.replace('"mi(p, p2)"', '"mi(p, p2, 1.5)"'))
    nets, inputs = float64(weighted, 3, 6)
    p = torch.softmax(nets["C"](inputs["x"]), 1).detach()
    p2 = torch.softmax(nets["C"](inputs["x2"]), 1).detach()
    got = float(weighted.losses(nets, inputs)["C/mi"])
    assert got == pytest.approx(-5 * mi_reference(p, p2, 1.5), rel=1e-9)
    assert "mutual_information(p, p2, lamb=1.5)" in weighted.code
    assert "mutual_information(p, p2)" in program.code and "lamb" not in program.code
    assert "mi(p, p2, 1.5)" in render(weighted.graph)
    assert "mi(p, p2)" in render(program.graph) and "mi(p, p2, 1)" not in render(program.graph)


def test_mi_of_views_that_agree_on_balanced_clusters_is_log_k():
    """Known values: identical one-hot views spread evenly over K clusters give log K; views
    independent of each other give 0."""
    K = 4
    one_hot = torch.eye(K, dtype=torch.float64).repeat(3, 1)
    assert float(mutual_information(one_hot, one_hot)) == pytest.approx(math.log(K), rel=1e-6)
    uniform = torch.full((12, K), 1 / K, dtype=torch.float64)
    assert float(mutual_information(one_hot, uniform)) == pytest.approx(0.0, abs=1e-9)


def test_ops_stay_finite_in_float32_with_logits_in_the_hundreds(program):
    nets = program.build_networks(seed=1)
    inputs = program.example_inputs(batch_size=4, seed=1)
    for net in nets.values():  # logits in the hundreds: scale the output layers
        last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            last.weight.mul_(1e4)
    logits = nets["C"](inputs["x"])
    assert logits.abs().max() > 100
    losses = program.losses(nets, inputs)
    assert all(torch.isfinite(value) for value in losses.values()), losses
    total = losses["C"]
    grads = torch.autograd.grad(total, [p for net in nets.values() for p in net.parameters()], allow_unused=True)
    assert all(g is None or torch.isfinite(g).all() for g in grads)


def test_nce_sends_no_gradient_through_its_key_and_negatives(program):
    """Through the compiled loss: moco's gradient in S is the query's alone."""
    nets, inputs = float64(program, 2, 4)
    got = program.losses(nets, inputs)["C/moco"]
    S, x, x2 = nets["S"], inputs["x"], inputs["x2"]
    want = nce_reference(S(x), S(x2).detach(), S(torch.roll(x, 1, 0)).detach(), 0.07).mean()
    parameters = list(S.parameters())
    for a, b in zip(torch.autograd.grad(got, parameters, allow_unused=True), torch.autograd.grad(want, parameters, allow_unused=True)):
        assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, rtol=1e-9, atol=1e-12))


def test_a_pseudo_label_carries_no_gradient(program):
    """`ce(C(x2), argmax(C(x)))`: only the logits of x2 are differentiated; the label is data."""
    nets, inputs = float64(program, 4, 5)
    got = program.losses(nets, inputs)["C/pseudo"]
    C, x, x2 = nets["C"], inputs["x"], inputs["x2"]
    labels = C(x).argmax(1)
    want = torch.nn.functional.cross_entropy(C(x2), labels)
    parameters = list(C.parameters())
    for a, b in zip(torch.autograd.grad(got, parameters), torch.autograd.grad(want, parameters)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def error_of(term):
    with pytest.raises(SpecError) as caught:
        compile_text(SPEC.replace("E[ce(C(x2), argmax(C(x)))]", term))
    return str(caught.value)


@pytest.mark.parametrize("term, message, at", [
    ("E[l1(C(x) - argmax(C(x)))]", "argmax has no gradient, so term 'pseudo' can use it only as a label, never as a value", "argmax"),
    ("E[argmax(C(x2))]", "term 'pseudo' can use it only as a label", "argmax"),
    ("E[ce(C(x), stop_gradient(argmax(C(x2)))) * argmax(C(x2))]", "can use it only as a label", "argmax"),
    ("E[nce(S(x), S(x2), S(x), 0)]", "nce(q, k, Q, tau) divides by its temperature tau, which must be positive", "nce"),
    ("E[nce(C(x), S(x2), S(x), 0.1)]", "nce(q, k, Q, tau) compares each query with its own key, of one shape; q has shape (2, 5), k (2, 6)", "nce"),
    ("E[nce(S(x), S(x2), x, 0.1)]", "a row of Q has the query's 6 values; Q has shape (2, 3, 16, 16)", "nce"),
    ("mi(C(x), C(x2))", "mi(p, p2) takes class probabilities, but C(x) can be any real number", "mi"),
    ("mi(softmax(C(x)), softmax(S(x)))", "mi(p, p2) takes two batches of class probabilities of one shape (N, K)", "mi"),
    ("mi(p, p2, 0)", "mi(p, p2, lamb) weighs the marginals by lamb, which must be positive", "mi"),
    ("mi(p, p2, p)", "mi(p, p2, lamb) takes one number lamb, the marginals' weight", "mi"),
    ("mi(p, p2, 1, 2)", "mi takes 2 or 3 arguments, got 4", "mi"),
    ("E[softmax(l1(x))]", "softmax(v) is taken over dimension 1, the classes", "softmax"),
])
def test_mistakes_are_located_with_the_fix(term, message, at):
    error = error_of(term)
    assert message in error
    assert f"contrastive.yaml:16:{len('      pseudo: ') + 1 + term.index(at)}:" in error


def test_argmax_is_still_refused_as_a_comparison_in_a_loss():
    assert "has no gradient, so term 'pseudo'" in error_of("E[argmax(C(x)) == argmax(C(x2))]")
