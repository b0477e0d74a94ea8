"""Metrics of the whole held-out set: `fid`, `kid` and `diversity` in a spec's `evaluate:`.

    inception.py   the FID Inception network, loaded from the weights file the user gives
    features.py    feature networks: that one, or a judge's features; the spec chooses
    distances.py   FID and KID through torchmetrics, and diversity, on features
    evaluation.py  a run's evaluation: the held-out set in batches, features, the distances

The spec side (how the metrics are written, which feature network) is compiler/distributions.py.
"""
