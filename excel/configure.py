"""`finsent excel`: make the functions available to xlwings, and an optional sample workbook.

xlwings looks up its settings in ~/.xlwings/xlwings.conf (lines of "KEY","VALUE") and imports the
modules named in "UDF MODULES" from its PYTHONPATH. This writes a tiny `finsent_udf.py` that re-exports
the functions from the installed package into a folder of its own, and merges the needed settings into
that file without touching anything else in it (written atomically; the previous file is kept as
xlwings.conf.bak).
"""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from finsent_local.files import write_text_atomically
from finsent_local.output_place import FileOutput, OutputRefused, check_file_output

UDF_MODULE = "finsent_udf"
UDF_STUB = '''"""FinSent functions for xlwings (written by `finsent excel`; the code lives in the finsent-local package)."""
from finsent_local.excel.finsent_udf import (  # noqa: F401
    FINSENT, FINSENT_DOC, FINSENT_DOC_SCORE, FINSENT_PROBS, FINSENT_SCORE, FINSENT_WHY)
'''


@dataclass(frozen=True)
class ExcelSetup:
    config_file: Path
    udf_folder: Path
    settings: dict[str, str]
    backup: Path | None  # the previous xlwings.conf, kept beside it
    notes: list[str]  # what the user should know: values replaced, things not written


# xlwings reads the interpreter from the key of the system Excel runs on.
INTERPRETER_KEYS = {"win32": "INTERPRETER_WIN", "darwin": "INTERPRETER_MAC"}


def _interpreter() -> str:
    # Windows: pythonw.exe next to python.exe runs UDFs without a console window.
    exe = Path(sys.executable)
    pythonw = exe.with_name("pythonw.exe")
    return str(pythonw if pythonw.exists() else exe)


_QUOTED = re.compile(r'"([^"]*)"')


def conf_key(line: str) -> str | None:
    """The key of an xlwings.conf line ("KEY","VALUE"), as xlwings reads it (its first quoted
    string), upper-cased; None for a line xlwings ignores."""
    values = _QUOTED.findall(line)
    return values[0].upper() if len(values) >= 2 else None


def read_conf(path: Path) -> dict[str, str]:
    """KEY -> value for every setting line (values may be empty)."""
    entries = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            key = conf_key(line)
            if key is not None:
                entries[key] = _QUOTED.findall(line)[1]
    return entries


def merge_conf(text: str, updates: dict[str, str]) -> str:
    """The file with `updates` applied: a line whose key is updated is rewritten in place, every other
    line (comments, empty values, unknown keys) is kept exactly; new keys are added at the end."""
    wanted = {k.upper(): (k, v) for k, v in updates.items()}
    lines, done = [], set()
    for line in text.splitlines():
        key = conf_key(line)
        if key in wanted and key not in done:
            name, value = wanted[key]
            lines.append(f'"{name}","{value}"')
            done.add(key)
        elif key in wanted:
            continue  # a duplicate of an updated key: xlwings would read the last one, so drop it
        else:
            lines.append(line)
    lines += [f'"{name}","{value}"' for key, (name, value) in wanted.items() if key not in done]
    return "".join(line + "\n" for line in lines)


