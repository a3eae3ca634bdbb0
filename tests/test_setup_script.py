"""setup.sh's choice of where PyTorch comes from for `bash setup.sh --tune`, read from the script itself
(FINSENT_SETUP_FUNCTIONS_ONLY=1 defines its functions and runs nothing): the CPU build on a Linux x86_64
machine without an NVIDIA GPU, PyPI's default where nvidia-smi is found, and TORCH_INDEX_URL over both."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parent.parent / "setup.sh"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.machine() != "x86_64",
                                reason="the CPU index is chosen on Linux x86_64 only")


def _torch_index(path: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "TORCH_INDEX_URL"}
    result = subprocess.run(["bash", "-c", f'source "{SETUP}"; torch_index_url'], capture_output=True, text=True,
                            env={**clean, "PATH": path, "FINSENT_SETUP_FUNCTIONS_ONLY": "1", **env}, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_cpu_build_without_an_nvidia_gpu(tmp_path):
    assert _torch_index(f"{tmp_path}:/usr/bin:/bin") == CPU_INDEX


def test_pypi_default_where_nvidia_smi_is_found(tmp_path):
    fake = tmp_path / "nvidia-smi"  # a stand-in: only its presence on PATH is looked at
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert _torch_index(f"{tmp_path}:/usr/bin:/bin") == ""


def test_torch_index_url_decides_when_set(tmp_path):
    assert _torch_index(f"{tmp_path}:/usr/bin:/bin", TORCH_INDEX_URL="https://mirror.example/torch") == \
        "https://mirror.example/torch"
    assert _torch_index(f"{tmp_path}:/usr/bin:/bin", TORCH_INDEX_URL="") == ""  # empty: PyPI's default


def test_sourcing_for_the_functions_runs_nothing(tmp_path):
    """No .venv made, no pip run: the set-up itself stays for `bash setup.sh`."""
    result = subprocess.run(["bash", "-c", f'cd "{tmp_path}" && source "{SETUP}" && echo sourced'],
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "FINSENT_SETUP_FUNCTIONS_ONLY": "1"})
    assert result.stdout.strip() == "sourced" and list(tmp_path.iterdir()) == []
