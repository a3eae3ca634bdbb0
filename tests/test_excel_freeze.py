"""Freeze as values: `finsent excel freeze` on workbooks written by `finsent excel --sample` and by
openpyxl with every formula form (spills, other sheets, other formulas, formats, a chart), its values
against the real server's labels, the result opened in headless LibreOffice; the xlwings macro's logic
on a stand-in for Excel's ranges."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import run_finsent
from load_mix import post_json

HEADLINES = ["Nakatomi Trading raises full-year guidance", "Dunder Mifflin files for bankruptcy protection",
             "Bluth Company schedules its annual general meeting"]
RELEASE = "Virtucon shares soar 40% after record profit. Sterling Cooper cuts full-year guidance."


def _labels(url: str, texts: list[str], scheme: str = "7") -> list[dict]:
    return post_json(url + "/v1/classify", {"texts": texts, "scheme": scheme})["results"]


def _formula_book(path: Path) -> None:
    """Every formula form the project documents, with things freeze must keep around them."""
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference
    from openpyxl.comments import Comment
    from openpyxl.workbook.defined_name import DefinedName
    from openpyxl.worksheet.datavalidation import DataValidation
    from openpyxl.styles import Font
    from openpyxl.worksheet.formula import ArrayFormula

    book = Workbook()
    sheet = book.active
    sheet.title = "News"
    for row, text in enumerate(HEADLINES, start=2):
        sheet.cell(row, 1, text)
    sheet["A1"], sheet["A6"], sheet["E1"] = "Headline", RELEASE, "3"
    sheet["B2"] = '=FINSENT(A2,"7")'
    sheet["B3"] = "=FINSENT_SCORE(A3)"
    sheet["B4"] = "=LOCAL.FINSENT(A4,3)"
    sheet["B5"] = "=_xludf.FINSENT(A2,$E$1)"  # the scheme from a cell
    sheet["B6"] = "=FINSENT_DOC(A6)"
    sheet["B7"] = '=FINSENT_DOC_SCORE(A6,"3")'
    sheet["C2"] = ArrayFormula("C2:C4", '=FINSENT(A2:A4,"3")')  # a spilled range
    sheet["D2"] = '=IF(A2="","",_xlfn.WEBSERVICE("http://127.0.0.1:8000/v1/label?scheme=3&text="&_xlfn.ENCODEURL(A2)))'
    sheet["F2"] = ArrayFormula("F2:H5", '=FINSENT_PROBS(A2:A4,"3")')  # header row + 3 rows of 3
    sheet["B8"] = "=COUNTA(A2:A4)"  # not ours: kept
    sheet["B9"] = '=IFERROR(FINSENT(A2),"")'  # the commonest wrapper: computed as Excel does
    sheet["B2"].font = Font(bold=True, color="FF0000")
    sheet["B3"].number_format = "0.00"
    sheet["A1"].comment = Comment("Texts from the wire", "analyst")
    book.defined_names["headlines"] = DefinedName("headlines", attr_text="News!$A$2:$A$4")
    choice = DataValidation(type="list", formula1='"3,7"')
    sheet.add_data_validation(choice)
    choice.add("E1")
    other = book.create_sheet("Other sheet")
    other["A1"] = "=FINSENT(News!A3)"
    other["B1"] = 7
    chart = BarChart()
    chart.add_data(Reference(other, min_col=2, min_row=1, max_row=1))
    other.add_chart(chart, "D2")
    book.save(path)


def test_freeze_replaces_every_form_and_keeps_the_rest(server, tmp_path):
    from openpyxl import load_workbook

    book = tmp_path / "forms.xlsx"
    _formula_book(book)
    code, _, stderr = run_finsent("excel", "freeze", str(book), "--url", server.url)
    assert code == 0, stderr
    assert stderr.strip().splitlines() == [f"Froze 11 FinSent formulas (24 cells, 2 sheets) into {book}; the original "
                                           f"is kept as {tmp_path / 'forms.before-freeze.xlsx'}"]
    frozen = load_workbook(book)
    news, other = frozen["News"], frozen["Other sheet"]
    seven, three = _labels(server.url, HEADLINES), _labels(server.url, HEADLINES, "3")
    assert news["B2"].value == seven[0]["label"] and news["B2"].font.bold and news["B2"].font.color.rgb == "00FF0000"
    assert news["B3"].value == pytest.approx(seven[1]["score"]) and news["B3"].number_format == "0.00"
    assert news["B4"].value == three[2]["label"] and news["B5"].value == three[0]["label"]
    document = post_json(server.url + "/v1/documents", {"text": RELEASE})["document"]
    assert news["B6"].value == document["label"]
    assert news["B7"].value == pytest.approx(post_json(server.url + "/v1/documents",
                                                       {"text": RELEASE, "scheme": "3"})["document"]["score"])
    assert [news.cell(r, 3).value for r in (2, 3, 4)] == [r["label"] for r in three]
    assert news["D2"].value == three[0]["label"]
    assert [news.cell(2, c).value for c in (6, 7, 8)] == ["negative", "neutral", "positive"]
    for r, result in zip((3, 4, 5), three):
        assert [news.cell(r, c).value for c in (6, 7, 8)] == pytest.approx([result["probs"][k] for k in
                                                                            ("negative", "neutral", "positive")])
    assert news["B8"].value == "=COUNTA(A2:A4)" and news["B9"].value == seven[0]["label"]
    assert other["A1"].value == seven[1]["label"] and other["B1"].value == 7 and len(other._charts) == 1
    assert news["A1"].comment.text == "Texts from the wire" and frozen.defined_names["headlines"].attr_text == \
        "News!$A$2:$A$4"
    assert [str(v.sqref) for v in news.data_validations.dataValidation] == ["E1"]
    assert (tmp_path / "forms.before-freeze.xlsx").read_bytes() != book.read_bytes()
    assert load_workbook(tmp_path / "forms.before-freeze.xlsx")["News"]["B2"].value == '=FINSENT(A2,"7")'


def test_freeze_with_the_model_gives_the_servers_values(server, trained_gguf, tmp_path):
    from openpyxl import load_workbook

    book = tmp_path / "forms.xlsx"
    _formula_book(book)
    by_server, by_model = tmp_path / "server.xlsx", tmp_path / "model.xlsx"
    run_finsent("excel", "freeze", str(book), "--url", server.url, "--output", str(by_server))
    code, _, stderr = run_finsent("excel", "freeze", str(book), "--model", str(trained_gguf["f16"]), "--output",
                                  str(by_model), env={"FINSENT_CACHE_DIR": str(tmp_path / "cache")})
    assert code == 0 and "Froze 11 FinSent formulas" in stderr
    assert not list(tmp_path.glob("*.before-freeze*"))  # --output leaves the workbook as it is
    a, b = load_workbook(by_server)["News"], load_workbook(by_model)["News"]
    for row_a, row_b in zip(a.iter_rows(values_only=True), b.iter_rows(values_only=True)):
        for x, y in zip(row_a, row_b):
            assert x == pytest.approx(y, abs=1e-3) if isinstance(x, float) else x == y


def test_the_sample_workbook_frozen_opens_in_libreoffice_with_values(server, tmp_path):
    import shutil

    from openpyxl import load_workbook

    if shutil.which("soffice") is None:
        pytest.skip("LibreOffice (soffice) is not installed; .ci/run installs it with apt-get")
    sample = tmp_path / "sample.xlsx"
    code, _, stderr = run_finsent("excel", "--sample", str(sample), "--url", server.url,
                                  env={"HOME": str(tmp_path / "home")})
    assert code == 0, stderr
    code, _, stderr = run_finsent("excel", "freeze", str(sample), "--url", server.url)
    assert code == 0, stderr
    texts = [row[0] for row in load_workbook(sample)["Headlines"].iter_rows(min_row=2, values_only=True)]
    labels = [r["label"] for r in _labels(server.url, texts)]
    proc = subprocess.run(["/usr/bin/python3", str(Path(__file__).with_name("libreoffice_calc.py")), "--read",
                           str(sample)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout.strip().splitlines()[-1])["Headlines"]
    assert [row[1][0] for row in shown[1:]] == labels  # FINSENT's column, as values
    assert [row[3][0] for row in shown[1:]] == labels  # the WEBSERVICE column too (scheme 7)
    assert all(float(row[2][0]) for row in shown[1:])
    assert all(cell[1] == "" for row in shown for cell in row)  # no formula left anywhere


def test_bad_workbooks_are_one_line(server, tmp_path):
    from openpyxl import Workbook

    (tmp_path / "locked.xlsx").write_bytes(bytes.fromhex("D0CF11E0A1B11AE1") + b"\0" * 504)
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "table.csv").write_text("a,b\n")
    plain = Workbook()
    plain.active["A1"] = "=SUM(1,2)"
    plain.save(tmp_path / "plain.xlsx")
    _formula_book(tmp_path / "forms.xlsx")
    (tmp_path / "taken.xlsx").write_text("mine")
    cases = [
        (["missing.xlsx"], "missing.xlsx not found"),
        (["locked.xlsx"], "locked.xlsx is password-protected: open it in Excel, remove the password"),
        (["broken.xlsx"], "broken.xlsx is not a readable Excel workbook"),
        (["table.csv"], "reads .xlsx and .xlsm workbooks"),
        (["plain.xlsx"], "plain.xlsx has no FinSent formulas: nothing to freeze"),
        (["forms.xlsx", "--output", str(tmp_path / "taken.xlsx")], "taken.xlsx exists; use --force"),
        (["forms.xlsx", "--output", str(tmp_path / "forms.xlsx")], "--output is the workbook itself"),
        (["forms.xlsx", "--url", "http://127.0.0.1:9"], "server not running at http://127.0.0.1:9: start it with"),
    ]
    for args, message in cases:
        args = [str(tmp_path / args[0]), *args[1:]]
        if "--url" not in args:
            args += ["--url", server.url]
        code, _, stderr = run_finsent("excel", "freeze", *args)
        assert code == 1 and message in stderr and len(stderr.strip().splitlines()) == 1, (args, stderr)
    assert (tmp_path / "taken.xlsx").read_text() == "mine" and not list(tmp_path.glob("*.before-freeze*"))


def test_formula_forms_are_recognised_and_read():
    from finsent_local.excel.formulas import FinSentCall, is_finsent_formula, read_call

    assert all(is_finsent_formula(f) for f in ('=FINSENT(A2,"7")', "=local.finsent_score(A2)", "=_xludf.FINSENT_PROBS(A2:A9)",
                                               '=IFERROR(FINSENT(A2),"")', "=_xldudf_LOCAL_FINSENT_DOC(B3)",
                                               '=WEBSERVICE("http://127.0.0.1:8000/v1/label?scheme=7&text="&ENCODEURL(A2))'))
    assert not any(is_finsent_formula(f) for f in ("=SUM(A1:A3)", "=MYFINSENT(A2)", "FINSENT(A2)", None, 3,
                                                   '=WEBSERVICE("http://example.com/data")'))
    assert read_call("=FINSENT_DOC_SCORE('My sheet'!$B$3, 3)") == FinSentCall("FINSENT_DOC_SCORE", "'My sheet'!$B$3", "3")
    assert read_call('=FINSENT("Profit ""soared""")') == FinSentCall("FINSENT", '"Profit ""soared"""', None)
    assert read_call('=IF(A2="","",WEBSERVICE("http://h:1/v1/label?scheme=3&text="&ENCODEURL(A2)))') == \
        FinSentCall("FINSENT", "A2", '"3"', webservice=True)
    assert read_call('=IF(B2="","",WEBSERVICE("http://h:1/v1/label?text="&ENCODEURL(A2)))') is None  # not the same cell
    assert read_call("=FINSENT(A2&B2)") is None and read_call("=FINSENT(A2)+1") is None


