"""Every benchmark under bench/ runs in its smoke mode (bench/smoke_mode.py: its own code path on the tests'
trained fixture, a few texts, one round) and prints its result line, so a module that
moved or a function that changed fails here rather than in the next measurement. bench/cuda_check.sh
needs a GPU: its Python parts are checked for imports (--check-imports), and every `from finsent_local...
import ...` written anywhere in bench/ (in code, or in the strings scripts hand to child processes) must
resolve."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

# script: (a line its output must contain, extra environment)
MODEL_BENCHES = {
    "convert_bench.py": ("targets: time <= 60 s: ", {}),
    "verify_memory.py": ("target: verified conversion under 3 GB: ", {}),
    "engine_bench.py": ("targets: >= 4x naive: ", {}),
    "extra_bufts.py": ("extra buffer types off: one text ", {}),
    "single_text.py": ("engine   median ", {}),
    "explain_bench.py": ("target: explain <= 1.2x floor+rows: ", {}),
    "gpu_bench.py": ("labels equal on CPU and GPU: ", {"FINSENT_BENCH_GPU": "dry"}),
    "server_peer.py": ("finsent serve (every label's probability) ", {}),
    "file_bench.py": ("Ray overhead (wall over the single process): 1 actor(s) x 1 thread(s) +", {}),
    "benchmark_eval.py": ("benchmark eval: FPB test 40 rows of 160: ", {}),
}
TRAINED_MODEL_BENCHES = {  # these read tests/fixture_models.py themselves
    "api_stream_memory.py": ("| 1,000 | list | ", {}),
    "document_memory.py": ("| 10k | ", {}),
    "quant_eval.py": ("held-out: Q4_K_M agrees with F16 on ", {}),
    "reliability_bench.py": ("PASS", {}),
    "tune_forgetting.py": ("| smoke: reference, 1 epoch | ", {}),  # a short `finsent tune` run (about 40 s)
}
MODEL_FREE_BENCHES = {
    "segmentation_bench.py": ("| finsent (pysbd + line and item rules) | ", {}),
    "tune_bench.py": ("| finsent tune's training step | ", {}),  # a model of the tiny fixtures' shape
}
HELPERS = {"smoke_mode.py", "same_shape.py", "hard_headlines.py"}  # modules the scripts import, not scripts


@pytest.fixture(scope="module")
def bench_work(tmp_path_factory) -> dict[str, str]:
    """One work folder for the module (the smoke model's Q4_K_M file is converted once, by the first
    script that needs it) instead of bench/.work, and temporary files under the test's own folder."""
    return {"FINSENT_BENCH_WORK": str(tmp_path_factory.mktemp("bench-work")),
            "TMPDIR": str(tmp_path_factory.mktemp("bench-tmp"))}


def _run_smoke(script: str, expected: str, env: dict, bench_work: dict) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / script), "--smoke"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **bench_work, **env}, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{script} --smoke exited {proc.returncode}:\n{output[-4000:]}"
    assert expected in proc.stdout, f"{script} --smoke did not print {expected!r}:\n{output[-4000:]}"
    return proc.stdout


@pytest.mark.parametrize("script", list(MODEL_FREE_BENCHES))
def test_bench_without_a_model_runs_in_smoke_mode(script, bench_work):
    _run_smoke(script, *MODEL_FREE_BENCHES[script], bench_work)


# The Llama-FinSent-S-shaped random checkpoint is the trained fixture in a smoke run (bench/same_shape.py),
# found by the scripts in the cache where trained_checkpoint built it.
@pytest.mark.parametrize("script", list(MODEL_BENCHES) + list(TRAINED_MODEL_BENCHES))
def test_bench_on_the_trained_fixture_runs_in_smoke_mode(script, trained_checkpoint, bench_work):
    _run_smoke(script, *{**MODEL_BENCHES, **TRAINED_MODEL_BENCHES}[script], bench_work)


def test_every_bench_script_has_a_smoke_test():
    scripts = {p.name for p in BENCH.glob("*.py")} - HELPERS
    assert scripts == set(MODEL_FREE_BENCHES) | set(MODEL_BENCHES) | set(TRAINED_MODEL_BENCHES)
    assert {p.name for p in BENCH.glob("*.sh")} == {"cuda_check.sh"}
    sys.path.insert(0, str(BENCH))
    try:
        from hard_headlines import HARD_EVENTS_7, hard_examples
    finally:
        sys.path.remove(str(BENCH))
    assert len(hard_examples()) == 6 * sum(len(events) for events in HARD_EVENTS_7.values())


def test_cuda_check_imports_without_a_gpu():
    proc = subprocess.run(["bash", str(BENCH / "cuda_check.sh"), "--check-imports"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHON": sys.executable}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cuda_check imports: OK" in proc.stdout


IMPORT = re.compile(r"from\s+(finsent_local(?:\.\w+)*)\s+import\s+([\w\s,]+?)\s*(?:#|$|;|\))", re.MULTILINE)


def test_every_project_import_written_in_bench_resolves():
    """Also the imports in the code scripts run in child processes (python -c "..."), which a smoke run
    does not always reach (convert_bench.py's stock-pipeline quantizer, cuda_check.sh's GPU check)."""
    found = []
    for path in sorted(BENCH.glob("*.py")) + sorted(BENCH.glob("*.sh")):
        for module, names in IMPORT.findall(path.read_text()):
            for name in (n.split(" as ")[0].strip() for n in names.split(",")):
                found.append((path.name, module, name))
    assert {f for f, _, _ in found} >= {"convert_bench.py", "verify_memory.py", "cuda_check.sh", "gpu_bench.py"}
    missing = []
    for file, module, name in found:
        try:
            imported = importlib.import_module(module)
        except ImportError as e:
            missing.append(f"{file}: {module} ({e})")
            continue
        if name and not hasattr(imported, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{file}: {module}.{name}")
    assert not missing, missing
