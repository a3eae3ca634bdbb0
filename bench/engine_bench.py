"""Benchmark: classification speed on a random model of Llama-FinSent-S's shape (Q4_K_M, padded).

Prints per-text latency and texts/s, measured in this one run, for:
  engine (1 text)        this engine, one text per call (prefix reuse + label-trie scoring)
  engine (batched)       this engine, all texts in one call (batched decodes)
  naive llama.cpp        llama-cpp-python `Llama.create_completion(max_tokens=15)`, one text per call
  transformers generate  as the model card does it: generate(max_new_tokens=15), fp32 on the CPU
  cache                  repeated texts, one GET /v1/label each (SQLite result cache)
Targets (issue 3): >= 4x the naive path and >= 10x transformers per text; cached repeats > 1000/s.

Run after bench/convert_bench.py (which writes the model): .venv/bin/python bench/engine_bench.py
(--smoke: the tests' trained checkpoint, converted here, and a few texts; bench/smoke_mode.py)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from same_shape import WORK, same_shape_checkpoint
from smoke_mode import SMOKE, pick

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from finsent_local.convert.verify import LABEL_SENTENCES  # noqa: E402
from finsent_local.engine.classifier import ClassifierEngine  # noqa: E402
from finsent_local.engine.labels import default_schemes  # noqa: E402

N_NAIVE = int(os.environ.get("BENCH_NAIVE_TEXTS", pick(6, 1)))
N_TRANSFORMERS = int(os.environ.get("BENCH_TRANSFORMERS_TEXTS", pick(3, 1)))
CACHE_REQUESTS = pick(1000, 50)


def model_file() -> Path:
    """The Q4_K_M file bench/convert_bench.py writes (in a smoke run: made here when missing)."""
    path = WORK / "out" / "ours.gguf"
    if not path.exists() and SMOKE:
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "finsent_local.cli", "convert", str(same_shape_checkpoint()),
                        "--outtype", "q4_k_m", "--outfile", str(path), "--no-verify", "-q"], check=True)
    if not path.exists():
        raise SystemExit(f"run bench/convert_bench.py first (it writes {path})")
    return path


def bench_engine(path: Path, texts: list[str]) -> tuple[float, float]:
    engine = ClassifierEngine(path)
    try:
        engine.classify_batch(texts[:2], "7")  # warm-up
        start = time.perf_counter()
        for text in texts:
            engine.classify_batch([text], "7")
        single = (time.perf_counter() - start) / len(texts)
        start = time.perf_counter()
        engine.classify_batch(texts, "7")
        batched = (time.perf_counter() - start) / len(texts)
    finally:
        engine.close()
    return single, batched


def bench_naive(path: Path, prompts: list[str]) -> float:
    import llama_cpp

    # Harness only: the high-level Llama class cannot turn off llama.cpp's extra buffer types (AMX
    # repacking crashes on some CPUs), so its default parameters are adjusted for this run.
    default_params = llama_cpp.llama_model_default_params

    def params_without_extra_bufts():
        params = default_params()
        params.use_extra_bufts = False
        return params

    llama_cpp.llama_model_default_params = params_without_extra_bufts
    try:
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, verbose=False)
    finally:
        llama_cpp.llama_model_default_params = default_params
    llm.create_completion(prompts[0], max_tokens=2)  # warm-up
    start = time.perf_counter()
    for prompt in prompts:
        llm.reset()  # no prompt cache carried between texts, as with independent requests
        llm.create_completion(prompt, max_tokens=15, temperature=0.0)
    return (time.perf_counter() - start) / len(prompts)


def bench_transformers(prompts: list[str]) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = same_shape_checkpoint()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        inputs = tokenizer(prompts[0], return_tensors="pt")
        model.generate(**inputs, max_new_tokens=2, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        start = time.perf_counter()
        for prompt in prompts:
            inputs = tokenizer(prompt, return_tensors="pt")
            model.generate(**inputs, max_new_tokens=15, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    return (time.perf_counter() - start) / len(prompts)


def bench_cache(path: Path, texts: list[str]) -> float:
    """Repeated texts as a spreadsheet sends them: one GET /v1/label per cell, through the real Flask
    app (its test client, so no network stack is measured), answered from the SQLite cache."""
    from urllib.parse import quote

    from finsent_local.server import create_app
    from finsent_local.server.runtime import Runtime

    with tempfile.TemporaryDirectory() as folder:
        runtime = Runtime(model_path=path, cache_path=Path(folder) / "r.sqlite3")
        runtime.load()
        client = create_app(runtime).test_client()
        urls = [f"/v1/label?scheme=7&text={quote(t)}" for t in texts]
        for url in urls:  # fills the cache
            client.get(url)
        repeated = urls * (CACHE_REQUESTS // len(urls) + 1)
        start = time.perf_counter()
        for url in repeated:
            assert client.get(url).status_code == 200
        per_text = (time.perf_counter() - start) / len(repeated)
        runtime.close()
    return per_text


def main() -> None:
    path = model_file()
    texts = list(LABEL_SENTENCES) + [f"{s[:-1]} in the third quarter." for s in LABEL_SENTENCES[:12]]
    texts = pick(texts, texts[:4])
    scheme = default_schemes()["7"]
    prompts = [scheme.prompt(t) for t in texts]
    rows = {}
    single, batched = bench_engine(path, texts)
    rows["engine (1 text per call)"] = single
    rows["engine (batched)"] = batched
    rows["naive llama.cpp create_completion(15)"] = bench_naive(path, prompts[:N_NAIVE])
    rows["transformers generate(15), fp32"] = bench_transformers(prompts[:N_TRANSFORMERS])
    rows["cache (repeated texts, GET /v1/label)"] = bench_cache(path, texts)
    print(f"\nmodel: {path.name} ({path.stat().st_size / 1e6:.0f} MB), {os.cpu_count()} CPU cores, {len(texts)} texts")
    print(f"{'path':40} {'ms/text':>10} {'texts/s':>10}")
    for name, seconds in rows.items():
        print(f"{name:40} {seconds * 1000:10.1f} {1 / seconds:10.1f}")
    naive = rows["naive llama.cpp create_completion(15)"]
    hf = rows["transformers generate(15), fp32"]
    print("\nratios (per text; higher is better for the engine):")
    for name in ("engine (1 text per call)", "engine (batched)"):
        print(f"  {name:28} x{naive / rows[name]:5.1f} vs naive llama.cpp   x{hf / rows[name]:5.1f} vs transformers")
    print(f"targets: >= 4x naive: {'OK' if naive / single >= 4 else 'MISSED'} (1 text), "
          f"{'OK' if naive / batched >= 4 else 'MISSED'} (batched); >= 10x transformers: "
          f"{'OK' if hf / single >= 10 else 'MISSED'}; cache > 1000/s: "
          f"{'OK' if 1 / rows['cache (repeated texts, GET /v1/label)'] > 1000 else 'MISSED'}")


if __name__ == "__main__":
    main()
