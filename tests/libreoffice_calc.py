"""Drive headless LibreOffice Calc over UNO. Runs under Debian's python3 (where the `uno` module lives),
not the project's virtual environment.

    /usr/bin/python3 tests/libreoffice_calc.py SERVER_URL SCHEME TEXT...

fills a sheet with texts and WEBSERVICE formulas (plain, and wrapped in IF for blank cells),
recalculates, saves, opens the saved file again, and prints the computed cells as JSON:
{"plain": [...], "guarded": [...], "reopened": [...]}.

    /usr/bin/python3 tests/libreoffice_calc.py --read BOOK.xlsx

opens a workbook as a user would and prints, per sheet, each used cell's shown text and formula:
{"Sheet": [[["shown", "=FORMULA or empty"], ...], ...], ...}.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import uno
from com.sun.star.beans import PropertyValue


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prop(name, value):
    p = PropertyValue()
    p.Name, p.Value = name, value
    return p


def main():
    if sys.argv[1] == "--read":
        return with_office(lambda desktop, profile: read_book(desktop, sys.argv[2]))
    server, scheme, texts = sys.argv[1], sys.argv[2], sys.argv[3:]
    return with_office(lambda desktop, profile: webservice_cells(desktop, profile, server, scheme, texts))


def read_book(desktop, path):
    doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(os.path.abspath(path)), "_blank", 0,
                                       (_prop("Hidden", True),))
    out = {}
    for index in range(doc.Sheets.getCount()):
        sheet = doc.Sheets.getByIndex(index)
        cursor = sheet.createCursor()
        cursor.gotoEndOfUsedArea(False)
        end = cursor.getRangeAddress()
        out[sheet.getName()] = [[[sheet.getCellByPosition(c, r).getString(),
                                  sheet.getCellByPosition(c, r).getFormula() if sheet.getCellByPosition(c, r).getType().value == "FORMULA" else ""]
                                 for c in range(end.EndColumn + 1)] for r in range(end.EndRow + 1)]
    doc.close(True)
    print(json.dumps(out))


def with_office(work):
    profile = tempfile.mkdtemp(prefix="lo-profile-")
    port = _free_port()
    office = subprocess.Popen([
        shutil.which("soffice") or "soffice", "--headless", "--invisible", "--nologo", "--norestore",
        "--nodefault", f"-env:UserInstallation=file://{profile}",
        f"--accept=socket,host=127.0.0.1,port={port};urp;StarOffice.ComponentContext",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
        deadline = time.time() + 90
        while True:
            try:
                context = resolver.resolve(f"uno:socket,host=127.0.0.1,port={port};urp;StarOffice.ComponentContext")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)
        desktop = context.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", context)
        work(desktop, profile)
    finally:
        try:
            office.terminate()
            office.wait(timeout=20)
        except Exception:
            office.kill()
        shutil.rmtree(profile, ignore_errors=True)


def webservice_cells(desktop, profile, server, scheme, texts):
    doc = desktop.loadComponentFromURL("private:factory/scalc", "_blank", 0, (_prop("Hidden", True),))
    sheet = doc.Sheets.getByIndex(0)
    for row, text in enumerate(texts):
        call = f'WEBSERVICE("{server}/v1/label?scheme={scheme}&text="&ENCODEURL(A{row + 1}))'
        sheet.getCellByPosition(0, row).setString(text)
        sheet.getCellByPosition(1, row).setFormula("=" + call)  # as the README's first formula
        sheet.getCellByPosition(2, row).setFormula(f'=IF(A{row + 1}="";"";{call})')  # blank-safe form
    doc.calculateAll()

    def column(document, index):
        cells = document.Sheets.getByIndex(0)
        return [cells.getCellByPosition(index, row).getString() for row in range(len(texts))]

    out = {"plain": column(doc, 1), "guarded": column(doc, 2)}
    # A saved workbook opened again: what a user sees before allowing external links.
    saved = uno.systemPathToFileUrl(os.path.join(profile, "saved.ods"))
    doc.storeToURL(saved, (_prop("FilterName", "calc8"),))
    doc.close(True)
    again = desktop.loadComponentFromURL(saved, "_blank", 0, (_prop("Hidden", True),))
    again.calculateAll()
    out["reopened"] = column(again, 1)
    again.close(True)
    print(json.dumps(out))


if __name__ == "__main__":
    os.environ.setdefault("SAL_USE_VCLPLUGIN", "svp")
    main()
