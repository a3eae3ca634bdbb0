"""Benchmark: where one text's time goes, against the floor (issue 10, section 2).

On a random model of Llama-FinSent-S's shape (Q4_K_M, padded), in the engine's own context, one text
at a time (each headline doubled: about 29 tokens after the cached instruction prefix), interleaved so
that a noisy machine affects every path alike; prints median latency and the median per-text ratio to
  floor     the text's own tokens decoded on one sequence after the cached prefix, 1 logit row
  4 rows    the same decode asking 4 logit rows (the root and 3 branch rows' cost without branch tokens)
  +3 tok    the same plus the 3 label-branch tokens, 4 logit rows (what the engine decodes)
  4 seqs    the floor with every token on 4 sequences (the engine's sequence layout), 1 row
  engine    ClassifierEngine.classify_batch([text]) (all of the above, plus Python work)

Run after bench/convert_bench.py: .venv/bin/python bench/single_text.py
(--smoke: the tests' trained checkpoint, one round on two texts; bench/smoke_mode.py)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine_bench import model_file  # noqa: E402
from smoke_mode import pick  # noqa: E402
from finsent_local.convert.verify import LABEL_SENTENCES  # noqa: E402
from finsent_local.engine.classifier import ClassifierEngine  # noqa: E402

ROUNDS = pick(4, 1)
SCHEME = "7"


def main() -> None:
    engine = ClassifierEngine(model_file())
    context = engine.context
    prefix_seq = engine._prefix_seq[SCHEME]
    free = engine._first_text_seq
    branches = engine.tries[SCHEME].branch_tokens()
    texts = [f"{t} {t}" for t in LABEL_SENTENCES[:pick(12, 2)]]

    def decode(text, seqs=1, rows=1, branch_tokens=False):
        item = engine._prepare(0, text, SCHEME)
        ids = tuple(range(free, free + seqs))
        for seq in ids:
            context.copy_sequence(prefix_seq, seq, 0, item.reused)
        n = len(item.tokens)
        entries = [(item.tokens[i], i, ids, i >= n - rows and not branch_tokens or branch_tokens and i == n - 1)
                   for i in range(item.reused, n)]
        if branch_tokens:
            entries += [(token, n + k, ids, True) for k, (token, _, _) in enumerate(branches)]
        try:
            context.decode(entries)
        finally:
            for seq in ids:
                context.remove(seq)
        return n - item.reused

    paths = {
        "floor": lambda t: decode(t),
        "4 rows": lambda t: decode(t, rows=4),
        "+3 tok": lambda t: decode(t, branch_tokens=True),
        "4 seqs": lambda t: decode(t, seqs=4),
        "engine": lambda t: engine.classify_batch([t], SCHEME),
    }
    tokens = [decode(t) for t in texts]  # also warms up
    for fn in paths.values():
        fn(texts[0])
    times: dict[str, list[float]] = {name: [] for name in paths}
    order = list(paths.items())
    for r in range(ROUNDS):
        rotated = order[r % len(order):] + order[:r % len(order)]
        for text in texts:
            for name, fn in rotated:
                start = time.perf_counter()
                fn(text)
                times[name].append(time.perf_counter() - start)
    print(f"{statistics.mean(tokens):.1f} text tokens per text after the cached prefix; "
          f"{len(branches)} branch tokens; {ROUNDS} rounds x {len(texts)} texts, interleaved")
    for name, values in times.items():
        ratios = [a / b for a, b in zip(values, times["floor"])]
        print(f"{name:8} median {statistics.median(values) * 1000:7.1f} ms   vs floor x{statistics.median(ratios):.3f}")
    engine.close()


if __name__ == "__main__":
    main()