def write_conf(path: Path, updates: dict[str, str]) -> Path | None:
    """Merge `updates` into the file atomically, keeping the previous file as <name>.bak; returns
    the backup's path (None when there was no file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    backup = None
    if path.exists():
        backup = path.with_name(path.name + ".bak")
        shutil.copy2(path, backup)
    write_text_atomically(path, merge_conf(old, updates))
    return backup


def install(url: str, api_key: str | None, home: Path | None = None, platform: str = sys.platform) -> ExcelSetup:
    home = home or Path.home()
    folder = home / ".xlwings" / "finsent"
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomically(folder / f"{UDF_MODULE}.py", UDF_STUB)
    conf = home / ".xlwings" / "xlwings.conf"
    existing = read_conf(conf)
    modules = [m for m in existing.get("UDF MODULES", "").split(";") if m and m != UDF_MODULE] + [UDF_MODULE]
    paths = [p for p in existing.get("PYTHONPATH", "").split(";") if p and p != str(folder)] + [str(folder)]
    settings = {"UDF MODULES": ";".join(modules), "PYTHONPATH": ";".join(paths), "FINSENT_URL": url}
    notes = []
    interpreter_key = INTERPRETER_KEYS.get(platform)
    if interpreter_key:
        settings = {interpreter_key: _interpreter(), **settings}
    else:
        notes.append(f"no interpreter written: Excel does not run on this system ({platform}); run `finsent excel` "
                     "on the Windows or Mac machine where Excel is")
    if api_key:
        settings["FINSENT_API_KEY"] = api_key
    for key, value in settings.items():
        before = existing.get(key.upper())
        if before and before != value and key not in ("UDF MODULES", "PYTHONPATH"):
            shown = "(hidden)" if key == "FINSENT_API_KEY" else before
            notes.append(f"replaced {key} (was {shown})")
    backup = write_conf(conf, settings)
    return ExcelSetup(conf, folder, settings, backup, notes)


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
        # The IF keeps a blank row blank (an empty answer is an error in spreadsheets).
        sheet.cell(row, 4, f'=IF(A{row}="","",_xlfn.WEBSERVICE("{url}/v1/label?scheme=7&text="&_xlfn.ENCODEURL(A{row})))')
    for column, width in zip("ABCD", (80, 22, 18, 24)):
        sheet.column_dimensions[column].width = width
    book.save(path)


# -- the Office add-in (Excel for Mac, Excel on the web, Windows) ------------------------------------

MAC_WEF_FOLDER = Path("Library/Containers/com.microsoft.Excel/Data/Documents/wef")
MANIFEST_NAME = "finsent-local-manifest.xml"


@dataclass(frozen=True)
class AddinSetup:
    manifest: Path
    sideloaded: Path | None  # the copy in Excel for Mac's add-in folder, when on a Mac
    steps: list[str]


# A shared-folder catalog (Windows) is read by Excel as the user, often from another account's share:
# the manifest is written readable like any new file, not owner-only.
MANIFEST_MODE = 0o644
MAC_ADDIN_MENU = "Home > Add-ins > My Add-ins > Developer Add-ins > FinSent Local"


def _is_addin_manifest(path: Path) -> bool:
    """An Office add-in manifest (what --force may replace), by its root element."""
    try:
        return b"<OfficeApp" in path.read_bytes()[:4096]
    except OSError:
        return False


def install_addin(https_url: str, api_key: str | None, out: Path, home: Path | None = None,
                  platform: str = sys.platform, force: bool = False) -> AddinSetup:
    """Write the add-in's manifest for the server at https_url; on a Mac, also into Excel's wef folder
    (which is how Excel for Mac sideloads an add-in). The steps follow the README's order."""
    from finsent_local.excel.addin_manifest import ManifestError, manifest_xml

    xml = manifest_xml(https_url, api_key)
    if not out.parent.is_dir():
        raise ManifestError(f"folder {out.parent} does not exist (create it first, or choose another --manifest)")
    try:
        check_file_output(FileOutput(out, "--manifest", "an add-in manifest", _is_addin_manifest), force=force)
    except OutputRefused as e:
        raise ManifestError(str(e)) from None
    write_text_atomically(out, xml, mode=MANIFEST_MODE)
    sideloaded = None
    if platform == "darwin":  # Excel's own add-in folder: made and refreshed as Excel expects
        wef = (home or Path.home()) / MAC_WEF_FOLDER
        wef.mkdir(parents=True, exist_ok=True)
        sideloaded = wef / MANIFEST_NAME
        write_text_atomically(sideloaded, xml, mode=MANIFEST_MODE)
    steps = [
        "Trust the local certificate once: finsent certs --trust",
        f"Start the server with HTTPS: finsent serve --https-port {https_url.rsplit(':', 1)[-1].strip('/')}",
        "Excel for Mac: " + (f"the manifest is in Excel's add-in folder; restart Excel, then {MAC_ADDIN_MENU}"
                             if sideloaded else
                             f"copy {out.name} into ~/{MAC_WEF_FOLDER}/ and restart Excel, then {MAC_ADDIN_MENU}"),
        f"Excel on the web: Home > Add-ins > More Add-ins > Upload My Add-in > {out.name}; when the browser asks "
        "whether the page may reach devices on your local network, allow it",
        "Windows: put the manifest in a shared folder and add it under File > Options > Trust Center > Trusted Add-in "
        "Catalogs, then Home > Add-ins > Shared Folder" + (
            " (the manifest holds the API key: share that folder with nobody else)" if api_key else ""),
        'Then type =LOCAL.FINSENT(A2,"7") in a cell (also LOCAL.FINSENT_SCORE, LOCAL.FINSENT_PROBS).',
    ]
    return AddinSetup(out, sideloaded, steps)
