"""`finsent excel`: make the functions available to xlwings, and an optional sample workbook.

xlwings looks up its settings in ~/.xlwings/xlwings.conf (lines of "KEY","VALUE") and imports the
modules named in "UDF MODULES" from its PYTHONPATH. This writes a tiny `finsent_udf.py` that re-exports
the functions from the installed package into a folder of its own, and merges the needed settings into
that file without touching the others.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

UDF_MODULE = "finsent_udf"
UDF_STUB = '''"""FinSent functions for xlwings (written by `finsent excel`; the code lives in the finsent-local package)."""
from excel.finsent_udf import FINSENT, FINSENT_PROBS, FINSENT_SCORE  # noqa: F401
'''


@dataclass(frozen=True)
class ExcelSetup:
    config_file: Path
    udf_folder: Path
    settings: dict[str, str]


def _interpreter() -> str:
    # Windows: pythonw.exe next to python.exe runs UDFs without a console window.
    exe = Path(sys.executable)
    pythonw = exe.with_name("pythonw.exe")
    return str(pythonw if pythonw.exists() else exe)


def read_conf(path: Path) -> list[tuple[str, str]]:
    entries = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = [p for p in line.split('"') if p.strip() not in ("", ",")]
            if len(parts) >= 2:
                entries.append((parts[0], parts[1]))
    return entries


def write_conf(path: Path, updates: dict[str, str]) -> None:
    entries = [(k, v) for k, v in read_conf(path) if k.upper() not in {u.upper() for u in updates}]
    entries += list(updates.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f'"{k}","{v}"\n' for k, v in entries), encoding="utf-8")


def install(url: str, api_key: str | None, home: Path | None = None) -> ExcelSetup:
    home = home or Path.home()
    folder = home / ".xlwings" / "finsent"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{UDF_MODULE}.py").write_text(UDF_STUB, encoding="utf-8")
    conf = home / ".xlwings" / "xlwings.conf"
    existing = dict((k.upper(), v) for k, v in read_conf(conf))
    modules = [m for m in existing.get("UDF MODULES", "").split(";") if m and m != UDF_MODULE] + [UDF_MODULE]
    paths = [p for p in existing.get("PYTHONPATH", "").split(";") if p and p != str(folder)] + [str(folder)]
    settings = {
        "INTERPRETER_WIN": _interpreter(),
        "UDF MODULES": ";".join(modules),
        "PYTHONPATH": ";".join(paths),
        "FINSENT_URL": url,
    }
    if api_key:
        settings["FINSENT_API_KEY"] = api_key
    write_conf(conf, settings)
    return ExcelSetup(conf, folder, settings)


SAMPLE_HEADLINES = [
    "Company profit soared 45% to a record, beating every analyst estimate.",
    "Shares plunged 30% after the firm disclosed an accounting fraud investigation.",
    "The board declared a regular quarterly dividend of $0.25 per share.",
    "Revenue rose slightly, in line with expectations.",
    "The bank cut 5,000 jobs as losses widened for the third straight quarter.",
    "Operating margin improved modestly thanks to lower input costs.",
    "The retailer warned that full-year earnings would fall well short of guidance.",
    "The airline raised its full-year outlook after record summer demand.",
]


def write_sample_workbook(path: Path, url: str) -> None:
    """Headlines in column A; =FINSENT, =FINSENT_SCORE (xlwings) and the no-add-in WEBSERVICE formula."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "Headlines"
    headers = ["Headline", 'FINSENT(A,"7")', "FINSENT_SCORE(A)", "WEBSERVICE (no add-in)"]
    sheet.append(headers)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row, text in enumerate(SAMPLE_HEADLINES, start=2):
        sheet.cell(row, 1, text)
        sheet.cell(row, 2, f'=FINSENT(A{row},"7")')
        sheet.cell(row, 3, f"=FINSENT_SCORE(A{row})")
        # openpyxl writes newer functions only with their _xlfn. prefix.
        sheet.cell(row, 4, f'=_xlfn.WEBSERVICE("{url}/v1/label?scheme=7&text="&_xlfn.ENCODEURL(A{row}))')
    for column, width in zip("ABCD", (80, 22, 18, 24)):
        sheet.column_dimensions[column].width = width
    book.save(path)
