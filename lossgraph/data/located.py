"""Opening a spec's dataset with its mistakes located at the spec's `dataset:` lines.

`open_dataset` reports a DataError as `dataset.KEY: ...`; a spec's user needs the file, line
and column too. `open_located` re-raises it as a SpecError at the key the message names (or at
`dataset:` itself), so `run` and `check` point at the line to change, and `check` finds what only
opening the data finds (a missing `pairing:`) for built-in data, which needs no files.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from lossgraph.data import open_dataset
from lossgraph.data.dataset import Dataset
from lossgraph.language.errors import DataError, Problem, SpecError

KEY = re.compile(r"^dataset((?:\.[A-Za-z_][A-Za-z0-9_]*)*)(?:\[[^\]]*\])?: ")


def open_located(spec: Any, config: Mapping[str, Any], image_size: int, seed: int = 0, base_dir: Any = None,
                 given_by: str | None = None) -> Dataset:
    """`open_dataset(config, spec.kinds, ...)`, a DataError located in `spec`'s file.

    `given_by` names the command-line flag that gave the folder (`--data DIR`): a mistake in the
    folder itself (no key of `dataset:` named) is then that flag's, and the spec's `dataset:` line,
    which names another source, is not pointed at.
    """
    try:
        return open_dataset(config, spec.kinds, image_size, seed=seed, base_dir=base_dir)
    except DataError as error:
        source = spec.source
        message = str(error)
        match = KEY.match(message)
        if given_by is not None and not match:
            raise DataError(f"{given_by}: {message}") from None
        if source is None:
            raise
        path = ("dataset", *match.group(1).split(".")[1:]) if match else ("dataset",)
        text = message[match.end():] if match else message
        raise SpecError(Problem(text, source.origin(tuple(path)), None)) from None
