"""Shared fixtures: tiny checkpoints, converted GGUF files, the trained sentiment model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fixture_models
from convert.pipeline import ConvertRequest, convert

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the real hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def convert_cached(checkpoint: Path, outtype: str, verify: bool = False, pad_ffn: bool | None = None) -> Path:
    """Convert once per fixture version; later runs reuse the file."""
    folder = fixture_models.FIXTURE_ROOT / f"v{fixture_models.FIXTURE_VERSION}" / "gguf"
    folder.mkdir(parents=True, exist_ok=True)
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
