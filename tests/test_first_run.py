"""The default model's first run: several processes that start without a model (Ray actors on one
node, two terminals) download and convert it once, not each over the others; downloads over a real
(loopback) network that break, are refused or cannot start; the way to make the model with no network.

FAKE HUB: the hub cannot be reached here. Either its local cache is laid out by hand (the layout
huggingface-hub itself writes, as in test_convert_cli.py) and the real code runs offline against it, or
tests/hub_stand_in.py serves a tiny checkpoint on 127.0.0.1 with the hub's answers and huggingface-hub's
own client downloads from it (HF_ENDPOINT); nothing of the client is mocked."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import run_finsent
from hub_stand_in import HubStandIn
from running_server import RunningServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _fake_hub_cache(hf_home: Path, checkpoint: Path) -> None:
    repo = hf_home / "hub" / "models--oopere--Llama-FinSent-S"
    shutil.copytree(checkpoint, repo / "snapshots" / COMMIT, ignore=shutil.ignore_patterns(".complete"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)


def test_concurrent_first_runs_convert_once(tmp_path, tied_f16_checkpoint):
    _fake_hub_cache(tmp_path / "hf", tied_f16_checkpoint)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "FINSENT_MODEL": "",
           "FINSENT_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "finsent_local.cli", "classify", "--no-cache", "Hooli raises guidance"]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outcomes = [(proc.wait(timeout=600), *proc.communicate()) for proc in procs]
    for code, stdout, stderr in outcomes:
        assert code == 0 and len(stdout.splitlines()) == 1 and "Traceback" not in stderr, stderr
    stderrs = [stderr for _, _, stderr in outcomes]
    assert sum("No model yet: downloading oopere/Llama-FinSent-S" in s for s in stderrs) == 1, stderrs
    waited = [s for s in stderrs if "No model yet" not in s]
    for stderr in waited:  # started while the first was converting, or after it had finished
        assert ("Another finsent process is downloading and converting oopere/Llama-FinSent-S; waiting for it" in stderr
                and "which another finsent process has just made" in stderr) or stderr == "", stderrs
    names = [p.name for p in (tmp_path / "cache" / "models").iterdir()]
    assert [n for n in names if n.endswith(".gguf")] == ["Llama-FinSent-S-Q4_K_M.gguf"], names
    assert not [n for n in names if n.startswith(".")], names  # no other conversion's work folder left


# -- over the network: tests/hub_stand_in.py ------------------------------------------------------------
REPO_CACHE = Path("hub") / "models--oopere--Llama-FinSent-S"
MODEL_FILE = Path("models") / "Llama-FinSent-S-Q4_K_M.gguf"
LAST_LINE_HINT = "To use a GGUF file you already have: --model PATH or FINSENT_MODEL=PATH"


@pytest.fixture
def hub(tied_f16_checkpoint):
    with HubStandIn(tied_f16_checkpoint) as stand_in:
        yield stand_in


def _env(hub: HubStandIn, tmp_path: Path, token: str = "", **more) -> dict:
    return {**hub.env(tmp_path / "hf", token), "FINSENT_CACHE_DIR": str(tmp_path / "cache"), "FINSENT_MODEL": "",
            **more}


def _first_run(env: dict, timeout: float = 300):
    return run_finsent("classify", "--no-cache", "Hooli raises guidance", env=env, timeout=timeout)


def _partial_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "hf" / REPO_CACHE / "blobs").glob("*.incomplete"))


def test_first_run_over_the_network_resumes_a_cut_download(tmp_path, hub):
    """The model's file is cut after 12 MB: huggingface-hub asks for the rest (Range) and the first run
    converts and answers."""
    hub.cut, hub.cut_times = {"model.safetensors": 12_000_000}, 1
    code, stdout, stderr = _first_run(_env(hub, tmp_path))
    assert code == 0 and len(stdout.splitlines()) == 1, stderr
    gets = hub.file_gets("model.safetensors")
    assert [g.get("range") for g in gets] == [None, "bytes=10485760-"]  # from its last whole 10 MB chunk
    assert (tmp_path / "cache" / MODEL_FILE).is_file() and not _partial_files(tmp_path)


def test_a_download_cut_again_and_again_is_one_line_and_running_again_resumes(tmp_path, hub):
    hub.cut = {"model.safetensors": 1000}  # every try: huggingface-hub retries 5 times, then gives up
    out = tmp_path / "out"
    out.mkdir()
    command = ["convert", "oopere/Llama-FinSent-S", "--outfile", str(out / "m.gguf"), "--no-verify", "-q"]
    code, stdout, stderr = run_finsent(*command, env=_env(hub, tmp_path))
    assert code == 1 and stdout == "" and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == (
        "Error: the download of oopere/Llama-FinSent-S was interrupted (RemoteProtocolError: peer closed connection "
        "without sending complete message body (received 1000 bytes, expected 16622312)); run the same command again "
        "to resume: the files already downloaded are kept")
    assert len(hub.file_gets("model.safetensors")) == 6 and not _partial_files(tmp_path)
    assert list(out.iterdir()) == []

    hub.cut, hub.requests[:] = {}, []
    code, stdout, stderr = run_finsent(*command, env=_env(hub, tmp_path))
    assert code == 0 and stdout.strip() == str(out / "m.gguf"), stderr
    fetched = {path.rsplit("/", 1)[1] for method, path, _ in hub.requests if method == "GET" and "/resolve/" in path}
    assert fetched == {"model.safetensors"}  # the others were kept from the first run


def test_a_file_in_xet_storage_that_cannot_be_fetched_is_one_line(tmp_path, hub):
    """The hub keeps large files in Xet storage, fetched by hf_xet (not httpx): when it gives up, after its
    own retries (cut short here), the line says so and names the plain HTTPS way."""
    hub.xet_cas = {"model.safetensors"}
    env = _env(hub, tmp_path, HF_HUB_DISABLE_XET="", HF_XET_CLIENT_RETRY_MAX_ATTEMPTS="1",
               HF_XET_CLIENT_RETRY_BASE_DELAY="10ms", HF_XET_CLIENT_RETRY_MAX_DURATION="1s")
    code, stdout, stderr = _first_run(env)
    assert code == 1 and stdout == "" and "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Error: the download of oopere/Llama-FinSent-S was interrupted (Xet storage: RuntimeError: "), last
    assert last.endswith("run the same command again to resume: the files already downloaded are kept (or set "
                         "HF_HUB_DISABLE_XET=1 to download over plain HTTPS). " + LAST_LINE_HINT), last
    assert not _partial_files(tmp_path) and not (tmp_path / "cache" / "models").exists()


REFUSALS = {
    "token refused": ("hf_not_a_token", lambda method, path, headers: (
        401, {"X-Error-Message": "Invalid credentials in Authorization header"}) if headers.get("Authorization") else None,
        "Error: cannot download oopere/Llama-FinSent-S: the hub refused the token it was sent (401 Unauthorized: Invalid "
        "credentials in Authorization header); set a valid one in HF_TOKEN or with `hf auth login`, or none at all for a "
        "public model (unset HF_TOKEN, `hf auth logout`). " + LAST_LINE_HINT),
    "access refused": ("", lambda method, path, headers: (403, {"X-Error-Message": "Access to this resource is restricted"}),
        "Error: cannot download oopere/Llama-FinSent-S: access refused (403 Forbidden: Access to this resource is "
        "restricted), by the hub or a proxy in between; if the repo needs a token, set HF_TOKEN. " + LAST_LINE_HINT),
    "access refused to the token": ("hf_read_nothing", lambda method, path, headers: (403, {}),
        "Error: cannot download oopere/Llama-FinSent-S: access refused (403 Forbidden); the token in use (HF_TOKEN or "
        "`hf auth login`) may not read this repo: give it read access, or use another. " + LAST_LINE_HINT),
    "hub down": ("", lambda method, path, headers: (503, {}) if path.startswith("/api/") else None,
        "Error: cannot download oopere/Llama-FinSent-S: the hub is down (HTTP 503 Service Unavailable; try again later) "
        "and it is not in the local cache. No network? "),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_say_what_happened(tmp_path, hub, case):
    token, hub.answer, expected = REFUSALS[case]
    code, stdout, stderr = _first_run(_env(hub, tmp_path, token))
    assert code == 1 and stdout == "" and "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(expected) and last.endswith(LAST_LINE_HINT), last
    assert not (tmp_path / "cache" / "models").exists()


def test_no_network_says_how_to_make_the_model_and_serve_then_finds_it(tmp_path, hub, tied_f16_checkpoint):
    """Connection refused (nothing listens at HF_ENDPOINT): the line names the reason and prints the command
    that converts a copy of the checkpoint into the file the first run looks for; run as printed, `finsent
    serve` then starts on that file with no network at all."""
    env = _env(hub, tmp_path, HF_ENDPOINT="http://127.0.0.1:9")  # the discard port: nothing listens there
    code, stdout, stderr = _first_run(env)
    assert code == 1 and stdout == "" and "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Error: cannot download oopere/Llama-FinSent-S: the hub is unreachable (ConnectError: "), last
    assert "Connection refused" in last and last.endswith(LAST_LINE_HINT), last
    command = last.split("then run: ", 1)[1].split(". To use a GGUF", 1)[0]
    model_file = tmp_path / "cache" / MODEL_FILE
    assert command == (f"mkdir -p {shlex.quote(str(model_file.parent))} && finsent convert /path/to/Llama-FinSent-S "
                       f"--outtype q4_k_m --outfile {shlex.quote(str(model_file))}")
    command = command.replace("finsent convert /path/to/Llama-FinSent-S",
                              f"{shlex.quote(sys.executable)} -m finsent_local.cli convert {shlex.quote(str(tied_f16_checkpoint))}")
    done = subprocess.run(["bash", "-c", command], env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == str(model_file), done.stderr

    server = RunningServer(env={**env, "HF_HUB_OFFLINE": "1"})
    try:
        with urllib.request.urlopen(f"{server.url}/v1/status", timeout=30) as answer:
            status = json.loads(answer.read())
        assert status["status"] == "ok" and status["model_file"] == model_file.name
        assert "No model yet" not in server.log()  # no --model, no FINSENT_MODEL: the file the first run makes
    finally:
        server.stop()
    assert hub.requests == []  # the stand-in was never asked anything


def _wait_for(condition, timeout: float = 60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_killed_download_is_cleared_by_the_next_first_run(tmp_path, hub):
    """SIGKILL during the download leaves huggingface-hub's partial file (named for that process: never
    resumed); the next first run removes it, downloads again and converts."""
    hub.stall = {"model.safetensors": 12_000_000, "tokenizer.json": 12_000_000}  # 10 MB each reach the disk
    env = _env(hub, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "finsent_local.cli", "classify", "--no-cache", "Hooli raises guidance"],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        partial = _wait_for(lambda: [p for p in _partial_files(tmp_path) if p.stat().st_size >= 10_000_000][1:] and
                            _partial_files(tmp_path))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert _partial_files(tmp_path) == partial and len(partial) == 2  # left behind: nothing could clean up

    hub.stall = {}
    code, stdout, stderr = _first_run(env)
    assert code == 0 and len(stdout.splitlines()) == 1, stderr
    assert "Removed 2 unfinished download(s) of oopere/Llama-FinSent-S (21 MB) left by a run that was stopped" in stderr, stderr
    assert not _partial_files(tmp_path) and (tmp_path / "cache" / MODEL_FILE).is_file()


def test_a_partial_download_another_process_is_writing_is_kept(tmp_path, monkeypatch):
    """The partial file of a download in progress (its process holds huggingface-hub's lock for that file)
    stays; so does an older release's `<etag>.incomplete`, which that release resumes."""
    import huggingface_hub.constants

    from finsent_local.convert.source import clear_stale_partial_downloads

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    blobs = tmp_path / REPO_CACHE / "blobs"
    blobs.mkdir(parents=True)
    etag = "a" * 64
    in_progress, stale, resumable = (blobs / f"{etag}.0123abcd.incomplete", blobs / f"{'b' * 40}.89abcdef.incomplete",
                                     blobs / f"{'c' * 64}.incomplete")
    for path in (in_progress, stale, resumable):
        path.write_bytes(b"x" * 1000)
    lock = tmp_path / "hub" / ".locks" / "models--oopere--Llama-FinSent-S" / f"{etag}.lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from filelock import FileLock; lock = FileLock(sys.argv[1]); "
                               "lock.acquire(); print('held', flush=True); sys.stdin.read()", str(lock)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert clear_stale_partial_downloads("oopere/Llama-FinSent-S") == [1000]
        assert in_progress.exists() and not stale.exists() and resumable.exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert clear_stale_partial_downloads("oopere/Llama-FinSent-S") == [1000]
    assert not in_progress.exists() and resumable.exists()
