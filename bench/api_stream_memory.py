"""Benchmark: memory of the Python API streaming many texts, on the trained test fixture, in one run.

`FinSent.classify_many(texts, stream=True)` reads its input a batch at a time; this measures the peak
RSS of a process that streams N texts from a generator and only counts the labels, for N = 1,000 (the
baseline) and 100,000, and of one that asks for the whole list of 100,000 Results at once (for
contrast). The texts repeat 500 distinct headlines, so past the first 500 the result cache answers:
what grows is the data held, not model work. Target: streaming 100,000 within a few MB of 1,000.

.venv/bin/python bench/api_stream_memory.py      (--smoke: 100 and 1,000 texts; bench/smoke_mode.py)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import fixture_models  # noqa: E402
from file_bench import headline, peak_rss_mb  # noqa: E402
from smoke_mode import pick  # noqa: E402

from finsent_local.convert.pipeline import ConvertRequest, convert  # noqa: E402

RUN = """
import collections, sys
sys.path.insert(0, {bench!r})
from file_bench import headline
from finsent_local import FinSent

n, stream = int(sys.argv[1]), sys.argv[2] == "stream"
texts = (headline(i % 500) for i in range(n))
with FinSent(model={model!r}, progress=False) as fs:
    results = fs.classify_many(texts, stream=stream)
    counts = collections.Counter(r.label for r in results)
assert sum(counts.values()) == n, counts
"""


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="finsent-api-memory-"))
    model = work / "trained-q8_0.gguf"
    convert(ConvertRequest(source=str(fixture_models.trained_checkpoint()), outtypes=["q8_0"], outfile=str(model),
                           verify=False, quiet=True))
    script = work / "run.py"
    script.write_text(RUN.format(bench=str(ROOT / "bench"), model=str(model)))
    rows = []
    small, big = pick(1_000, 100), pick(100_000, 1_000)
    for n, mode in ((small, "stream"), (big, "stream"), (big, "list")):
        env = {"FINSENT_CACHE_DIR": str(work / f"cache-{n}-{mode}")}
        wall, rss = peak_rss_mb([sys.executable, str(script), str(n), mode], env)
        rows.append((n, mode, wall, rss))
    base = rows[0][3]
    print(f"trained fixture Q8_0, {os.cpu_count()} CPUs; 500 distinct headlines, repeated")
    print(f"| texts | mode | s | peak MB | over {small:,} streamed |")
    print("|---:|---|---:|---:|---:|")
    for n, mode, wall, rss in rows:
        print(f"| {n:,} | {'stream=True' if mode == 'stream' else 'list'} | {wall:.1f} | {rss:.0f} | {rss - base:+.0f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
