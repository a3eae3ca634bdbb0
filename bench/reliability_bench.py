"""Reliability figures: a longer mixed load with memory, and SIGKILL of the server under load.

1. Load + soak: `finsent serve` on the trained test model (F16), ROUNDS rounds of CLIENTS concurrent
   clients (tests/load_mix.py: classification batches with bad items, /v1/label, OpenAI chat,
   generation streams that half the clients drop, hostile requests). Prints requests, statuses,
   classification p50/p99 while generations run, and the server's RSS after each round.
2. Fault: SIGKILL the server while the load runs, restart it on the same result cache, and check that
   the cache opens, serves earlier results (cached: true) and classifies new texts.

Pass: no 5xx but 503 with Retry-After, every label valid, RSS after the last round within
RSS_GROWTH_LIMIT_MB of the RSS after the first, and the restart serves. Everything runs on loopback.

    .venv/bin/python bench/reliability_bench.py      (about 5 minutes on 2 cores, after the test fixtures exist)
    (--smoke: one round of 2 clients x 2 requests, a short generation; bench/smoke_mode.py)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import fixture_models  # noqa: E402
from running_server import RunningServer  # noqa: E402  (tests/running_server.py: no test set-up)
from finsent_local.convert.pipeline import ConvertRequest, convert  # noqa: E402
from load_mix import get_json, post_json, rss_mb, run_load, sigkill_under_load  # noqa: E402
from sentiment_data import held_out_examples  # noqa: E402
from smoke_mode import pick  # noqa: E402

CLIENTS = int(os.environ.get("BENCH_CLIENTS", pick(32, 2)))
REQUESTS_PER_CLIENT = int(os.environ.get("BENCH_REQUESTS", pick(10, 2)))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", pick(4, 1)))
GENERATION_TOKENS = pick(1024, 32)
KILL_CLIENTS, SECONDS_BEFORE_KILL = pick(16, 2), pick(3, 1)
RSS_GROWTH_LIMIT_MB = 50.0


def _classification_during_generation(url: str, model_id: str) -> tuple[float, float, int]:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    body = {"model": model_id, "prompt": "Acme Corp", "max_tokens": GENERATION_TOKENS, "temperature": 2.0, "seed": 3, "stream": True}
    started = time.perf_counter()
    connection.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    response.readline()  # the first event: the generation runs
    before = time.perf_counter()
    post_json(url + "/v1/classify", {"text": "Initrode cuts its dividend after a weak quarter", "scheme": "7"})
    during = time.perf_counter() - before
    events = sum(1 for line in iter(response.readline, b"") if line.startswith(b"data: {"))
    connection.close()
    return during, time.perf_counter() - started, events


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="finsent-reliability-"))
    model = work / "trained-F16.gguf"
    convert(ConvertRequest(source=str(fixture_models.trained_checkpoint()), outtypes=["f16"], outfile=str(model),
                           verify=False, quiet=True))
    texts = [t for t, _ in held_out_examples(per_label=6)]
    env = {"FINSENT_CACHE_DIR": str(work / "cache")}
    failures: list[str] = []

    # 1. load and soak
    server = RunningServer("--model", str(model), env=env)
    model_id = get_json(server.url + "/v1/models")["data"][0]["id"]
    rss = [rss_mb(server.proc.pid)]
    print(f"server up, RSS {rss[0]:.0f} MB; {ROUNDS} rounds x {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests")
    for round_number in range(ROUNDS):
        report = run_load(server.url, model_id, texts, clients=CLIENTS, requests_per_client=REQUESTS_PER_CLIENT,
                          seed=round_number, timeout_s=120, max_seconds=600)
        rss.append(rss_mb(server.proc.pid))
        summary = report.summary()
        print(f"round {round_number + 1}: RSS {rss[-1]:.0f} MB  " + json.dumps(summary))
        failures += report.problems()
    growth = rss[-1] - rss[1]
    print(f"RSS: start {rss[0]:.0f} MB, after round 1 {rss[1]:.0f} MB, end {rss[-1]:.0f} MB "
          f"(growth after warm-up {growth:+.0f} MB, limit {RSS_GROWTH_LIMIT_MB:.0f})")
    if growth > RSS_GROWTH_LIMIT_MB:
        failures.append(f"RSS grew {growth:.0f} MB after warm-up")

    # 1b. one classification during one long generation, against that generation's own length (the
    # time the classification waited before the engine thread took turns)
    during_s, generation_s, tokens = _classification_during_generation(server.url, model_id)
    print(f"one classification during a generation (max_tokens {GENERATION_TOKENS}, {tokens} streamed chunks): {during_s * 1000:.0f} ms; "
          f"the generation took {generation_s:.1f} s, the wait a classification had behind it before "
          f"(ratio x{generation_s / during_s:.0f})")

    # 2. SIGKILL under load, restart on the same cache
    known = texts[:8]
    post_json(server.url + "/v1/classify", {"texts": known, "scheme": "7"})
    sigkill_under_load(server.proc, server.url, model_id, texts, clients=KILL_CLIENTS,
                       seconds_before_kill=SECONDS_BEFORE_KILL)
    started = time.perf_counter()
    server = RunningServer("--model", str(model), env=env)
    restart_s = time.perf_counter() - started
    again = post_json(server.url + "/v1/classify", {"texts": known + ["Brand-new text: Hooli raises guidance"], "scheme": "7"})
    cached = sum(1 for r in again["results"][:-1] if r.get("cached"))
    print(f"SIGKILL under load, restart in {restart_s:.1f} s: {cached}/{len(known)} earlier results served from the "
          f"cache, new text labelled {again['results'][-1].get('label')!r}")
    if cached != len(known) or "label" not in again["results"][-1]:
        failures.append("the result cache did not serve after SIGKILL and restart")
    server.stop()

    print("PASS" if not failures else "FAIL:\n  " + "\n  ".join(failures[:20]))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
