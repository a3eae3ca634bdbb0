"""xlwings' Windows-only UDF machinery loaded here with STAND-INS for the COM modules (Excel cannot exist
here), so xlwings' own decorators and VBA generator run on the project's functions; and the server's
count of /v1/classify (and /v1/explain) requests, to see how the functions batch; and the `sheet_env` fixture (the
functions pointed at the test server, with an empty cell cache)."""

from __future__ import annotations

import importlib
import sys
import types
import urllib.request

import pytest


@pytest.fixture
def sheet_env(server, monkeypatch):
    """The Excel functions pointed at the session's server, without a key, their result cache empty."""
    from finsent_local.excel import cells

    monkeypatch.setenv("FINSENT_URL", server.url)
    monkeypatch.delenv("FINSENT_API_KEY", raising=False)
    cells.results_cache.clear()
    return server


def xlwings_udfs_with_com_stand_ins(monkeypatch):
    """(xlwings.udfs, finsent_udf reloaded with xlwings' real func/arg/ret/sub decorators). The caller
    reloads finsent_udf again after monkeypatch.undo(), for the other tests' plain functions."""
    import xlwings

    for name in ("pythoncom", "pywintypes", "win32com", "win32com.client"):
        stand_in = types.ModuleType(name)
        stand_in.Dispatch = lambda *a, **k: None
        stand_in.CoInitialize = lambda: None
        stand_in.com_error = Exception
        stand_in.client = stand_in
        monkeypatch.setitem(sys.modules, name, stand_in)
    udfs = importlib.import_module("xlwings.udfs")
    for name, real in (("func", udfs.xlfunc), ("arg", udfs.xlarg), ("ret", udfs.xlret), ("sub", udfs.xlsub)):
        monkeypatch.setattr(xlwings, name, real)
    return udfs, importlib.reload(importlib.import_module("finsent_local.excel.finsent_udf"))


def requests_to(url: str, route: str) -> int:
    """POST requests to `route` the server has answered so far (its /metrics)."""
    metrics = urllib.request.urlopen(url + "/metrics").read().decode()
    return sum(int(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith(f'finsent_requests_total{{method="POST",route="{route}"'))


def classify_requests(url: str) -> int:
    """POST /v1/classify requests the server has answered so far (its /metrics)."""
    return requests_to(url, "/v1/classify")
