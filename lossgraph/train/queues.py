"""The queues of a spec's `queues:` (language/queues.py), kept by the trainer.

Each queue is a tensor of rows, detached, newest last. `fill` starts it from the first batch's
rows; `push` appends an iteration's rows and keeps the newest `size`. The push formula runs under
`torch.no_grad()` through the interpreter (compiler/interpret.py), after the iteration's steps,
unless a step computed that very call with the weights the iteration ends with (the phase plan's
`pushes`: TUNIT's C_ema.style(x_tf), from C's step): then the iteration hands it over. The
queues are part of the trainer's state: checkpoints save them and the guard against non-finite
steps restores them. Each process keeps its own, from its own slice of the batch.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from lossgraph.compiler.interpret import interpret


class Queues:
    def __init__(self, queues: Mapping[str, tuple[int, Any]]):
        self.specs = dict(queues)  # name -> (size, push formula)
        self.values: dict[str, torch.Tensor] = {}

    def __bool__(self) -> bool:
        return bool(self.specs)

    @torch.no_grad()
    def rows(self, nets: Mapping[str, torch.nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Each push formula on `batch`, detached."""
        pushes = [push for _, push in self.specs.values()]
        values = interpret(pushes, nets, batch)
        return {name: values[push].detach() for name, (_, push) in self.specs.items()}

    def fill(self, nets: Mapping[str, torch.nn.Module], batch: Mapping[str, Any]) -> None:
        """Start every queue not yet started from `batch`'s rows (the newest `size` of them)."""
        missing = [name for name in self.specs if name not in self.values]
        if missing:
            rows = self.rows(nets, batch)
            for name in missing:
                self.values[name] = rows[name][-self.specs[name][0]:].clone()

    def push(self, nets: Mapping[str, torch.nn.Module], batch: Mapping[str, Any],
             given: Mapping[str, torch.Tensor] | None = None) -> None:
        """Append each queue's rows: those `given` (a step's values), the others from its formula."""
        given = dict(given or {})
        missing = {name: spec for name, spec in self.specs.items() if name not in given}
        pushed = {**(Queues(missing).rows(nets, batch) if missing else {}), **given}
        for name, rows in pushed.items():
            self.values[name] = torch.cat([self.values[name], rows.to(self.values[name].dtype)])[-self.specs[name][0]:]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: value.clone() for name, value in self.values.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], device: torch.device | str = "cpu") -> None:
        self.values = {name: value.to(device) for name, value in state.items() if name in self.specs}
