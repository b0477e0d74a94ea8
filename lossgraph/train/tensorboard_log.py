"""TensorBoard event files for a run: `RUN/tensorboard/`, beside metrics.csv and eval.csv.

When the `tensorboard` package is importable, `lossgraph run` writes, through
`torch.utils.tensorboard.SummaryWriter`:

    scalars   every metrics.csv value under its column's name (`D`, `G/cycle`, `lr/G`, `seconds`,
              `skipped`) and every eval.csv value as `eval/<name>`, at the same steps as the CSVs
    images    `samples`: the sample grid, at each step a grid is written
    text      `eval/features`: the network fid, kid and diversity compare features of, when a spec has them

`tensorboard --logdir runs` then shows every run side by side. A resumed run appends a new event
file whose purge step is the first step it trains, so TensorBoard drops what the interrupted run
wrote past its checkpoint and curves do not double (as the CSVs drop those rows). A new run in a
folder without checkpoints removes the old event files, as it rewrites the CSVs.

`tensorboard=None` (the default) writes events when the package is installed and is silent when it
is not; `True` (`--tensorboard`) makes a missing package an error; `False` (`--no-tensorboard`)
writes none.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Mapping

from lossgraph.language.errors import LossgraphError

FOLDER = "tensorboard"
EVENT_PREFIX = "events.out.tfevents."
INSTALL = "pip install tensorboard"


def installed() -> bool:
    try:
        return importlib.util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):
        return False


def wanted(setting: bool | None) -> bool:
    """Whether a run writes events: `setting`, or (None) whether tensorboard is installed."""
    if setting is None:
        return installed()
    if setting and not installed():
        raise LossgraphError(f"--tensorboard asked for event files, but the tensorboard package is not installed "
                             f"({INSTALL}, or leave out --tensorboard)")
    return bool(setting)


class EventLog:
    """A run's SummaryWriter: scalars and sample grids by step."""

    def __init__(self, out_dir: str | Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(out_dir) / FOLDER
        if purge_step is None and self.folder.is_dir():
            for old in self.folder.iterdir():  # a new run: the old run's events go, like its CSVs
                if old.is_file() and old.name.startswith(EVENT_PREFIX):
                    old.unlink()
        self.writer = SummaryWriter(log_dir=str(self.folder), purge_step=purge_step)

    def scalars(self, step: int, values: Mapping[str, Any], prefix: str = "") -> None:
        for key, value in values.items():
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    continue
            if isinstance(value, (int, float)):
                self.writer.add_scalar(prefix + key, float(value), step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        """A note shown under TensorBoard's Text tab (which feature network the metrics compare)."""
        self.writer.add_text(tag, text, step)

    def image(self, step: int, path: str | Path, tag: str = "samples") -> None:
        """A PNG written by the run (a sample grid), as an image summary."""
        import numpy
        from PIL import Image

        with Image.open(path) as picture:
            pixels = numpy.asarray(picture.convert("RGB"))
        self.writer.add_image(tag, pixels, step, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_log(out_dir: str | Path, setting: bool | None, purge_step: int | None) -> tuple[EventLog | None, str | None]:
    """(the run's EventLog or None, a note for the log or None).

    An installed tensorboard that fails to import turns events off with a note, unless they were
    asked for (`setting=True`), when it is an error.
    """
    try:
        log = EventLog(out_dir, purge_step)
    except Exception as error:  # a broken install: protobuf versions, a missing dependency
        if setting:
            raise LossgraphError(f"--tensorboard: cannot open a TensorBoard event file: {error}") from error
        return None, f"tensorboard is installed but could not be used ({error}); no event files written"
    return log, f"TensorBoard events in {log.folder} (tensorboard --logdir {log.folder})"


__all__ = ["EventLog", "FOLDER", "installed", "open_log", "wanted"]
