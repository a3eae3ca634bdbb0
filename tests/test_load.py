"""32 concurrent clients against the real server, mixing classification, generation streams that
clients drop half-way, and hostile requests: no 5xx but 503 with Retry-After, every label valid.
(bench/reliability_bench.py runs the same mix longer, with memory figures.)"""

from __future__ import annotations

import urllib.request

from load_mix import get_json, post_json, run_load, sigkill_under_load


def test_mixed_load_keeps_every_promise(server, held_out):
    texts = [t for t, _ in held_out]
    models = get_json(server.url + "/v1/models")["data"]
    report = run_load(server.url, models[0]["id"], texts, clients=32, requests_per_client=5, seed=1,
                      timeout_s=120, max_seconds=300)
    summary = report.summary()
    print(summary)
    assert report.problems() == []
    assert report.requests == 32 * 5
    assert set(report.by_kind) == {"classify_batch", "label", "chat_classify", "stream", "hostile"}
    assert report.dropped_streams > 0 and report.finished_streams > 0
    assert report.by_status[200] > report.requests // 2
    assert all(status in (200, 400, 403, 413, 503) for status in report.by_status), report.by_status
    # The server is still healthy afterwards.
    with urllib.request.urlopen(server.url + "/health", timeout=30) as health:
        assert health.status == 200


def test_sigkill_under_load_then_restart_serves_from_the_cache(trained_gguf, tmp_path, held_out):
    from running_server import RunningServer

    env = {"FINSENT_CACHE_DIR": str(tmp_path / "cache")}
    texts = [t for t, _ in held_out]
    body = {"texts": texts[:6], "scheme": "7"}
    server = RunningServer("--model", str(trained_gguf["f16"]), env=env)
    try:
        first = post_json(server.url + "/v1/classify", body)["results"]
        sigkill_under_load(server.proc, server.url, "finsent-7", texts)
    finally:
        server.stop()
    restarted = RunningServer("--model", str(trained_gguf["f16"]), env=env)
    try:
        again = post_json(restarted.url + "/v1/classify", body)["results"]
        assert [r["cached"] for r in again] == [True] * 6
        assert [r["label"] for r in again] == [r["label"] for r in first]
    finally:
        restarted.stop()
