"""`RUN/summary.json`: where a run stands, in one small file a person or a script can read.

    {"spec": "pix2pix",
     "step": 1000,                          the step of the last evaluation (null before the first)
     "metrics": {"error": 0.031, ...},      the held-out metrics at that step (eval.csv's last row)
     "best": {"metric": "error", "mode": "min", "step": 750, "value": 0.030,
              "checkpoint": "checkpoints/best_step_000750"},          with train.keep_best (best.py)
     "features": {"metrics": ["fid_XY"], "network": "judge C",        with fid, kid or diversity:
                  "description": "...", "held_out_samples": 64}}      what they compare (metrics/)

It is rewritten, atomically, when the run starts and after every evaluation, so it never holds
numbers of two feature networks or a best checkpoint that no longer exists.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from lossgraph.train.checkpoint import atomic_write_text

SUMMARY_FILE = "summary.json"


def _plain(value: Any) -> Any:
    """JSON has no NaN or infinity: such a metric is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def write_summary(out_dir: Path, spec: str, step: int | None, metrics: Mapping[str, float],
                  best: Mapping[str, Any] | None, features: Mapping[str, Any] | None) -> Path:
    record: dict[str, Any] = {"spec": spec, "step": step, "metrics": {key: float(value) for key, value in metrics.items()}}
    if best is not None:
        record["best"] = dict(best)
    if features is not None:
        record["features"] = dict(features)
    path = Path(out_dir) / SUMMARY_FILE
    atomic_write_text(path, json.dumps(_plain(record), indent=2) + "\n")
    return path


def read_summary(out_dir: Path) -> dict[str, Any] | None:
    path = Path(out_dir) / SUMMARY_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
