"""32 concurrent clients against the real server, mixing classification, generation streams that
clients drop half-way, and hostile requests: no 5xx but 503 with Retry-After, every label valid.
(bench/reliability_bench.py runs the same mix longer, with memory figures.)"""

from __future__ import annotations

import json
import urllib.request

from load_mix import run_load


def test_mixed_load_keeps_every_promise(server, held_out):
    texts = [t for t, _ in held_out]
    with urllib.request.urlopen(server.url + "/v1/models", timeout=30) as response:
        models = json.loads(response.read())["data"]
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
    import os
    import signal
    import threading
    import time

    from conftest import RunningServer

    env = {"FINSENT_CACHE_DIR": str(tmp_path / "cache")}
    texts = [t for t, _ in held_out]
    server = RunningServer("--model", str(trained_gguf["f16"]), env=env)
    try:
        body = json.dumps({"texts": texts[:6], "scheme": "7"}).encode()
        request = urllib.request.Request(server.url + "/v1/classify", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            first = json.loads(response.read())["results"]
        load = threading.Thread(target=run_load, args=(server.url, "finsent-7", texts),
                                kwargs={"clients": 8, "requests_per_client": 40, "timeout_s": 5, "max_seconds": 20},
                                daemon=True)
        load.start()
        time.sleep(1.5)
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(30)
        load.join(60)
    finally:
        server.stop()
    restarted = RunningServer("--model", str(trained_gguf["f16"]), env=env)
    try:
        request = urllib.request.Request(restarted.url + "/v1/classify", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            again = json.loads(response.read())["results"]
        assert [r["cached"] for r in again] == [True] * 6
        assert [r["label"] for r in again] == [r["label"] for r in first]
    finally:
        restarted.stop()