class _ExcelRange:
    """STAND-IN for an xlwings Range in a running Excel (which cannot exist here): cells with a formula
    and a shown value, SpecialCells(xlCellTypeFormulas) over the selection's areas, and Excel 365's
    spill areas (api.HasSpill, SpillParent.SpillingToRange). Addresses are "row,col;row,col..."."""

    def __init__(self, sheet, cells):
        self.sheet, self.cells = sheet, cells  # [(row, col), ...]

    @property
    def address(self):
        return ";".join(f"{r},{c}" for r, c in self.cells)

    @property
    def formula2(self):
        return self.sheet.formulas.get(self.cells[0], "")

    @property
    def api(self):
        sheet, cells = self.sheet, self.cells
        area = next((a for a in sheet.spills if cells[0] in a), None)
        formulas = [c for c in cells if c in sheet.formulas]
        Cell = type("Cell", (), {})

        class Api:
            HasSpill = area is not None
            HasArray = False
            SpillParent = type("Parent", (), {"SpillingToRange": type("To", (), {
                "Address": ";".join(f"{r},{c}" for r, c in area or ())})})

            @staticmethod
            def SpecialCells(kind):
                assert kind == -4123  # xlCellTypeFormulas
                if not formulas:
                    raise RuntimeError("No cells were found.")  # as Excel does
                found = []
                for r, c in formulas:
                    one = Cell()
                    one.Address = f"{r},{c}"
                    found.append(one)
                return type("Found", (), {"Areas": [type("Area", (), {"Cells": found})]})

        return Api

    def options(self, **_):
        return self

    @property
    def value(self):
        rows = sorted({r for r, _ in self.cells})
        return [[self.sheet.values.get((r, c)) for rr, c in self.cells if rr == r] for r in rows]

    @value.setter
    def value(self, rows):
        for (r, c), v in zip(self.cells, [v for row in rows for v in row]):
            self.sheet.values[(r, c)] = v
            self.sheet.formulas.pop((r, c), None)


