"""The client-only install (what a Windows PC without a compiler gets): a fresh virtual environment with
`pip install '.[excel]'` and no engine. llama_cpp is not there; the Excel functions, `finsent excel
freeze` and FinSent.connect work against a real server started from the full install; the commands
that need the engine say so in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE_MISSING = "Error: the local engine is not installed: pip install 'finsent-local[engine]'"


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    """A fresh venv with the project installed from a copy of its files (a build in the checkout would
    leave build/ behind), without extras but xlwings."""
    folder = tmp_path_factory.mktemp("client")
    source = folder / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info",
                                                                 ".pytest_cache", "build", "bench", "docs"))
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              f"{source}[excel]"], capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    return venv


def _run(venv: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, cwd=venv.parent)


def test_no_engine_and_the_commands_say_so(client_venv):
    assert "No module named 'llama_cpp'" in _run(client_venv, "python", "-c", "import llama_cpp").stderr
    for args in (["serve"], ["classify", "Profit rose"], ["convert", "x"]):
        proc = _run(client_venv, "finsent", *args)
        assert proc.returncode == 1 and proc.stderr.strip().startswith(ENGINE_MISSING), (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1


def test_excel_functions_and_the_api_work_against_the_full_server(client_venv, server):
    code = """
import json, sys
from finsent_local.excel.finsent_udf import FINSENT, FINSENT_SCORE
from finsent_local import FinSent, FinSentError
label = FINSENT(sys.argv[1], "3")
score = FINSENT_SCORE([[sys.argv[1]], [""]], "3")
heavy = [m for m in ("llama_cpp", "torch", "pyarrow") if m in sys.modules]
with FinSent.connect(sys.argv[2], scheme="3") as fs:
    connected = fs.label(sys.argv[1])
try:
    FinSent()
except FinSentError as e:
    local = str(e)
print(json.dumps({"label": label, "score": score, "heavy": heavy, "connected": connected, "local": local}))
"""
    text = "Globex files for bankruptcy protection"
    proc = _run(client_venv, "python", "-c", code, text, server.url, env={"FINSENT_URL": server.url})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["label"] == out["connected"] == "negative" and out["score"][1] == [""] and out["score"][0][0] < 0
    assert out["heavy"] == []  # the Excel functions import neither the engine, torch nor pyarrow
    assert out["local"].startswith("the local engine is not installed") and "FinSent.connect(url)" in out["local"]


def test_excel_freeze_in_the_client_install(client_venv, server, tmp_path):
    from openpyxl import Workbook, load_workbook

    book = Workbook()
    book.active["A1"], book.active["B1"] = "Initech raises full-year guidance", '=FINSENT(A1,"3")'
    book.save(tmp_path / "book.xlsx")
    proc = _run(client_venv, "finsent", "excel", "freeze", str(tmp_path / "book.xlsx"), "--url", server.url)
    assert proc.returncode == 0, proc.stderr
    assert load_workbook(tmp_path / "book.xlsx").active["B1"].value == "positive"
    proc = _run(client_venv, "finsent", "excel", "freeze", str(tmp_path / "book.before-freeze.xlsx"), "--model", "m.gguf")
    assert proc.returncode == 1 and proc.stderr.strip().startswith(ENGINE_MISSING)


def test_certs_export_writes_the_certificate_only(tmp_path):
    from conftest import run_finsent

    target = tmp_path / "ca.pem"
    code, stdout, stderr = run_finsent("certs", "--export", str(target), env={"FINSENT_TLS_DIR": str(tmp_path / "tls")})
    assert code == 0, stderr
    pem = target.read_text()
    assert pem.startswith("-----BEGIN CERTIFICATE-----") and pem.count("BEGIN") == 1 and "PRIVATE KEY" not in pem
    assert f'certutil -user -addstore Root "{target}"' in stdout
    server_certificate = tmp_path / "tls" / "localhost.pem"
    before = server_certificate.read_bytes()
    code, _, stderr = run_finsent("certs", "--export", str(server_certificate), "--force",
                                  env={"FINSENT_TLS_DIR": str(tmp_path / "tls")})
    assert code == 1 and f"--export {server_certificate} lies inside the input {tmp_path / 'tls'}" in stderr
    assert server_certificate.read_bytes() == before  # the certificates' own folder is never written by --export


def test_a_wsl_path_is_named_as_windows_names_it():
    from finsent_local.server.tls import windows_path

    assert windows_path(Path("/mnt/c/Users/ann/finsent-local-ca.pem")) == "C:\\Users\\ann\\finsent-local-ca.pem"
    assert windows_path(Path("/home/ann/ca.pem")) == "/home/ann/ca.pem"
