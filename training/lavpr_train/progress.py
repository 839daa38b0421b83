"""Progress for long training-side steps (feature caching, exports): nothing runs silently.

Bars go to stderr and switch themselves off when stderr is not a terminal (logs, CI) unless
LAVPR_PROGRESS=1, so captured output stays clean.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def enabled() -> bool:
    flag = os.environ.get("LAVPR_PROGRESS")
    return flag == "1" if flag is not None else sys.stderr.isatty()


def encode_in_chunks(
    encode: Callable[[Sequence[Any]], np.ndarray], items: Sequence[Any], desc: str, chunk: int = 256
) -> np.ndarray:
    """``encode(items)`` in chunks, with a bar counting items."""
    from tqdm import tqdm

    out = []
    with tqdm(total=len(items), desc=desc, unit="img", disable=not enabled(), leave=False) as bar:
        for s in range(0, len(items), chunk):
            part = items[s : s + chunk]
            out.append(encode(part))
            bar.update(len(part))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class StepBar:
    """A bar over named steps: ``step("parity")`` as each starts, ``close()`` at the end."""

    def __init__(self, names: Sequence[str], desc: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=len(names), desc=desc, unit="step", disable=not enabled())
        self._started = False

    def __call__(self, name: str) -> None:
        if self._started:
            self._bar.update(1)
        self._started = True
        self._bar.set_postfix_str(name)

    def close(self) -> None:
        if self._started:
            self._bar.update(1)
        self._bar.close()