class _ExcelSheet:
    def __init__(self, formulas, values, spills):
        self.formulas, self.values, self.spills = formulas, values, spills

    def range(self, area):
        if isinstance(area, str):
            area = [tuple(int(n) for n in cell.split(",")) for cell in area.split(";")]
        found = _ExcelRange(self, list(area))
        found.sheet = self
        return found


def test_the_xlwings_macro_freezes_the_selection_and_refuses_waiting_cells():
    from finsent_local.excel.freeze import freeze_selection

    spill = ((1, 2), (2, 2), (3, 2))
    sheet = _ExcelSheet({(1, 1): '=FINSENT(A1,"7")', (1, 2): "=FINSENT_PROBS(A1:A2)", (1, 3): "=SUM(A1:A2)",
                         (2, 1): "=FINSENT(A2)"},
                        {(1, 1): "neutral", (1, 2): "negative", (2, 2): 0.1, (3, 2): 0.2, (1, 3): 3,
                         (2, 1): "#N/A waiting..."}, [spill])
    everything = sheet.range([(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)])
    assert freeze_selection(everything) == ("Nothing was frozen: 1 FinSent cell is still waiting for its result "
                                            "(2,1). Try again when it has filled in.")
    assert sheet.formulas[(1, 1)] == '=FINSENT(A1,"7")'  # nothing changed
    sheet.values[(2, 1)] = "mildly positive"
    assert freeze_selection(everything) == "Froze 3 FinSent formulas into values."
    assert sheet.formulas == {(1, 3): "=SUM(A1:A2)"}  # the other formula stays
    assert [sheet.values[c] for c in ((1, 1), (2, 1), *spill)] == ["neutral", "mildly positive", "negative", 0.1, 0.2]
    sheet.formulas[(5, 1)], sheet.values[(5, 1)] = "=FINSENT(A4)", "positive"
    assert freeze_selection(sheet.range([(5, 1)])) == "Froze 1 FinSent formula into values."
    sheet.formulas[(6, 1)], sheet.formulas[(7, 1)] = "=FINSENT(A5)", "=FINSENT(A6)"
    sheet.values[(6, 1)] = sheet.values[(7, 1)] = "#N/A waiting..."
    assert freeze_selection(sheet.range([(6, 1), (7, 1)])) == (
        "Nothing was frozen: 2 FinSent cells are still waiting for their results (6,1, 7,1). Try again when they "
        "have filled in.")
    assert freeze_selection(sheet.range([(1, 3)])) == "No FinSent formulas in the selection."
    assert freeze_selection(sheet.range([(4, 4)])) == "No FinSent formulas in the selection."  # no formula at all


