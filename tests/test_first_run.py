"""The default model's first run: several processes that start without a model (Ray actors on one
node, two terminals) download and convert it once, not each over the others.

FAKE HUB: the hub cannot be reached here, so its local cache is laid out by hand (the layout
huggingface-hub itself writes, as in test_convert_cli.py) and the real download and conversion code
runs offline against it, on a tiny checkpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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
