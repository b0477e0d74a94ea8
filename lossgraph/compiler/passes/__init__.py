"""The compiler's passes, from formulas to the objective as it runs.

    lower.py      formulas -> IR; lets and macros inlined; names and arities checked
    domains.py    every value's kind and range against the domain rules (domains.py)
    sigmoids.py   a probability network's D(v) written as sigmoid(logits)
    stabilize.py  the rewrite rules (rewrite.py) to a fixed point: stable logs, tidy algebra
    gradients.py  what each player's step differentiates; its loss must reach its networks
    pipeline.py   the one pipeline that runs them in order
"""