def test_a_failed_request_is_never_frozen_into_a_value():
    from finsent_local.excel.formulas import is_transient

    assert is_transient("#FINSENT! server at http://127.0.0.1:8000 did not answer in time")
    assert is_transient("#FINSENT! the model is still loading; try again shortly")
    assert is_transient("#FINSENT! no result") and is_transient("#FINSENT! server error (HTTP 502)")
    assert not any(is_transient(v) for v in ("#FINSENT! text is empty", "#FINSENT! not text (a number)",
                                             "#FINSENT! text too long", "negative", 0.5, None))


# Parts openpyxl does not write back, as Excel stores them (contents shortened), and what freeze calls them.
FOREIGN_PARTS = {
    "xl/connections.xml": ("<connections/>", "data connections and queries (Power Query)"),
    "xl/queryTables/queryTable1.xml": ("<queryTable/>", "data connections and queries (Power Query)"),
    "customXml/item1.xml": ("<root/>", "custom XML parts"),
    "customXml/itemProps1.xml": ("<ds:datastoreItem/>", "custom XML parts"),
    "xl/model/item.data": ("\0model", "data model (Power Pivot)"),
    "xl/activeX/activeX1.xml": ("<ax:ocx/>", "ActiveX controls"),
    "xl/activeX/activeX1.bin": ("\0ocx", "ActiveX controls"),
    "xl/embeddings/oleObject1.bin": ("\0ole", "embedded objects"),
    "xl/pivotCache/pivotCacheDefinition1.xml": ("<pivotCacheDefinition/>", "pivot caches"),
    "xl/slicers/slicer1.xml": ("<slicers/>", "slicers"),
    "xl/slicerCaches/slicerCache1.xml": ("<slicerCacheDefinition/>", "slicers"),
    "xl/webextensions/webextension1.xml": ("<we:webextension/>", "Office add-in task panes and settings"),
    "xl/printerSettings/printerSettings1.bin": ("\0printer", "printer settings"),
    "xl/somethingNew/part1.xml": ("<new/>", "other parts: xl/somethingNew/part1.xml"),
}


