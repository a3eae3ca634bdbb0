"""Benchmark: llama.cpp's extra CPU buffer types (weight repacking: CPU_REPACK, and AMX on Intel CPUs that
have it) on vs off, same file and texts, interleaved in one run (issue 10, section 1). Prints single-text
and batched latency and whether labels and probabilities agree.

Careful on Intel CPUs with AMX: with llama-cpp-python 0.3.36 built by GCC 12 the AMX path crashes on
quantized files (see the README); run this there only with a build that has the fix.

Run after bench/convert_bench.py: .venv/bin/python bench/extra_bufts.py
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine_bench import model_file  # noqa: E402
from finsent_local.convert.verify import LABEL_SENTENCES  # noqa: E402
from finsent_local.engine import ClassifierEngine, EngineOptions  # noqa: E402

ROUNDS = 3


def main() -> None:
    path = model_file()
    texts = [f"{t} {t}" for t in LABEL_SENTENCES[:12]]
    engines = {name: ClassifierEngine(path, EngineOptions(use_extra_bufts=flag))
               for name, flag in (("off", False), ("on", True))}
    for engine in engines.values():
        engine.classify_batch(texts[:2], "7")  # warm-up
    single: dict[str, list[float]] = {name: [] for name in engines}
    batched: dict[str, list[float]] = {name: [] for name in engines}
    results = {}
    for r in range(ROUNDS):
        order = list(engines.items()) if r % 2 == 0 else list(engines.items())[::-1]
        for name, engine in order:
            for text in texts:
                start = time.perf_counter()
                engine.classify_batch([text], "7")
                single[name].append(time.perf_counter() - start)
            start = time.perf_counter()
            results[name] = engine.classify_batch(texts * 2, "7")
            batched[name].append((time.perf_counter() - start) / (2 * len(texts)))
    for name in engines:
        print(f"extra buffer types {name:3}: one text {statistics.median(single[name]) * 1000:7.1f} ms, "
              f"batched {statistics.median(batched[name]) * 1000:7.1f} ms/text")
    ratio = statistics.median(a / b for a, b in zip(single["on"], single["off"]))
    print(f"on/off: one text x{ratio:.3f}, batched x{statistics.median(batched['on']) / statistics.median(batched['off']):.3f}")
    same = [a.label for a in results["off"]] == [b.label for b in results["on"]]
    worst = max(abs(a.probs[label] - b.probs[label]) for a, b in zip(results["off"], results["on"]) for label in a.probs)
    print(f"labels equal: {same}; largest probability difference {worst:.2g}")
    for engine in engines.values():
        engine.close()


if __name__ == "__main__":
    main()
