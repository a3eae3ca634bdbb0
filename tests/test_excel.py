"""The Excel functions against the real server (Excel itself cannot run here: the functions are called
as the plain Python functions xlwings wraps), the VBA wrapper xlwings generates, `finsent excel`, and the
no-add-in WEBSERVICE path in a real spreadsheet engine (headless LibreOffice Calc)."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
import types
import urllib.request
from pathlib import Path

import pytest

from conftest import run_finsent
from running_server import RunningServer
from xlwings_stand_ins import classify_requests, sheet_env, xlwings_udfs_with_com_stand_ins  # noqa: F401 (a fixture)
from finsent_local.excel import cells
from finsent_local.excel.finsent_udf import FINSENT, FINSENT_DOC, FINSENT_DOC_SCORE, FINSENT_PROBS, FINSENT_SCORE

LABELS_7 = {"strong negative", "moderately negative", "mildly negative", "neutral", "mildly positive",
            "moderately positive", "strong positive"}


def test_single_cell(sheet_env):
    assert FINSENT("Vandelay shares soar 40% after record profit") == "strong positive"
    assert FINSENT("Vandelay shares soar 40% after record profit", "3") == "positive"
    assert FINSENT("Globex files for bankruptcy protection", 3.0) == "negative"  # Excel passes numbers as floats
    score = FINSENT_SCORE("Globex files for bankruptcy protection")
    assert isinstance(score, float) and -1 <= score < -0.5


def test_documents_are_summed_up_from_their_sentences(sheet_env):
    """=FINSENT_DOC: each cell one document (POST /v1/documents), its label the one nearest the mean
    sentence score, as the API gives it."""
    from finsent_local.client import FinSentClient

    release = ("Initech raises full-year guidance. Vandelay shares soar 40% after record profit. "
               "Hooli schedules its annual general meeting.")
    expected = FinSentClient(sheet_env.url).document(release, "7")["document"]
    assert FINSENT_DOC(release) == expected["label"]
    assert FINSENT_DOC_SCORE(release) == pytest.approx(expected["score"])
    assert FINSENT_DOC([[release], [None], [3]], "3") == [[FinSentClient(sheet_env.url).document(release, "3")
                                                           ["document"]["label"]], [""], ["#FINSENT! not text (a number)"]]
    assert FINSENT_DOC(release, "9").startswith("#FINSENT! scheme must be")


def test_column_range_keeps_its_shape_in_one_request(sheet_env):
    column = [["Globex files for bankruptcy protection"], [None], ["Hooli schedules its annual general meeting"],
              ["Initech raises full-year guidance"]]
    before = classify_requests(sheet_env.url)
    result = FINSENT(column, "3")
    assert result == [["negative"], [""], ["neutral"], ["positive"]]
    assert classify_requests(sheet_env.url) == before + 1


def test_two_dimensional_range(sheet_env):
    grid = [["Globex files for bankruptcy protection", "Hooli schedules its annual general meeting"],
            ["Initech raises full-year guidance", ""]]
    result = FINSENT(grid, "3")
    assert result == [["negative", "neutral"], ["positive", ""]]
    scores = FINSENT_SCORE(grid)
    assert len(scores) == 2 and len(scores[0]) == 2 and scores[1][1] == ""
    assert scores[0][0] < 0 < scores[1][0]


def test_recalculation_is_stable_and_free(sheet_env):
    texts = [["Acme Corp misses earnings estimates as costs rise"], ["Wonka Brands reports a solid quarterly profit"]]
    first = FINSENT(texts, "7")
    before = classify_requests(sheet_env.url)
    for _ in range(3):
        assert FINSENT(texts, "7") == first
    assert classify_requests(sheet_env.url) == before  # served from the in-process cache
    assert all(row[0] in LABELS_7 for row in first)


def test_blanks_numbers_dates_and_errors(sheet_env):
    import datetime as dt

    assert FINSENT(None) == ""
    assert FINSENT("   ") == ""
    assert FINSENT(42.0) == "#FINSENT! not text (a number)"
    assert FINSENT(True) == "#FINSENT! not text (TRUE/FALSE)"
    assert FINSENT(dt.datetime(2026, 1, 2)) == "#FINSENT! not text (a date)"
    assert FINSENT("#N/A") == "#FINSENT! the cell holds an error (#N/A)"
    assert FINSENT("x" * 40_000) == "#FINSENT! text too long"
    assert FINSENT([[1.5], ["Initech raises full-year guidance"]], "3") == [["#FINSENT! not text (a number)"], ["positive"]]


def test_bad_scheme(sheet_env):
    assert FINSENT("Profit up", "5") == '#FINSENT! scheme must be "3" or "7"'
    assert FINSENT([["a"], ["b"]], "x") == '#FINSENT! scheme must be "3" or "7"'


def test_probabilities_row(sheet_env):
    result = FINSENT_PROBS("Globex files for bankruptcy protection", "3")
    assert result[0] == ["negative", "neutral", "positive"]
    assert len(result) == 2 and abs(sum(result[1]) - 1) < 1e-3 and result[1][0] > 0.5
    seven = FINSENT_PROBS([["Hooli raises full-year guidance"], [None]], "7")
    assert len(seven[0]) == 7 and seven[2] == [""] * 7


def test_server_not_running(monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("FINSENT_URL", url)
    cells.results_cache.clear()
    assert FINSENT("Profit up") == f"#FINSENT! server not running at {url} - start it with: finsent serve"


def test_server_error_message_reaches_the_cell(trained_gguf, tmp_path, monkeypatch):
    running = RunningServer("--model", str(trained_gguf["q8_0"]), "--api-key", "k2",
                            env={"FINSENT_CACHE_DIR": str(tmp_path)})
    try:
        monkeypatch.setenv("FINSENT_URL", running.url)
        monkeypatch.delenv("FINSENT_API_KEY", raising=False)
        cells.results_cache.clear()
        assert FINSENT("Profit up") == "#FINSENT! missing or invalid API key (send Authorization: Bearer <key>)"
        monkeypatch.setenv("FINSENT_API_KEY", "k2")
        assert FINSENT("Initech raises full-year guidance", "3") == "positive"
    finally:
        running.stop()


def test_settings_come_from_xlwings_conf(tmp_path, monkeypatch):
    import xlwings

    conf = tmp_path / "xlwings.conf"
    conf.write_text('"FINSENT_URL","http://127.0.0.1:9999"\n"FINSENT_API_KEY","abc"\n')
    monkeypatch.setattr(xlwings, "USER_CONFIG_FILE", str(conf))
    monkeypatch.delenv("FINSENT_URL", raising=False)
    monkeypatch.delenv("FINSENT_API_KEY", raising=False)
    assert cells.settings() == ("http://127.0.0.1:9999", "abc")


def test_vba_wrapper_from_xlwings(monkeypatch):
    """STAND-INS for the Windows-only COM modules (Excel cannot exist here), so xlwings' own VBA
    generator runs on our functions."""
    udfs, module = xlwings_udfs_with_com_stand_ins(monkeypatch)
    try:
        from io import StringIO

        out = StringIO()
        udfs.generate_vba_wrapper("finsent_udf", module, out, types.SimpleNamespace(Name="Book1.xlsm"))
        vba = out.getvalue()
    finally:
        monkeypatch.undo()
        importlib.reload(module)  # back to the plain functions for the other tests
    assert re.search(r"^Function FINSENT\(text, Optional scheme\)", vba, re.M), vba
    assert re.search(r"^Function FINSENT_SCORE\(text, Optional scheme\)", vba, re.M)
    assert re.search(r"^Function FINSENT_PROBS\(text, Optional scheme\)", vba, re.M)
    assert re.search(r"^Function FINSENT_DOC\(text, Optional scheme\)", vba, re.M)
    assert re.search(r"^Function FINSENT_DOC_SCORE\(text, Optional scheme\)", vba, re.M)
    assert re.search(r"^Function FINSENT_WHY\(text, Optional scheme\)", vba, re.M)  # FINSENT.WHY in the add-in
    assert 'py.CallUDF("finsent_udf", "FINSENT", Array(text, scheme)' in vba.replace("XLPy", "py") or \
        '"finsent_udf", "FINSENT", Array(text, scheme)' in vba
    assert "Application.Volatile" not in vba  # results must not change on every recalculation
    assert re.search(r"^Sub FINSENT_FREEZE_SELECTION\(\)", vba, re.M), vba  # the freeze macro, for a button


def test_finsent_excel_setup(tmp_path):
    home = tmp_path / "home"
    conf = home / ".xlwings" / "xlwings.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text('"UDF MODULES","my_funcs"\n"SHOW CONSOLE","False"\n')
    sample = tmp_path / "headlines.xlsx"
    code, stdout, stderr = run_finsent("excel", "--url", "http://127.0.0.1:8001", "--sample", str(sample),
                                       env={"HOME": str(home), "USERPROFILE": str(home), "FINSENT_API_KEY": ""})
    assert code == 0, stderr
    text = conf.read_text()
    assert '"UDF MODULES","my_funcs;finsent_udf"' in text
    assert '"SHOW CONSOLE","False"' in text
    assert '"FINSENT_URL","http://127.0.0.1:8001"' in text
    assert "Import Functions" in stdout
    stub = home / ".xlwings" / "finsent" / "finsent_udf.py"
    namespace: dict = {}
    exec(compile(stub.read_text(), str(stub), "exec"), namespace)  # the stub imports the real functions
    assert namespace["FINSENT"] is sys.modules["finsent_local.excel.finsent_udf"].FINSENT
    assert namespace["FINSENT_WHY"] is sys.modules["finsent_local.excel.finsent_udf"].FINSENT_WHY  # for Import Functions
    from openpyxl import load_workbook

    sheet = load_workbook(sample).active
    assert sheet["B2"].value == '=FINSENT(A2,"7")'
    assert sheet["D2"].value == \
        '=IF(A2="","",_xlfn.WEBSERVICE("http://127.0.0.1:8001/v1/label?scheme=7&text="&_xlfn.ENCODEURL(A2)))'


def test_finsent_excel_keeps_every_line_and_says_what_it_did(tmp_path):
    home = tmp_path / "home"
    conf = home / ".xlwings" / "xlwings.conf"
    conf.parent.mkdir(parents=True)
    before = ('"INTERPRETER_WIN","C:\\Python\\pythonw.exe"\n"CONDA PATH",""\n"CONDA ENV",""\n'
              '"ONEDRIVE_WIN", "C:\\OneDrive"\nsome line xlwings ignores\n"FINSENT_URL","http://old:1"\n')
    conf.write_text(before)
    env = {"HOME": str(home), "USERPROFILE": str(home), "FINSENT_API_KEY": ""}
    code, stdout, stderr = run_finsent("excel", "--url", "http://127.0.0.1:9", env=env)  # nothing listens there
    assert code == 0, stderr
    lines = conf.read_text().splitlines()
    for kept in ('"INTERPRETER_WIN","C:\\Python\\pythonw.exe"', '"CONDA PATH",""', '"CONDA ENV",""',
                 '"ONEDRIVE_WIN", "C:\\OneDrive"', "some line xlwings ignores"):
        assert kept in lines, (kept, lines)
    assert '"FINSENT_URL","http://127.0.0.1:9"' in lines and '"FINSENT_URL","http://old:1"' not in lines
    assert (conf.parent / "xlwings.conf.bak").read_text() == before  # the previous file, kept
    assert not [p for p in conf.parent.iterdir() if p.name.endswith(".partial")]  # written atomically
    # On Linux no interpreter is guessed; replaced values and an absent server are reported.
    assert "no interpreter written" in stdout
    assert "replaced FINSENT_URL (was http://old:1)" in stdout
    assert "server not running at http://127.0.0.1:9" in stdout
    # A second run changes nothing more and duplicates nothing.
    run_finsent("excel", "--url", "http://127.0.0.1:9", env=env)
    assert conf.read_text().splitlines() == lines


def test_finsent_excel_interpreter_key_by_platform(tmp_path):
    from finsent_local.excel.configure import install

    windows = install("http://127.0.0.1:8000", None, home=tmp_path / "w", platform="win32")
    assert "INTERPRETER_WIN" in windows.settings and not windows.notes
    mac = install("http://127.0.0.1:8000", None, home=tmp_path / "m", platform="darwin")
    assert "INTERPRETER_MAC" in mac.settings and "INTERPRETER_WIN" not in mac.settings
    linux = install("http://127.0.0.1:8000", None, home=tmp_path / "l", platform="linux")
    assert not any(key.startswith("INTERPRETER") for key in linux.settings)


def test_finsent_excel_refuses_to_overwrite_a_workbook(tmp_path):
    home = tmp_path / "home"
    sample = tmp_path / "book.xlsx"
    sample.write_bytes(b"my work")
    env = {"HOME": str(home), "USERPROFILE": str(home), "FINSENT_API_KEY": ""}
    code, _, stderr = run_finsent("excel", "--sample", str(sample), env=env)
    assert code == 1 and stderr.strip() == f"Error: {sample} exists; use --force to replace it"
    assert sample.read_bytes() == b"my work"
    assert not (home / ".xlwings" / "xlwings.conf").exists()  # refused before writing anything
    code, _, stderr = run_finsent("excel", "--sample", str(sample), "--force", env=env)  # not a workbook: kept
    assert code == 1 and stderr.strip() == (f"Error: {sample} exists and is not an Excel workbook, so --force will not "
                                            "replace it; choose another --sample")
    assert sample.read_bytes() == b"my work"
    import openpyxl

    openpyxl.Workbook().save(sample)  # an earlier sample workbook: --force replaces it
    code, _, stderr = run_finsent("excel", "--sample", str(sample), "--force", env=env)
    assert code == 0, stderr
    assert openpyxl.load_workbook(sample).active["A1"].value is not None  # the sample's own header now


SYSTEM_PYTHON = "/usr/bin/python3"


def _libreoffice_ready() -> str | None:
    if shutil.which("soffice") is None:
        return "LibreOffice (soffice) is not installed; .ci/run installs it with apt-get"
    if subprocess.run([SYSTEM_PYTHON, "-c", "import uno"], capture_output=True).returncode != 0:
        return "Debian's python3-uno is not installed"
    return None


@pytest.mark.skipif(_libreoffice_ready() is not None, reason=str(_libreoffice_ready()))
def test_webservice_formulas_in_libreoffice_calc(server, held_out):
    labelled = [t for t, _ in held_out[:: max(1, len(held_out) // 8)]][:8]
    expected = json.loads(urllib.request.urlopen(urllib.request.Request(
        server.url + "/v1/classify", data=json.dumps({"texts": labelled}).encode(),
        headers={"Content-Type": "application/json"})).read())["results"]
    texts = labelled + [""]  # and a blank cell
    log_start = len(server.lines)
    driver = Path(__file__).with_name("libreoffice_calc.py")
    proc = subprocess.run([SYSTEM_PYTHON, str(driver), server.url, "7", *texts], capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr
    cells = json.loads(proc.stdout.strip().splitlines()[-1])
    labels = [r["label"] for r in expected]
    # What the README says about LibreOffice, as it really behaves: an empty answer is an error there
    # (#VALUE!) unless the formula is wrapped in IF(A2="";"";...), and a saved workbook opened again
    # shows Err:540 in every WEBSERVICE cell until external links are allowed.
    assert cells["plain"] == labels + ["#VALUE!"]
    assert cells["guarded"] == labels + [""]
    assert cells["reopened"] == ["Err:540"] * len(labelled) + ["#VALUE!"]
    # Calc fetches each URL more than once; every fetch was answered from the result cache.
    # (The blank cell's fetches classify nothing, so their log lines carry no cache figure.)
    fetches = [line for line in server.lines[log_start:] if "/v1/label" in line and ("GET" in line or "HEAD" in line)
               and "cache_hits=" in line]
    assert len(fetches) >= 2 * len(labelled)
    assert all("cache_hits=1" in line for line in fetches), fetches