def _with_foreign_parts(book: Path) -> None:
    import zipfile

    with zipfile.ZipFile(book, "a") as z:  # as if Excel had saved them (openpyxl will not write them back)
        for name, (content, _) in FOREIGN_PARTS.items():
            z.writestr(name, content)
        z.writestr("xl/calcChain.xml", "<calcChain/>")  # Excel makes it again: not worth a word


def test_every_part_openpyxl_drops_is_named(tmp_path):
    import zipfile

    from openpyxl import Workbook

    from finsent_local.excel.workbook_parts import dropped_parts

    book = tmp_path / "forms.xlsx"
    _formula_book(book)  # a chart, a note, a defined name, validation: all kept
    assert dropped_parts(book) == []
    _with_foreign_parts(book)
    assert sorted(dropped_parts(book)) == sorted({what for _, what in FOREIGN_PARTS.values()})
    vba = Workbook()
    vba.active["A1"] = "=FINSENT(B1)"
    vba.save(tmp_path / "macros.xlsx")  # openpyxl keeps a VBA project only when it loads an .xlsm
    (tmp_path / "macros.xlsx").rename(tmp_path / "macros.xlsm")
    with zipfile.ZipFile(tmp_path / "macros.xlsm", "a") as z:
        z.writestr("xl/vbaProject.bin", "\0vba")
    assert dropped_parts(tmp_path / "macros.xlsm") == []
    (tmp_path / "macros.xlsm").rename(tmp_path / "macros.xlsx")
    assert dropped_parts(tmp_path / "macros.xlsx") == ["VBA macros"]


