"""Benchmark: `finsent serve` against llama.cpp's own `llama-server`, side by side (issue 10, section 3).

llama-server is built from the llama.cpp that llama-cpp-python 0.3.36 vendors (its PyPI sdist; cmake
target `llama-server`, minutes on 2 cores; kept in bench/.work), and both servers serve the same GGUF
(random weights of Llama-FinSent-S's shape, Q4_K_M) with the same threads, on the same texts, one
after the other in this run. llama-server is set up as a power user would for labelling: 8 parallel
slots, prompt caching on (its instruction prefix is shared by every request), greedy, `n_predict` 3
(enough tokens for the longest label), weight repacking (AMX) on or off as `finsent serve` picks it on
this CPU (finsent_local/engine/cpu_buffers.py), so both sides run the same kernels; on a CPU with AMX and GCC <
13 llama-server is built with llama_build/gcc_amx_tile_config.h, like llama-cpp-python. FinSent returns every label's
probability as well; llama-server returns only the generated text.

Prints, per server: one text per request, sequential (latency), and 8 concurrent clients (texts/s),
with ratios. Targets: FinSent >= 1.5x on latency and >= 2x on throughput.

Run after bench/convert_bench.py: .venv/bin/python bench/server_peer.py
(--smoke: the tests' trained checkpoint and a few texts, bench/smoke_mode.py; llama-server only where a full
run already built it in bench/.work, else FinSent's side alone)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from convert_bench import PYTHON  # noqa: E402
from engine_bench import model_file  # noqa: E402
from running_server import RunningServer  # noqa: E402  (tests/running_server.py: no test set-up)
from load_mix import post_json  # noqa: E402
from same_shape import WORK  # noqa: E402
from smoke_mode import SMOKE, pick  # noqa: E402
from finsent_local.convert.verify import LABEL_SENTENCES  # noqa: E402
from finsent_local.engine import cpu_buffers  # noqa: E402
from finsent_local.engine.labels import default_schemes  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "llama_build"))
import install as llama_install  # noqa: E402

THREADS = os.cpu_count() or 2
CLIENTS = pick(8, 2)
SINGLE_TEXTS = pick(24, 2)
PER_CLIENT = pick(6, 1)


def build_llama_server() -> Path | None:
    """The llama-server binary, built here when missing (None in a smoke run that finds none)."""
    # The AMX fix matters only where AMX kernels are compiled in (-march=native on an AMX CPU).
    fix = cpu_buffers.cpu_has_amx() and llama_install.needs_tile_config_fix(llama_install.compiler_macros("c++"))
    build = WORK / ("llama-server-build-amxfix" if fix else "llama-server-build")
    binary = build / "bin" / "llama-server"
    if binary.exists():
        return binary
    if SMOKE:  # nothing downloaded or built in a smoke run
        return None
    sdist_dir = WORK / "sdist"
    sdist_dir.mkdir(parents=True, exist_ok=True)
    if not list(sdist_dir.glob("llama_cpp_python-0.3.36.tar.gz")):
        subprocess.run([PYTHON, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-q",
                        "llama-cpp-python==0.3.36", "-d", str(sdist_dir)], check=True)
    source = sdist_dir / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"
    if not (source / "CMakeLists.txt").exists():
        with tarfile.open(next(sdist_dir.glob("llama_cpp_python-0.3.36.tar.gz"))) as tar:
            tar.extractall(sdist_dir, members=[m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name])
    flags = [f"-DCMAKE_CXX_FLAGS=-include {llama_install.TILE_CONFIG_HEADER}"] if fix else []
    subprocess.run(["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF",
                    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON",
                    "-DLLAMA_BUILD_TOOLS=ON", "-DGGML_NATIVE=ON", *flags], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build), "--target", "llama-server", "-j", str(THREADS)], check=True,
                   stdout=subprocess.DEVNULL)
    return binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    return post_json(url, body, timeout_s=600)


def _wait_ready(url: str, proc: subprocess.Popen) -> None:
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.args}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server not ready: {proc.args}")


def measure(ask, texts: list[str]) -> tuple[float, float]:
    """(seconds per text, one request at a time; texts/s with CLIENTS concurrent clients)."""
    ask("warm-up headline")
    start = time.perf_counter()
    for text in texts[:SINGLE_TEXTS]:
        ask(text)
    single = (time.perf_counter() - start) / SINGLE_TEXTS
    work = texts[SINGLE_TEXTS:SINGLE_TEXTS + CLIENTS * PER_CLIENT]

    def client(mine: list[str]) -> None:
        for text in mine:
            ask(text)

    threads = [threading.Thread(target=client, args=(work[i::CLIENTS],)) for i in range(CLIENTS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return single, len(work) / (time.perf_counter() - start)


def main() -> None:
    path = model_file()
    binary = build_llama_server()
    texts = [f"{s} (item {i})" for i in range(4) for s in LABEL_SENTENCES]  # distinct: no result cache hits
    prompt = default_schemes()["7"].prompt
    rows = {}
    repack = cpu_buffers.decide(None, path)
    print(f"extra CPU buffer types (repacking) on both sides: {repack.use} ({repack.reason})")

    peer_name = f"llama-server ({CLIENTS} slots, prompt cache, n_predict 3)"
    if binary is None:
        print("llama-server: not built (smoke run: FinSent's side only)")
    else:
        port = _free_port()
        peer = subprocess.Popen([str(binary), "-m", str(path), "--host", "127.0.0.1", "--port", str(port),
                                 "-t", str(THREADS), "-c", str(1024 * CLIENTS), "-np", str(CLIENTS),
                                 "--repack" if repack.use else "--no-repack"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, peer)
            rows[peer_name] = measure(
                lambda text: _post(url + "/completion", {"prompt": prompt(text), "n_predict": 3, "temperature": 0,
                                                         "cache_prompt": True}), texts)
        finally:
            peer.terminate()
            peer.wait(timeout=30)

    ours = RunningServer("--model", str(path), "--threads", str(THREADS), "--no-cache", "--log-level", "warning",
                         "--extra-bufts" if repack.use else "--no-extra-bufts")
    try:
        rows["finsent serve (every label's probability)"] = measure(
            lambda text: _post(ours.url + "/v1/classify", {"text": text, "scheme": "7"}), texts)
    finally:
        ours.stop()

    print(f"\nmodel: {path.name}; {THREADS} threads; {SINGLE_TEXTS} texts one at a time, then "
          f"{CLIENTS} clients x {PER_CLIENT} texts")
    print(f"{'server':52} {'ms/text (1 at a time)':>22} {f'texts/s ({CLIENTS} clients)':>20}")
    for name, (single, rate) in rows.items():
        print(f"{name:52} {single * 1000:22.1f} {rate:20.2f}")
    our_single, our_rate = rows["finsent serve (every label's probability)"]
    if peer_name in rows:
        peer_single, peer_rate = rows[peer_name]
        print(f"\nFinSent vs llama-server: latency x{peer_single / our_single:.2f} (target >= 1.5), "
              f"throughput x{our_rate / peer_rate:.2f} (target >= 2)")


if __name__ == "__main__":
    main()
