"""Benchmark: what one explanation (issue 35) costs, against the floor of the tokens it must decode.

On a random model of Llama-FinSent-S's shape (Q4_K_M, padded), in the engine's own context, headlines of
10, 20 and 40 words (three of each), interleaved so that a noisy machine affects every path alike; for
each length, the median time and median per-text ratios of
  explain   ClassifierEngine.explain(text, "7"): the text, then one variant per word (the text without
            it), each variant decoded from its first changed token on, many per llama_decode
  floor     the same tokens (the text's after the cached instruction prefix, each variant's after what
            it shares with the text, and every variant's 3 label-branch tokens), decoded in as few
            llama_decode calls as n_batch allows, one logit row per sequence, no Python work
  floor+rows  the floor asking the logit rows that scoring labels needs: per variant the root row and
            one per label branch (4 rows over the 128k vocabulary; one row costs about a third of a
            token on this model), as every classification asks them (bench/single_text.py, "+3 tok")
  one       ClassifierEngine.classify_batch([text]): one classification of the text
  naive     classify_batch(all the variants): each variant from the instruction prefix on, batched
The goal: explain <= 1.2x the floor. Both floors are printed: the extra label rows are work any scoring
of 7 labels must do, the rest (sequence layout, grouping, Python) is the engine's own overhead.

Run after bench/convert_bench.py: .venv/bin/python bench/explain_bench.py
(--smoke: the tests' trained checkpoint, one round on one text per length; bench/smoke_mode.py)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine_bench import model_file  # noqa: E402
from smoke_mode import pick  # noqa: E402
from finsent_local.engine import occlusion  # noqa: E402
from finsent_local.engine.classifier import ClassifierEngine  # noqa: E402

ROUNDS = pick(3, 1)
SCHEME = "7"
LENGTHS = (10, 20, 40)
STORY = ("Acme Corp cuts its full-year revenue guidance by 8% to $1.2bn after weaker demand in Europe and rising "
         "input costs, while the board approves a new share buyback of up to $500 million and confirms the "
         "quarterly dividend, sending shares down 4.5% in early trading as analysts question the outlook for "
         "margins next year and the pace of cost savings in its industrial unit, which lost two large customers "
         "to cheaper rivals in Asia during the third quarter")
STORY_WORDS = occlusion.reader_words(STORY)


def headline(words: int, offset: int) -> str:
    """`words` reader words of the story (a number with its unit is one), from its offset-th on."""
    return STORY[STORY_WORDS[offset].start : STORY_WORDS[offset + words - 1].end]


def main() -> None:
    engine = ClassifierEngine(model_file())
    context = engine.context
    branches = engine.tries[SCHEME].branch_tokens()
    keep, free = engine._explained_seq, engine._first_text_seq
    texts = {n: [headline(n, offset) for offset in pick((0, 7, 14), (0,))] for n in LENGTHS}
    assert all(len(occlusion.units(t)) == n for n, ts in texts.items() for t in ts), "headline lengths"

    def floor(text: str, rows: int = 1) -> int:
        """Decode the explanation's tokens as plainly as possible, asking `rows` logit rows per variant
        (its last tokens'); returns how many tokens were decoded."""
        original = engine._prepare(0, text, SCHEME)
        full = original.tokens
        context.copy_sequence(engine._prefix_seq[SCHEME], keep, 0, original.reused)
        entries = [(t, p, (keep,), p == len(full) - 1) for p, t in enumerate(full) if p >= original.reused]
        decoded = len(entries)
        seq = free
        try:
            context.decode(entries)
            entries = []
            for unit in occlusion.units(text):
                tokens, _ = engine.prompt_tokens(occlusion.without(text, unit), SCHEME)
                shared = 0
                while shared < min(len(full), len(tokens) - 1) and tokens[shared] == full[shared]:
                    shared += 1
                tail = tokens[shared:] + [token for token, _, _ in branches]
                if len(entries) + len(tail) > context.n_batch:
                    context.decode(entries)
                    decoded += len(entries)
                    entries = []
                context.copy_sequence(keep, seq, 0, shared)
                entries += [(t, shared + k, (seq,), k >= len(tail) - rows) for k, t in enumerate(tail)]
                seq += 1
            context.decode(entries)
            decoded += len(entries)
        finally:
            for s in range(keep, seq):
                context.remove(s)
        return decoded

    def naive(text: str) -> None:
        engine.classify_batch([occlusion.without(text, u) for u in occlusion.units(text)], SCHEME)

    paths = {
        "explain": lambda t: engine.explain(t, SCHEME),
        "floor": floor,
        "floor+rows": lambda t: floor(t, rows=1 + len(branches)),
        "one": lambda t: engine.classify_batch([t], SCHEME),
        "naive": naive,
    }
    for fn in paths.values():  # warm-up
        fn(texts[LENGTHS[0]][0])
    tokens = {n: statistics.mean(floor(t) for t in ts) for n, ts in texts.items()}
    times: dict[tuple[int, str], list[float]] = {(n, name): [] for n in LENGTHS for name in paths}
    order = list(paths.items())
    for r in range(ROUNDS):
        rotated = order[r % len(order):] + order[:r % len(order)]
        for n in LENGTHS:
            for text in texts[n]:
                for name, fn in rotated:
                    start = time.perf_counter()
                    fn(text)
                    times[(n, name)].append(time.perf_counter() - start)
    engine.close()

    def ratio(n: int, a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[(n, a)], times[(n, b)]))

    print(f"{ROUNDS} rounds x {len(texts[LENGTHS[0]])} headlines per length, interleaved; "
          f"{len(branches)} label-branch tokens per variant")
    print("| words | tokens decoded | explain ms | floor ms | explain / floor | explain / floor+rows "
          "| explain / one classification | naive / explain |")
    print("|---|---|---|---|---|---|---|---|")
    for n in LENGTHS:
        print(f"| {n} words | {tokens[n]:.0f} | {statistics.median(times[(n, 'explain')]) * 1000:.0f} "
              f"| {statistics.median(times[(n, 'floor')]) * 1000:.0f} | x{ratio(n, 'explain', 'floor'):.2f} "
              f"| x{ratio(n, 'explain', 'floor+rows'):.2f} | x{ratio(n, 'explain', 'one'):.1f} "
              f"| x{ratio(n, 'naive', 'explain'):.2f} |")
    for floor_name in ("floor", "floor+rows"):
        worst = max(ratio(n, "explain", floor_name) for n in LENGTHS)
        print(f"target: explain <= 1.2x {floor_name}: {'met' if worst <= 1.2 else 'NOT met'} (worst x{worst:.2f})")


if __name__ == "__main__":
    main()