def test_parts_openpyxl_drops_are_named(server, tmp_path):
    import zipfile

    book = tmp_path / "parts.xlsx"
    _formula_book(book)
    _with_foreign_parts(book)
    code, _, stderr = run_finsent("excel", "freeze", str(book), "--url", server.url)
    assert code == 0, stderr
    note = next(line for line in stderr.splitlines() if line.startswith("note: "))
    assert note.startswith("note: openpyxl does not keep the workbook's ")
    assert note.endswith(f": missing from {book}, kept in {tmp_path / 'parts.before-freeze.xlsx'}")
    for _, what in FOREIGN_PARTS.values():
        assert what in note
    with zipfile.ZipFile(book) as frozen, zipfile.ZipFile(tmp_path / "parts.before-freeze.xlsx") as backup:
        assert not set(FOREIGN_PARTS) & set(frozen.namelist())
        assert set(FOREIGN_PARTS) <= set(backup.namelist())


class _FakeModel:
    """A stand-in source (as cells.ModelSource): label "lbl:TEXT", score = len(TEXT)/100; texts that
    start with "LONG" are refused ("text too long"), as the server refuses one over its limit."""

    def __init__(self, name):
        self.key, self.cache_name = ("fake", name), "fake:" + name

    def classify(self, texts, scheme):
        return [{"error": {"message": "text too long"}} if t.startswith("LONG") else
                {"label": f"lbl:{t}", "score": len(t) / 100,
                 "probs": {"negative": 0.25, "neutral": 0.25, "positive": 0.5}} for t in texts]


def _freeze_with_fake(book, tmp_path, name):
    from finsent_local.excel.freeze import freeze_workbook

    return freeze_workbook(book, tmp_path / f"{name}.frozen.xlsx", _FakeModel(f"{name}-{tmp_path.name}"))


def test_formulas_around_a_call_are_computed_as_excel_shows_them(tmp_path):
    """IFERROR, IFNA, IF(A2="",...), &, ROUND... around a FinSent call: the value Excel shows. The
    functions answer problems with a #FINSENT! text (never an Excel error), so IFERROR keeps it;
    WEBSERVICE's refused or empty answer is #VALUE!, which IFERROR catches."""
    from openpyxl import Workbook, load_workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "S"
    sheet["A2"], sheet["A3"], sheet["A5"], sheet["A6"], sheet["A7"] = "Profit up", "Loss", "LONG text", 42, "#N/A"
    sheet["B2"] = "Q3"
    formulas = {
        "C2": ('=IFERROR(FINSENT(A2),"")', "lbl:Profit up"),
        "C3": ('=_xlfn.IFNA(LOCAL.FINSENT(A3,"3"),"none")', "lbl:Loss"),
        "C4": ('=IF(A4="","",FINSENT(A4))', None),  # a blank row stays blank
        "C5": ('=IFERROR(FINSENT(A5),"x")', "#FINSENT! text too long"),  # a text, not an error: kept
        "C6": ('=IFERROR(FINSENT(A6),"x")', "#FINSENT! not text (a number)"),  # as the live function shows
        "C7": ('=IFNA(FINSENT(A7),"none")', "#FINSENT! the cell holds an error (#N/A)"),
        "C8": ('=FINSENT(A2&" "&B2)', "lbl:Profit up Q3"),
        "C9": ("=ROUND(FINSENT_SCORE(A3)*100,1)", 4.0),
        "C10": ('=UPPER(FINSENT(A2))&"!"', "LBL:PROFIT UP!"),
        "C11": ('=IFERROR(WEBSERVICE("http://127.0.0.1:8000/v1/label?text="&ENCODEURL(A5)),"refused")', "refused"),
        "C12": ('=IFERROR(_xlfn.WEBSERVICE("http://127.0.0.1:8000/v1/label?scheme=3&text="&_xlfn.ENCODEURL(A2)),"")',
                "lbl:Profit up"),
        "C13": ('=IFERROR(WEBSERVICE("http://127.0.0.1:8000/v1/label?text="&ENCODEURL(A4)),"blank")', "blank"),
        "C14": ('=IF(ISNUMBER(A6),"number",FINSENT(A6))', "number"),
        "C15": ('=FINSENT(A2)=FINSENT(A2&"")', True),
    }
    for place, (formula, _) in formulas.items():
        sheet[place] = formula
    sheet["A7"].value = "#N/A"  # an error value (openpyxl stores it as one)
    path = tmp_path / "wrapped.xlsx"
    book.save(path)
    report = _freeze_with_fake(path, tmp_path, "wrapped")
    assert report.left == [] and report.formulas == len(formulas)
    frozen = load_workbook(tmp_path / "wrapped.frozen.xlsx")["S"]
    assert {place: frozen[place].value for place in formulas} == {place: v for place, (_, v) in formulas.items()}


