"""Shared fixtures: tiny checkpoints, converted GGUF files, the trained sentiment model."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import fixture_models
from finsent_local.convert.pipeline import ConvertRequest, convert

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the real hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests never write the user's real cache folder (result cache, CPU buffer verdicts, model fingerprints):
# whatever a test does not point elsewhere goes to a folder of this test session.
_CACHE_DIR = Path(tempfile.mkdtemp(prefix="finsent-test-cache-"))
atexit.register(shutil.rmtree, _CACHE_DIR, True)
os.environ["FINSENT_CACHE_DIR"] = str(_CACHE_DIR)


# GGUF files are made fresh in every test session (seconds each), so they always come from the
# converter as it is now; only the slow-to-build checkpoints are cached across runs.
_GGUF_DIR = Path(tempfile.mkdtemp(prefix="finsent-test-gguf-"))
atexit.register(shutil.rmtree, _GGUF_DIR, True)


def convert_cached(checkpoint: Path, outtype: str, verify: bool = False, pad_ffn: bool | None = None) -> Path:
    """Convert once per test session."""
    folder = _GGUF_DIR
    suffix = "" if pad_ffn is None else ("-pad" if pad_ffn else "-nopad")
    out = folder / f"{checkpoint.name}-{outtype}{suffix}.gguf"
    if not out.exists():
        convert(ConvertRequest(source=str(checkpoint), outtypes=[outtype], outfile=str(out), verify=verify,
                               pad_ffn=pad_ffn, quiet=True))
    return out


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    return fixture_models.llama3_tokenizer_dir()


@pytest.fixture(scope="session", params=fixture_models.TINY_VARIANTS, ids=lambda v: v.name)
def tiny_variant(request):
    return request.param


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_variant) -> Path:
    return fixture_models.tiny_checkpoint(tiny_variant)


@pytest.fixture(scope="session")
def tied_f16_checkpoint() -> Path:
    return fixture_models.tiny_checkpoint(fixture_models.TINY_VARIANTS[0])


@pytest.fixture(scope="session")
def trained_checkpoint() -> Path:
    return fixture_models.trained_checkpoint()


@pytest.fixture(scope="session")
def trained_gguf(trained_checkpoint) -> dict[str, Path]:
    """The trained model as F16, Q8_0 and Q4_K_M files (padded, verified)."""
    return {t: convert_cached(trained_checkpoint, t, verify=True) for t in ("f16", "q8_0", "q4_k_m")}


def run_finsent(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300):
    """The real `finsent` command in a subprocess: (exit code, stdout, stderr)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "finsent_local.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


# -- the server -----------------------------------------------------------------------------------
from running_server import RunningServer  # noqa: E402


@pytest.fixture(scope="session")
def server(trained_gguf, tmp_path_factory):
    """The real server on the trained model (F16), with its own result cache."""
    running = RunningServer("--model", str(trained_gguf["f16"]),
                            env={"FINSENT_CACHE_DIR": str(tmp_path_factory.mktemp("server-cache"))})
    yield running
    running.stop()


@pytest.fixture(scope="session")
def loaded_runtime(trained_gguf, tmp_path_factory):
    """An in-process Runtime on the trained model, for driving the app through Flask's test client."""
    from finsent_local.server.runtime import Runtime

    runtime = Runtime(model_path=trained_gguf["f16"], cache_path=tmp_path_factory.mktemp("cache") / "results.sqlite3")
    runtime.load()
    yield runtime
    runtime.close()


@pytest.fixture
def client(loaded_runtime):
    from finsent_local.server import create_app

    return create_app(loaded_runtime).test_client()


@pytest.fixture(scope="session")
def held_out():
    from sentiment_data import held_out_examples

    return held_out_examples(per_label=4)
