"""Progress bars and status lines for the converter (silent with --quiet)."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from tqdm import tqdm


class Progress:
    def __init__(self, quiet: bool = False, bars: bool = True):
        self.quiet = quiet
        self.bars = bars  # False: the status lines only (a command that is one step of another, in a log)

    def info(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    @contextmanager
    def bar(self, total: int, description: str, unit: str = "B"):
        with tqdm(total=total, desc=description, unit=unit, unit_scale=unit == "B", disable=self.quiet or not self.bars,
                  file=sys.stderr, leave=True, dynamic_ncols=True) as bar:
            yield bar