def test_formulas_that_cannot_be_computed_are_left_and_grouped_by_reason(tmp_path):
    from openpyxl import Workbook
    from openpyxl.worksheet.formula import ArrayFormula

    from finsent_local.excel.freeze import left_summary

    book = Workbook()
    sheet = book.active
    sheet.title = "S"
    sheet["A2"], sheet["A3"] = "Profit up", "=UPPER(A2)"  # A3: a formula never calculated (no saved value)
    for row in range(2, 9):
        sheet[f"B{row}"] = f'=IFERROR(FINSENT(A{row}:A{row + 1}),"")'  # a range inside a function
    sheet["C2"] = '=IFERROR(FINSENT(OFFSET(A1,1,0)),"")'
    sheet["C3"] = '=IFERROR(FINSENT(A3),"")'
    sheet["C4"] = '=FINSENT(A3)'
    sheet["C5"] = ArrayFormula("C5:E6", '=IFERROR(FINSENT_PROBS(A2),"")')
    sheet["C7"] = "=FINSENT(FINSENT(A2))"
    path = tmp_path / "left.xlsx"
    book.save(path)
    report = _freeze_with_fake(path, tmp_path, "left")
    assert report.formulas == 0
    message = left_summary(report.left)
    assert message == (
        "12 FinSent formulas left as formulas: 7 with a FinSent call on a range inside another function (S!B2, B3, "
        "B4, B5, B6, ...); 1 using OFFSET, which freeze does not compute (S!C2); 2 reading a formula cell that has "
        "no saved value (open and save the workbook in Excel first) (S!C3, C4); 1 with FINSENT_PROBS inside "
        "another function (its result is a table) (S!C5); 1 with a FinSent call inside another FinSent call's "
        "arguments (S!C7)")
    assert "more than one FinSent call" not in message
    assert left_summary([("S!C3", "using OFFSET, which freeze does not compute")]) == \
        "1 FinSent formula left as a formula, using OFFSET, which freeze does not compute: S!C3"
    assert left_summary([("S!C3", "why"), ("T!C4", "why")]) == "2 FinSent formulas left as formulas, why: S!C3, T!C4"


