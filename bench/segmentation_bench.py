"""Sentence segmentation on hand-marked financial text (tests/segmentation_cases.py): boundary precision,
recall and F1 of the naive '. ' split, pysbd, blingfire (when installed: pip install blingfire) and the
project's segmenter (finsent_local/jobs/sentences.py), and the time each takes for 100,000 characters.

    .venv/bin/python bench/segmentation_bench.py      (--smoke: 5,000 characters for the timing; bench/smoke_mode.py)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from smoke_mode import pick  # noqa: E402
from segmentation_cases import CASES, unmarked  # noqa: E402
from segmentation_scoring import SPLITTERS, score  # noqa: E402


TIMING_CHARS = pick(100_000, 5_000)


def main() -> int:
    long_text = "\n\n".join(unmarked(case) for _, case in CASES)
    long_text = (long_text * (TIMING_CHARS // len(long_text) + 1))[:TIMING_CHARS]
    print(f"{len(CASES)} cases; {TIMING_CHARS:,} characters for the timing")
    print(f"| splitter | boundaries | precision | recall | F1 | s per {TIMING_CHARS:,} characters |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, starts in SPLITTERS.items():
        try:
            result = score(starts)
        except ImportError as e:
            print(f"| {name} | not installed ({e.name}) | | | | |")
            continue
        started = time.perf_counter()
        starts(long_text)
        seconds = time.perf_counter() - started
        print(f"| {name} | {result['boundaries']} | {result['precision']:.3f} | {result['recall']:.3f} "
              f"| {result['f1']:.3f} | {seconds:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
