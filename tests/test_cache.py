"""The SQLite result cache: persistence, isolation between models, concurrency, corruption."""

from __future__ import annotations

import threading

from finsent_local.engine.cache import ResultCache


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


def test_a_locked_cache_is_not_treated_as_corrupt(tmp_path):
    import sqlite3

    import pytest

    from finsent_local.engine.cache import CacheUnavailable

    path = tmp_path / "r.sqlite3"
    # Another program (a database browser, say) holds an exclusive lock on a rollback-journal database.
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE other (a)")
    holder.execute("BEGIN EXCLUSIVE")
    before = path.read_bytes()
    try:
        with pytest.raises(CacheUnavailable):
            ResultCache(path, "m", busy_timeout_s=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not list(tmp_path.glob("*.corrupt-*")) and path.read_bytes() == before  # left alone
    cache = ResultCache(path, "m")  # once the lock is gone, the same file works
    cache.put_many("7", {"x": {"label": "neutral"}})
    assert cache.get_many("7", ["x"]) == {"x": {"label": "neutral"}}


def _mount_tmpfs(folder, options: str) -> bool:
    """A small real file system for full-disk and read-only faults (needs root; skipped otherwise)."""
    import subprocess

    folder.mkdir(exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def _umount(folder) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_read_only_cache_means_no_cache_with_a_warning(tmp_path, caplog):
    import subprocess

    import pytest

    from finsent_local.engine.service import result_cache_for

    writable, read_only = tmp_path / "rw", tmp_path / "ro"
    writable.mkdir()
    read_only.mkdir()
    cache = ResultCache(writable / "results.sqlite3", "m")
    cache.put_many("7", {"x": {"label": "neutral"}})
    cache.close()
    if subprocess.run(["mount", "--bind", str(writable), str(read_only)], capture_output=True).returncode != 0:
        pytest.skip("a read-only bind mount needs root")
    try:
        assert subprocess.run(["mount", "-o", "remount,bind,ro", str(read_only)]).returncode == 0

        class EngineFacts:  # only what result_cache_for reads from an engine
            options = type("O", (), {"prompt_preset": "card", "max_prompt_tokens": 1024, "lora_path": None,
                                     "instruction_subject": "news"})()
            prompt_version = 1

        model = tmp_path / "model.gguf"
        model.write_bytes(b"GGUF" + b"\0" * 100)
        with caplog.at_level("WARNING"):
            assert result_cache_for(read_only / "results.sqlite3", model, EngineFacts()) is None
        assert "result cache off" in caplog.text
        assert sorted(p.name for p in read_only.iterdir()) == ["results.sqlite3"]  # nothing moved aside
    finally:
        _umount(read_only)


def test_full_disk_stops_caching_once_and_says_so_once(tmp_path, caplog):
    import pytest

    folder = tmp_path / "full"
    if not _mount_tmpfs(folder, "size=256k"):
        pytest.skip("mounting a tmpfs needs root")
    try:
        cache = ResultCache(folder / "results.sqlite3", "m")
        with caplog.at_level("WARNING"):
            for batch in range(40):
                cache.put_many("7", {f"{batch}-{i} " + "x" * 2000: {"label": "neutral"} for i in range(20)})
        assert cache.write_error is not None and "full" in cache.write_error
        assert caplog.text.count("classification continues without caching") == 1
        assert cache.get_many("7", ["0-0 " + "x" * 2000]) == {"0-0 " + "x" * 2000: {"label": "neutral"}}
    finally:
        _umount(folder)


def test_fingerprint_comes_from_the_file_and_is_remembered(tmp_path):
    import json
    import os

    from finsent_local.files import file_fingerprint, sha256_of

    model = tmp_path / "m.gguf"
    model.write_bytes(b"A" * 1000)
    memo = tmp_path / "memo.json"
    assert file_fingerprint(model, memo) == sha256_of(model)
    # Remembered by path, size, mtime and inode: a stored value is used while those match ...
    data = json.loads(memo.read_text())
    data[str(model.resolve())]["sha256"] = "remembered"
    memo.write_text(json.dumps(data))
    assert file_fingerprint(model, memo) == "remembered"
    # ... and a different file of the same size copied over it is hashed again.
    other = tmp_path / "other.gguf"
    other.write_bytes(b"B" * 1000)
    os.replace(other, model)
    assert file_fingerprint(model, memo) == sha256_of(model) != "remembered"


def test_a_different_model_copied_over_the_file_does_not_reuse_results(tmp_path, trained_gguf):
    import shutil

    from finsent_local.convert.manifest import manifest_path
    from finsent_local.engine.classifier import EngineOptions
    from finsent_local.engine.service import open_service

    model = tmp_path / "model.gguf"
    shutil.copy(trained_gguf["f16"], model)
    shutil.copy(manifest_path(trained_gguf["f16"]), manifest_path(model))  # the sidecar stays the old one
    cache = tmp_path / "results.sqlite3"
    text = "Hooli raises full-year guidance"

    def classify_once():
        service = open_service(model, EngineOptions(), cache)
        try:
            return service.classify([text], "3")[0]
        finally:
            service.close()

    assert classify_once()["cached"] is False
    assert classify_once()["cached"] is True
    changed = bytearray(model.read_bytes())
    changed[-1] ^= 0x01  # the same size, another model (a bit of the last tensor differs)
    model.write_bytes(bytes(changed))
    assert classify_once()["cached"] is False