def test_freeze_left_formulas_are_summed_up_by_the_command(server, tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet["A2"], sheet["A3"] = HEADLINES[0], "=UPPER(A2)"
    sheet["B2"] = '=IFERROR(FINSENT(A2),"")'
    sheet["B3"] = '=IFERROR(FINSENT(OFFSET(A1,1,0)),"")'
    sheet["B4"] = "=FINSENT(A3)"
    sheet["B5"] = "=FINSENT(A3)"
    book.save(tmp_path / "some.xlsx")
    code, _, stderr = run_finsent("excel", "freeze", str(tmp_path / "some.xlsx"), "--url", server.url)
    assert code == 1
    lines = stderr.strip().splitlines()
    assert lines[0].startswith("Froze 1 FinSent formula (1 cell, 1 sheet) into ")
    assert lines[-1] == (
        "Error: 3 FinSent formulas left as formulas: 1 using OFFSET, which freeze does not compute (Sheet!B3); 2 "
        "reading a formula cell that has no saved value (open and save the workbook in Excel first) (Sheet!B4, B5)")


def test_a_number_is_sent_as_excel_sends_it(server, tmp_path):
    """ENCODEURL(42) is "42": the WEBSERVICE form labels the number's text, as Excel's request does;
    =FINSENT(A2) with a number shows the functions' own message (cells.py and the add-in's functions.js
    both answer "not text (a number)"), and freeze writes that same message."""
    import datetime as dt

    from openpyxl import Workbook, load_workbook

    book = Workbook()
    sheet = book.active
    numbers = [42, 3.5, dt.datetime(2024, 1, 2)]
    for row, number in enumerate(numbers, start=2):
        sheet.cell(row, 1, number)
        sheet.cell(row, 2, f'=WEBSERVICE("{server.url}/v1/label?scheme=7&text="&ENCODEURL(A{row}))')
        sheet.cell(row, 3, f'=IF(A{row}="","",WEBSERVICE("{server.url}/v1/label?scheme=3&text="&ENCODEURL(A{row})))')
        sheet.cell(row, 4, f"=FINSENT(A{row})")
        sheet.cell(row, 5, f'=IFERROR(WEBSERVICE("{server.url}/v1/label?text="&ENCODEURL(A{row})),"")')
    book.save(tmp_path / "numbers.xlsx")
    code, _, stderr = run_finsent("excel", "freeze", str(tmp_path / "numbers.xlsx"), "--url", server.url)
    assert code == 0, stderr
    frozen = load_workbook(tmp_path / "numbers.xlsx").active
    as_sent = ["42", "3.5", "45293"]  # a date: its serial number
    seven, three = _labels(server.url, as_sent), _labels(server.url, as_sent, "3")
    assert [frozen.cell(r, 2).value for r in (2, 3, 4)] == [r["label"] for r in seven]
    assert [frozen.cell(r, 3).value for r in (2, 3, 4)] == [r["label"] for r in three]
    assert [frozen.cell(r, 5).value for r in (2, 3, 4)] == [r["label"] for r in seven]
    assert [frozen.cell(r, 4).value for r in (2, 3, 4)] == ["#FINSENT! not text (a number)"] * 2 + \
        ["#FINSENT! not text (a date)"]


def test_excel_number_text():
    from finsent_local.excel.formulas import as_text, number_text

    assert [number_text(n) for n in (42, 42.0, 3.5, -0.5, 1 / 3, 1e20, 123456789012345678)] == \
        ["42", "42", "3.5", "-0.5", "0.333333333333333", "1E+20", "1.23456789012346E+17"]
    assert [as_text(v) for v in (None, True, False, "x")] == ["", "TRUE", "FALSE", "x"]


def test_excel_operators_and_functions_around_the_calls():
    from finsent_local.excel.formulas import _Computed

    def value(formula):
        return _Computed(formula, "S", None).values(None)[0][0]

    assert value("=-2^2") == 4 and value("=50%") == 0.5 and value('="a"="A"') is True and value("=1<\"a\"") is True
    assert value("=ROUND(2.675,2)") == 2.68 and value("=ROUND(-2.5,0)") == -3 and value("=1/0") == "#DIV/0!"
    assert value('=IFERROR(1/0,"x")') == "x" and value('=IFNA(1/0,"x")') == "#DIV/0!" and value("=IFNA(#N/A,2)") == 2
    assert value('="n"&3.5&TRUE') == "n3.5TRUE" and value('=TRIM("  a   b ")') == "a b" and value('=IF(0,1)') is False
    assert value('=ENCODEURL("a b&c")') == "a%20b%26c" and value('=IF("x",1,2)') == "#VALUE!"
