"""Benchmark: llama.cpp's extra CPU buffer types (weight repacking: CPU_REPACK, and AMX on Intel CPUs that
have it) on vs off, same file and texts, interleaved in one run (issue 10, section 1). Prints the CPU,
which buffer types took weights, what `auto` picks here, prompt processing (pp32, pp512: tokens/s of one
decode of that many tokens), token generation (tg: one-token decodes), single-text and batched
classification, and whether labels and probabilities agree.

The "on" side first runs in the child-process check (finsent_local/engine/cpu_buffers.py): a build whose AMX
path crashes (GCC < 13 without llama_build/gcc_amx_tile_config.h) is reported, not run in this process.

Run after bench/convert_bench.py: .venv/bin/python bench/extra_bufts.py
(--smoke: the tests' trained checkpoint, one round on two texts; bench/smoke_mode.py)
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine_bench import model_file  # noqa: E402
from smoke_mode import pick  # noqa: E402
from finsent_local.convert.verify import LABEL_SENTENCES  # noqa: E402
from finsent_local.engine import cpu_buffers  # noqa: E402
from finsent_local.engine.classifier import ClassifierEngine, EngineOptions  # noqa: E402

ROUNDS = pick(3, 1)
TG_STEPS = pick(16, 4)


def prompt_speed(engine: ClassifierEngine, tokens: list[int]) -> float:
    """Tokens/s of one decode of `tokens` on an empty sequence (1 logit row)."""
    seq = engine.generation_seq
    start = time.perf_counter()
    engine.context.eval_sequence(tokens, seq_id=seq)
    elapsed = time.perf_counter() - start
    engine.context.remove(seq)
    return len(tokens) / elapsed


def generation_speed(engine: ClassifierEngine, tokens: list[int]) -> float:
    """Tokens/s of TG_STEPS one-token decodes after a short prompt."""
    seq = engine.generation_seq
    engine.context.eval_sequence(tokens[:32], seq_id=seq)
    start = time.perf_counter()
    for step in range(TG_STEPS):
        engine.context.decode([(tokens[32 + step], 32 + step, (seq,), True)])
    elapsed = time.perf_counter() - start
    engine.context.remove(seq)
    return TG_STEPS / elapsed


def main() -> None:
    path = model_file()
    texts = [f"{t} {t}" for t in LABEL_SENTENCES[:pick(12, 2)]]
    print(f"CPU: {cpu_buffers.cpu_info().get('model name', 'unknown')}; AMX: {cpu_buffers.cpu_has_amx()}")
    check = cpu_buffers.probe(path)
    print(f"extra buffer types took: {check.buffers or 'nothing'}; child check: "
          f"{'passed' if check.ok else 'FAILED'} ({check.detail})")
    print(f"auto picks: {cpu_buffers.decide(None, path)}")
    flags = (("off", False), ("on", True)) if check.ok else (("off", False),)
    engines = {name: ClassifierEngine(path, EngineOptions(use_extra_bufts=flag)) for name, flag in flags}
    for engine in engines.values():
        engine.classify_batch(texts[:2], "7")  # warm-up
    words = engines["off"].model.tokenize(" ".join(LABEL_SENTENCES), add_special=False)
    stream = (words * (512 // len(words) + 1))[:512]
    speeds: dict[str, dict[str, list[float]]] = {name: {"pp32": [], "pp512": [], "tg": []} for name in engines}
    single: dict[str, list[float]] = {name: [] for name in engines}
    batched: dict[str, list[float]] = {name: [] for name in engines}
    results = {}
    for r in range(ROUNDS):
        order = list(engines.items()) if r % 2 == 0 else list(engines.items())[::-1]
        for name, engine in order:
            speeds[name]["pp32"].append(prompt_speed(engine, stream[:32]))
            speeds[name]["pp512"].append(prompt_speed(engine, stream))
            speeds[name]["tg"].append(generation_speed(engine, stream))
            for text in texts:
                start = time.perf_counter()
                engine.classify_batch([text], "7")
                single[name].append(time.perf_counter() - start)
            start = time.perf_counter()
            results[name] = engine.classify_batch(texts * 2, "7")
            batched[name].append((time.perf_counter() - start) / (2 * len(texts)))
    for name in engines:
        pp = "  ".join(f"{k} {statistics.median(v):6.1f} tok/s" for k, v in speeds[name].items())
        print(f"extra buffer types {name:3}: {pp}")
    for name in engines:
        print(f"extra buffer types {name:3}: one text {statistics.median(single[name]) * 1000:7.1f} ms, "
              f"batched {statistics.median(batched[name]) * 1000:7.1f} ms/text")
    if "on" in engines:
        for kind in ("pp32", "pp512", "tg"):
            print(f"on/off {kind}: x{statistics.median(speeds['on'][kind]) / statistics.median(speeds['off'][kind]):.3f} (speed)")
        ratio = statistics.median(a / b for a, b in zip(single["on"], single["off"]))
        print(f"on/off: one text x{ratio:.3f}, batched x{statistics.median(batched['on']) / statistics.median(batched['off']):.3f}")
        same = [a.label for a in results["off"]] == [b.label for b in results["on"]]
        worst = max(abs(a.probs[label] - b.probs[label]) for a, b in zip(results["off"], results["on"]) for label in a.probs)
        print(f"labels equal: {same}; largest probability difference {worst:.2g}")
    for engine in engines.values():
        engine.close()


if __name__ == "__main__":
    main()
