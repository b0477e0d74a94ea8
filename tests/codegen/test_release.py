"""Names a backward no longer needs are deleted before it (Note [Released before the backward])."""

import lossgraph
from lossgraph.compiler.codegen.lines import Body
from lossgraph.compiler.codegen.release import release_before_backward


def released(codes: list[tuple[str, int]], returned=("loss.detach()",)) -> list[str]:
    body = Body()
    for code, depth in codes:
        body.add(code, depth=depth)
    release_before_backward(body, returned)
    return ["    " * line.depth + line.code for line in body.lines]


def test_a_name_no_later_line_reads_is_deleted_before_the_backward():
    lines = released([("fake = G(x)", 0), ("grad = torch.autograd.grad(D(fake).sum(), fake)[0]", 0),
                      ("loss = grad.norm() + fake.mean()", 0), ('loss.backward(inputs=parameters["D"])', 0)])
    assert lines[3] == "del fake, grad"
    assert lines[4].startswith("loss.backward")


def test_a_name_read_later_stays_and_one_bound_again_first_goes():
    lines = released([("fake = G(x)", 0), ("out = D(fake)", 0), ("loss = out.mean()", 0), ("loss.backward()", 0),
                      ("out = D(fake)", 0), ("loss_G = out.mean()", 0), ("loss_G.backward()", 0)],
                     returned=("loss.detach()", "loss_G.detach()"))
    assert lines[3] == "del out"  # fake: G's step reads it; out: bound again before it reads it
    assert lines[-2] == "del fake, out"


def test_a_backward_that_keeps_its_graph_deletes_nothing():
    codes = [("fake = G(x)", 0), ("loss = D(fake).mean()", 0), ("loss.backward(retain_graph=True)", 0)]
    assert released(codes) == [code for code, _ in codes]


def test_a_repeated_steps_loop_deletes_only_what_each_repeat_binds_again():
    lines = released([("fake = G(x)", 0), ("for _ in range(5):", 0), ("real = D(y)", 1), ("out = D(fake)", 1),
                      ("loss = real.mean() - out.mean() + carried.mean()", 1), ("carried = out.detach()", 1),
                      ("loss.backward()", 1)])
    # fake: bound once, before the loop; carried: the next repeat reads this one's; `_`: the loop's own
    assert lines[6] == "    del real, out"
    assert "del" not in "".join(lines[:6])


def test_the_generated_step_frees_a_gradient_penalty_s_gradient_before_its_backward():
    # LPTN's D step: the penalty's gradient is held by its norm's graph, not by the name
    iteration = lossgraph.compile("lptn").code.split("def iteration")[1].split("\ndef ")[0]
    step = iteration.split("# G:")[0]
    deleted = step.split("\n    del ")[1].split("  #")[0].split(", ")
    assert "grad_D_mix_in" in deleted and "loss_D" not in deleted
    assert step.index("\n    del ") < step.index("loss_D.backward(")
