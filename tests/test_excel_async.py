"""The xlwings functions without freezing Excel: calls from many threads at once (xlwings' async mode
runs each in a thread) gathered into few requests to the real server, each request with a deadline of
its own, and answered chunks kept when a later one times out (a real server behind a test-only delay)."""

from __future__ import annotations

import threading
import time

from finsent_local.excel import cells
from finsent_local.excel.batching import CHUNK_TEXTS, chunks
from finsent_local.excel.finsent_udf import FINSENT, FINSENT_PROBS
from load_mix import post_json
from xlwings_stand_ins import classify_requests, sheet_env, xlwings_udfs_with_com_stand_ins  # noqa: F401 (a fixture)


def test_200_cells_at_once_make_a_handful_of_requests(sheet_env):
    texts = [f"Initech unit {i} {('raises its outlook', 'cuts jobs', 'holds its meeting')[i % 3]}" for i in range(200)]
    answers: dict[int, object] = {}
    start = threading.Barrier(200)

    def cell(i: int) -> None:
        start.wait()  # as a column recalculating: every call arrives together
        answers[i] = FINSENT(texts[i], "7")

    before = classify_requests(sheet_env.url)
    threads = [threading.Thread(target=cell, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    requests = classify_requests(sheet_env.url) - before
    assert len(answers) == 200
    assert requests <= 8, requests  # 200 texts in chunks of 64: 4, a few more if the calls span two windows
    one_by_one = [post_json(sheet_env.url + "/v1/classify", {"texts": [t]})["results"][0]["label"] for t in texts]
    assert [answers[i] for i in range(200)] == one_by_one  # no text got another's answer


def test_mixed_schemes_and_functions_from_threads_each_get_their_own_answers(sheet_env):
    text = "Globex files for bankruptcy protection"
    out = {}
    calls = {"7": lambda: FINSENT(text, "7"), "3": lambda: FINSENT(text, "3"),
             "probs": lambda: FINSENT_PROBS([[text]], "3")}
    threads = [threading.Thread(target=lambda k=k, f=f: out.update({k: f()})) for k, f in calls.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert out["7"] == "strong negative" and out["3"] == "negative"
    assert out["probs"][0] == ["negative", "neutral", "positive"] and max(out["probs"][1]) == out["probs"][1][0]


def test_chunks_bound_texts_and_bytes():
    assert [len(c) for c in chunks(["a"] * 150)] == [CHUNK_TEXTS, CHUNK_TEXTS, 150 - 2 * CHUNK_TEXTS]
    big = ["é" * 30_000] * 20  # 6 JSON bytes a character
    assert all(sum(len(t) * 6 for t in c) <= 2 * 1024 * 1024 for c in chunks(big)) and sum(map(len, chunks(big))) == 20


class _SlowThirdRequest:
    """TEST-ONLY delay in front of the real app: the third /v1/classify request waits `delay_s` first."""

    def __init__(self, app, delay_s: float):
        self.app, self.delay_s, self.seen = app, delay_s, 0
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ["PATH_INFO"] == "/v1/classify":
            with self.lock:
                self.seen += 1
                slow = self.seen == 3
            if slow:
                time.sleep(self.delay_s)
        return self.app(environ, start_response)


def test_a_timed_out_chunk_loses_only_its_own_texts(loaded_runtime, monkeypatch):
    """A 500-cell range on a server whose third request is too slow: the two chunks answered before
    it are kept and shown, the rest get the timeout message, and a recalculation asks only the rest."""
    from werkzeug.serving import make_server

    from finsent_local.server import create_app

    slow = _SlowThirdRequest(create_app(loaded_runtime), delay_s=5)
    httpd = make_server("127.0.0.1", 0, slow, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_port}"
    monkeypatch.setenv("FINSENT_URL", url)
    monkeypatch.delenv("FINSENT_API_KEY", raising=False)
    monkeypatch.setattr(cells, "REQUEST_TIMEOUT_S", 2.0)
    cells.results_cache.clear()
    column = [[f"Hooli branch {i} reports sales up {i % 23}%"] for i in range(500)]
    try:
        first = FINSENT(column, "3")
        answered = [row[0] for row in first if not row[0].startswith("#FINSENT!")]
        assert len(answered) == 2 * CHUNK_TEXTS and [row[0] for row in first[:2 * CHUNK_TEXTS]] == answered
        assert all(row[0] == f"#FINSENT! server at {url} did not answer in time" for row in first[2 * CHUNK_TEXTS:])
        asked_before = slow.seen
        again = FINSENT(column, "3")
        assert slow.seen - asked_before == -(-(500 - 2 * CHUNK_TEXTS) // CHUNK_TEXTS)  # only the missing texts
        assert again[:2 * CHUNK_TEXTS] == first[:2 * CHUNK_TEXTS]
        assert all(row[0] in ("negative", "neutral", "positive") for row in again)
    finally:
        httpd.shutdown()


def test_the_functions_are_asynchronous_in_xlwings_metadata(monkeypatch):
    """STAND-INS for the Windows-only COM modules (Excel cannot exist here), so xlwings' own decorators
    and UDF server module load: each function is declared async_mode="threading", the freeze macro is
    a sub, and xlwings' async thread pool is widened so calls arriving together run (and batch) at once."""
    import importlib

    udfs, module = xlwings_udfs_with_com_stand_ins(monkeypatch)
    try:
        for name in ("FINSENT", "FINSENT_SCORE", "FINSENT_PROBS", "FINSENT_DOC", "FINSENT_DOC_SCORE", "FINSENT_WHY"):
            assert getattr(module, name).__xlfunc__["async_mode"] == "threading", name
        assert module.FINSENT_FREEZE_SELECTION.__xlfunc__.get("sub") is True
        assert udfs.com_executor._max_workers == module.ASYNC_THREADS
    finally:
        monkeypatch.undo()
        importlib.reload(module)
