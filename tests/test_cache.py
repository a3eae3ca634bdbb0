"""The SQLite result cache: persistence, isolation between models, concurrency, corruption."""

from __future__ import annotations

import threading

from finsent_local.cache import ResultCache


def test_results_persist_and_are_keyed_by_namespace_and_scheme(tmp_path):
    path = tmp_path / "r.sqlite3"
    ResultCache(path, "model-a").put_many("7", {"Profit up": {"label": "mildly positive"}})
    assert ResultCache(path, "model-a").get_many("7", ["Profit up", "other"]) == {"Profit up": {"label": "mildly positive"}}
    assert ResultCache(path, "model-b").get_many("7", ["Profit up"]) == {}
    assert ResultCache(path, "model-a").get_many("3", ["Profit up"]) == {}


def test_concurrent_writers_and_readers(tmp_path):
    path = tmp_path / "r.sqlite3"
    errors = []

    def work(worker: int):
        cache = ResultCache(path, "m")
        try:
            for i in range(50):
                cache.put_many("7", {f"text {worker}-{i}": {"label": "neutral", "i": i}})
                assert cache.get_many("7", [f"text {worker}-{i}"])[f"text {worker}-{i}"]["i"] == i
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(ResultCache(path, "m").get_many("7", [f"text {w}-{i}" for w in range(8) for i in range(50)])) == 400


def test_corrupt_file_is_moved_aside_and_rebuilt(tmp_path):
    path = tmp_path / "r.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    cache = ResultCache(path, "m")
    cache.put_many("3", {"x": {"label": "neutral"}})
    assert cache.get_many("3", ["x"]) == {"x": {"label": "neutral"}}
    aside = list(tmp_path.glob("r.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
