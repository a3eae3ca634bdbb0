"""Files as users really have them, through the real `finsent classify` and the trained model: CSV from
Excel outside the US (Windows-1252, ';'), JSON Lines from scrapers (lone surrogates, keys that clash),
inputs with no rows, and workbooks written by other tools (wrong <dimension>, ragged rows, formulas
never computed, headers in another case). Nothing a user owns is lost or misread."""

from __future__ import annotations

import csv
import json
import re
import zipfile
from pathlib import Path

import pytest
from conftest import run_finsent
from sentiment_data import held_out_examples

from finsent_local.engine.labels import LABELS_7

HEADLINES = [text for text, _ in held_out_examples(per_label=1)]
ADDED_7 = ["label", "score", *(f"p_{label.replace(' ', '_')}" for label in LABELS_7), "error"]


@pytest.fixture(scope="module")
def model(trained_gguf) -> Path:
    return trained_gguf["q8_0"]


@pytest.fixture
def classify(model, tmp_path):
    """`finsent classify --input ... --output ...`: (exit code, stderr lines)."""

    def run(source: Path, output: Path, *args: str):
        code, stdout, stderr = run_finsent("classify", "--model", str(model), "--input", str(source), "--output",
                                           str(output), *args, env={"FINSENT_CACHE_DIR": str(tmp_path / "cache"),
                                                                    "FINSENT_MODEL": ""})
        assert stdout == "" and "Traceback" not in stderr, stderr
        return code, stderr.strip().splitlines()

    return run


def _no_work_folder_left(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".finsent-partial")]


# -- JSON Lines ---------------------------------------------------------------------------------------------
def test_jsonl_lone_surrogate_is_written_losslessly(classify, tmp_path):
    lines = ['{"id": 1, "headline": "Hooli shares jump \\ud83d"}',  # scraped text cut inside an emoji
             json.dumps({"id": 2, "headline": HEADLINES[0], "note": "Zürich"}, ensure_ascii=False)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, err = classify(tmp_path / "in.jsonl", tmp_path / "out.jsonl", "--column", "headline")
    assert code == 0, err
    assert err[-1].startswith("Wrote ") and "2 rows" in err[-1]
    written = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in written]
    assert records[0]["headline"] == "Hooli shares jump \ud83d"  # the same value read back
    assert records[1]["note"] == "Zürich" and "Zürich" in written[1]  # readable characters stay readable
    assert records[1]["label"] in LABELS_7 and records[1]["error"] == ""


def test_jsonl_keys_that_would_be_overwritten_are_refused(classify, tmp_path):
    records = [{"headline": HEADLINES[0]}, {"headline": HEADLINES[1]},
               {"headline": HEADLINES[2], "label": "analyst: buy"}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    code, err = classify(tmp_path / "in.jsonl", tmp_path / "out.jsonl", "--column", "headline")
    assert code == 1 and err == ["Error: record 3 of in.jsonl already has a key named 'label'; name the new keys "
                                 "differently with --prefix (e.g. --prefix finsent_)"]
    assert not (tmp_path / "out.jsonl").exists() and _no_work_folder_left(tmp_path)
    code, err = classify(tmp_path / "in.jsonl", tmp_path / "out.jsonl", "--column", "headline", "--prefix", "fs_")
    assert code == 0, err
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert out[2]["label"] == "analyst: buy" and out[2]["fs_label"] in LABELS_7


def test_jsonl_lines_end_at_lf_or_crlf_alike(tmp_path):
    """One definition of a line (tables.split_json_lines, which Ray's reader uses too: test_ray_job), as
    JSON Lines has it: a line ends at \\n or \\r\\n; a lone \\r, U+2028 or U+0085 does not end one. LF and
    CRLF files give the same rows; a CR-only file is one line (one error row, kept whole, and a note)."""
    from finsent_local.jobs.tables import JsonLinesTable, open_table, split_json_lines

    lines = [json.dumps({"id": 1, "headline": HEADLINES[0]}),
             json.dumps({"id": 2, "headline": "Line\u2028separator and \x85 next line"}, ensure_ascii=False),
             "{not json at all", json.dumps({"id": 4, "headline": "last, with no line end"})]
    want = [HEADLINES[0], "Line\u2028separator and \x85 next line", None, "last, with no line end"]
    rows = {}
    for name, ending, bom in [("lf", "\n", b""), ("crlf", "\r\n", b""), ("bom_crlf", "\r\n", b"\xef\xbb\xbf"),
                              ("cr", "\r", b"")]:
        path = tmp_path / f"{name}.jsonl"
        content = lines[0] + ending + ending + "  " + ending + ending.join(lines[1:])  # blank lines are skipped
        path.write_bytes(bom + content.encode())
        table = open_table(path, "headline")
        texts = [t for chunk in table.texts(2) for t in chunk]
        with open(path, "rb") as f:
            split = [line for block in split_json_lines(f, path.name) for line in block]
        for size in (1, 2, 3, 7):  # any block size gives the same lines (a block may end inside a line or an ending)
            with open(path, "rb") as f:
                assert [line for block in split_json_lines(f, path.name, size) for line in block] == split, (name, size)
        rows[name] = (split, [None if not isinstance(t, str) else t for t in texts], table.notes)
    assert rows["lf"] == rows["crlf"] == rows["bom_crlf"] == (lines, want, [])
    split, texts, notes = rows["cr"]
    assert split == [content] and texts == [None]  # one line that is not a JSON object
    assert notes == ["note: cr.jsonl ends its lines with a lone CR (\\r), not LF (\\n) as JSON Lines does: it is "
                     "read as one line; save it with LF or CRLF line endings"]
    scored = [r for r in JsonLinesTable(tmp_path / "cr.jsonl", "headline")._records()]
    assert scored == [(None, content)]  # written back whole as {"input_line": ...}


# -- inputs with no rows ---------------------------------------------------------------------------------------
def _header_only_inputs(folder: Path) -> dict[str, Path]:
    import openpyxl
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "in.csv").write_text("id,headline\r\n", encoding="utf-8")
    (folder / "in.jsonl").write_text("", encoding="utf-8")
    pq.write_table(pa.table({"id": pa.array([], pa.int64()), "headline": pa.array([], pa.string())}),
                   folder / "in.parquet")
    book = openpyxl.Workbook()
    book.active.append(["id", "headline"])
    book.save(folder / "in.xlsx")
    return {suffix: folder / f"in{suffix}" for suffix in (".csv", ".jsonl", ".parquet", ".xlsx")}


def test_inputs_with_no_rows_give_header_only_outputs(classify, tmp_path):
    for suffix, source in _header_only_inputs(tmp_path).items():
        out = tmp_path / f"out{suffix}"
        code, err = classify(source, out, "--column", "headline")
        assert code == 0 and err[-1] == f"Wrote {out}: 0 rows", (suffix, err)
        assert _no_work_folder_left(tmp_path), suffix
        if suffix == ".csv":
            assert out.read_bytes() == (",".join(["id", "headline", *ADDED_7]) + "\r\n").encode()
        elif suffix == ".jsonl":
            assert out.read_text() == ""
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(out)
            assert table.num_rows == 0 and table.schema.names == ["id", "headline", *ADDED_7]
        else:
            import openpyxl

            rows = list(openpyxl.load_workbook(out).active.iter_rows(values_only=True))
            assert rows == [("id", "headline", *ADDED_7)]


# -- CSV as Excel writes it outside the US ------------------------------------------------------------------------
def test_windows_1252_csv_is_read_and_written_back_the_same_way(classify, tmp_path):
    rows = [["id", "headline"], ["1", "Société Générale profit rises 5% to €1.2bn"], ["2", HEADLINES[0]]]
    with open(tmp_path / "in.csv", "w", encoding="cp1252", newline="") as f:
        csv.writer(f).writerows(rows)
    code, err = classify(tmp_path / "in.csv", tmp_path / "out.csv", "--column", "headline")
    assert code == 0, err
    assert err[0] == "note: in.csv is not UTF-8 (line 2); read as Windows-1252 (--encoding to choose)"
    with open(tmp_path / "out.csv", encoding="cp1252", newline="") as f:
        out = list(csv.reader(f))
    assert [row[:2] for row in out] == rows and all(row[2] in LABELS_7 for row in out[1:])


def test_encodings_that_do_not_fit_say_which_line(classify, tmp_path):
    # 0x81 is a byte Windows-1252 does not define, on the 3rd line
    (tmp_path / "in.csv").write_bytes(b"id,headline\n1,Profit rises\n2,Caf\x81 chain falls\n")
    code, err = classify(tmp_path / "in.csv", tmp_path / "out.csv", "--column", "headline")
    assert code == 1 and err == ["Error: in.csv line 3 is not UTF-8 text (nor Windows-1252); give the file's encoding "
                                 "with --encoding, or save it as UTF-8 (Excel: CSV UTF-8)"]
    code, err = classify(tmp_path / "in.csv", tmp_path / "out.csv", "--column", "headline", "--encoding", "latin-1")
    assert code == 0, err
    (tmp_path / "cp.csv").write_bytes("id,headline\n1,Soci\xe9t\xe9 G\xe9n\xe9rale rises\n".encode("cp1252"))
    code, err = classify(tmp_path / "cp.csv", tmp_path / "out2.csv", "--column", "headline", "--encoding", "utf-8")
    assert code == 1 and err == ["Error: cp.csv line 2 is not utf-8 text; give the file's encoding with --encoding"]
    code, err = classify(tmp_path / "cp.csv", tmp_path / "out2.csv", "--column", "headline", "--encoding", "klingon")
    assert code == 1 and err == ["Error: unknown encoding 'klingon' (e.g. utf-8, cp1252, latin-1)"]
    assert _no_work_folder_left(tmp_path)


def test_semicolon_separated_csv_is_sniffed(classify, tmp_path):
    rows = [["id", "headline", "price"], ["1", HEADLINES[0], "1,25"], ["2", "Profit, at last, rises", "2,50"]]
    with open(tmp_path / "in.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter=";").writerows(rows)
    code, err = classify(tmp_path / "in.csv", tmp_path / "out.csv", "--column", "headline")
    assert code == 0 and err[0] == "note: in.csv is read as ';'-separated (--delimiter to choose)", err
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as f:
        out = list(csv.reader(f, delimiter=";"))
    assert [row[:3] for row in out] == rows and out[0][3] == "label"
    # a ';' file forced to ',' says what it looks like
    code, err = classify(tmp_path / "in.csv", tmp_path / "out2.csv", "--column", "headline", "--delimiter", ",")
    assert code == 1 and err[0].endswith("(it looks ';'-separated: try --delimiter ';')"), err


# -- plain text: one text per line ------------------------------------------------------------------------
def test_txt_lines_are_scored_into_a_csv(classify, tmp_path):
    """A .txt is read as the page reads it: one text per line (\r\n too; a U+2028 stays inside its
    line); written as CSV with a `text` column, row N = line N. Windows-1252 is detected as for CSV."""
    lines = [HEADLINES[0], "", HEADLINES[1] + "\u2028continued", HEADLINES[2]]
    (tmp_path / "news.txt").write_bytes("\r\n".join(lines).encode() + b"\r\n")
    code, err = classify(tmp_path / "news.txt", tmp_path / "news.txt", "--force")
    assert code == 1 and err[-1].endswith("news.txt is written as CSV: give the output the extension .csv"), err
    code, err = classify(tmp_path / "news.txt", tmp_path / "news.csv")
    assert code == 0, err
    assert err == [f"Wrote {tmp_path / 'news.csv'}: 4 rows; 1 with an error (see the error column)"]
    assert (tmp_path / "news.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # a BOM, as the page's download
    with open(tmp_path / "news.csv", newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["text", *ADDED_7]
    assert [r[0] for r in rows[1:]] == lines
    assert rows[2][-1] == "text is empty" and {rows[1][1], rows[3][1], rows[4][1]} <= set(LABELS_7)

    (tmp_path / "desk.txt").write_bytes("Société Générale raises its dividend\n".encode("cp1252"))
    code, err = classify(tmp_path / "desk.txt", tmp_path / "desk.csv")
    assert code == 0 and err[0] == "note: desk.txt is not UTF-8 (line 1); read as Windows-1252 (--encoding to choose)"
    with open(tmp_path / "desk.csv", newline="", encoding="utf-8-sig") as f:
        assert list(csv.reader(f))[1][0] == "Société Générale raises its dividend"
    code, err = classify(tmp_path / "news.txt", tmp_path / "other.csv", "--column", "headline")
    assert code == 1 and err == ["Error: news.txt is lines of text, not a table: leave out --column"]


# -- workbooks written by other tools ------------------------------------------------------------------------------
def _rewrite_sheet_xml(path: Path, change) -> None:
    """Edit the first sheet's XML inside the .xlsx (as other tools write it)."""
    with zipfile.ZipFile(path) as z:
        entries = {name: z.read(name) for name in z.namelist()}
    sheet = "xl/worksheets/sheet1.xml"
    entries[sheet] = change(entries[sheet].decode()).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)


RAGGED = [["Date", "Headline", "Source"], ["2024-01-02", HEADLINES[0]], ["2024-01-03", HEADLINES[1], "wire", "extra"],
          ["2024-01-04"], ["2024-01-05", HEADLINES[2], "desk"]]


@pytest.mark.parametrize("dimension", ["wrong", "missing"])
def test_xlsx_with_a_wrong_or_missing_dimension_keeps_every_row(dimension, classify, tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    for row in RAGGED:
        book.active.append(row)
    book.save(tmp_path / "in.xlsx")
    _rewrite_sheet_xml(tmp_path / "in.xlsx", lambda xml: re.sub(
        r'<dimension ref="[^"]*"\s*/>', '<dimension ref="A1:B2"/>' if dimension == "wrong" else "", xml))
    code, err = classify(tmp_path / "in.xlsx", tmp_path / "out.xlsx", "--column", "Headline")
    assert code == 0 and err[-1] == f"Wrote {tmp_path / 'out.xlsx'}: 4 rows; 1 with an error (see the error column)", err
    rows = [list(r) for r in openpyxl.load_workbook(tmp_path / "out.xlsx").active.iter_rows(values_only=True)]
    assert rows[0] == ["Date", "Headline", "Source", None, *ADDED_7]  # the widest row's extra field has room
    assert [r[:4] for r in rows[1:]] == [(r + [None] * 4)[:4] for r in RAGGED[1:]]  # every row, padded
    assert [r[4] in LABELS_7 for r in rows[1:]] == [True, True, False, True]
    assert rows[3][-1] == "text is empty"


def test_xlsx_formula_without_a_saved_value_is_said(classify, tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["Company", "Headline"])
    book.active.append(["Hooli", HEADLINES[0]])
    book.active.append(["Globex", '=A3&" raises full-year guidance"'])  # written by a program: no value saved
    book.save(tmp_path / "in.xlsx")
    code, err = classify(tmp_path / "in.xlsx", tmp_path / "out.xlsx", "--column", "Headline")
    assert code == 0, err
    rows = list(openpyxl.load_workbook(tmp_path / "out.xlsx").active.iter_rows(values_only=True))
    assert rows[1][2] in LABELS_7
    assert rows[2][-1].startswith("formula without a saved value (open the workbook in Excel and save it")


def _workbook_with_formulas_and_formats(path: Path, headlines: list[str]) -> None:
    """A workbook as a program writes it: a formula column never computed (no saved values), a formula
    on another sheet, dates, percent and currency formats, a bold header, a wide column, a tall row,
    frozen panes, conditional formatting, data validation, a defined name, merged cells, a text that
    reads like a formula, and a sheet after the scored one."""
    import datetime

    import openpyxl
    from openpyxl.formatting.rule import CellIsRule
    from openpyxl.styles import Font, PatternFill
    from openpyxl.workbook.defined_name import DefinedName
    from openpyxl.worksheet.datavalidation import DataValidation

    book = openpyxl.Workbook()
    news = book.active
    news.title = "News"
    news.append(["Date", "Headline", "Change", "Price", "Double", "Rated"])
    for i, headline in enumerate(headlines, start=2):
        news.append([datetime.datetime(2024, 1, i, 9, 30), headline, 0.125 * i, 1234.5 * i, f"=D{i}*2",
                     f"=D{i}*Rates!$A$1"])
        news[f"A{i}"].number_format = "yyyy-mm-dd hh:mm"
        news[f"C{i}"].number_format = "0.00%"
        news[f"D{i}"].number_format = '"$"#,##0.00'
    news["A1"].font = Font(bold=True)
    news.column_dimensions["B"].width = 48
    news.freeze_panes = "B2"
    news["E1"].value = "=not a formula"
    news["E1"].data_type = "s"
    news.row_dimensions[2].height = 30
    news.conditional_formatting.add("C2:C9", CellIsRule(operator="greaterThan", formula=["0.3"],
                                                        fill=PatternFill("solid", start_color="FFFF0000")))
    news.add_data_validation(validation := DataValidation(type="decimal", operator="between", formula1="0",
                                                          formula2="1"))
    validation.add("C2:C9")
    book.defined_names["Rate"] = DefinedName("Rate", attr_text="Rates!$A$1")
    rates = book.create_sheet("Rates")
    rates.append([1.5, None, "merged"])
    rates.append(["=A1*2"])
    rates.merge_cells("C1:D1")
    book.save(path)


def _assert_formulas_and_formats_kept(path: Path, rows: int, added: list[str]) -> list[list]:
    """The input's cells, formulas and formats are in the output; the added columns follow. The output's rows."""
    import datetime

    import openpyxl

    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["News", "Rates"]
    news = book["News"]
    values = [[c.value for c in row] for row in news.iter_rows()]
    assert values[0] == ["Date", "Headline", "Change", "Price", "=not a formula", "Rated", *added]
    assert news["E1"].data_type == "s" and news["A1"].font.b
    for i in range(2, 2 + rows):
        assert values[i - 1][4:6] == [f"=D{i}*2", f"=D{i}*Rates!$A$1"]  # formulas, kept as formulas
        assert news[f"E{i}"].data_type == "f"
        assert values[i - 1][0] == datetime.datetime(2024, 1, i, 9, 30)
        assert news[f"A{i}"].number_format == "yyyy-mm-dd hh:mm" and news[f"A{i}"].is_date
        assert news[f"C{i}"].number_format == "0.00%" and news[f"D{i}"].number_format == '"$"#,##0.00'
        assert values[i - 1][2:4] == [0.125 * i, 1234.5 * i]
    assert news.column_dimensions["B"].width == 48 and news.row_dimensions[2].height == 30
    assert news.freeze_panes == "B2"
    assert [(str(cf.sqref), [r.dxf.fill.fgColor.rgb for r in cf.rules]) for cf in news.conditional_formatting] == \
        [("C2:C9", ["FFFF0000"])]
    validations = news.data_validations.dataValidation
    assert [(str(v.sqref), v.formula1, v.formula2) for v in validations] == [("C2:C9", "0", "1")]
    assert book.defined_names["Rate"].attr_text == "Rates!$A$1"
    assert [[c.value for c in row] for row in book["Rates"].iter_rows()] == [[1.5, None, "merged", None],
                                                                              ["=A1*2", None, None, None]]
    assert [str(r) for r in book["Rates"].merged_cells.ranges] == ["C1:D1"]
    return values


def test_xlsx_output_keeps_formulas_and_formats(tmp_path):
    """The writer alone (no model): formulas never computed stay formulas; number formats, dates, styles,
    sizes, formatting rules, validation, names, merged cells and the other sheets stay; the results go in
    new columns."""
    from finsent_local.jobs.tables import RowResult, open_table, result_columns

    _workbook_with_formulas_and_formats(tmp_path / "in.xlsx", ["Profit rises", "Loss widens"])
    table = open_table(tmp_path / "in.xlsx", "Headline")
    assert table.notes == [] and table.count_rows() == 2
    added = result_columns(("negative", "neutral", "positive"))
    results = [RowResult("positive", 0.9, (0.05, 0.05, 0.9)), RowResult(error="text is empty")]
    table.write_scored(tmp_path / "out.xlsx", iter(results), added)
    values = _assert_formulas_and_formats_kept(tmp_path / "out.xlsx", 2, added)
    assert values[1][6:] == ["positive", 0.9, 0.05, 0.05, 0.9, None]
    assert values[2][6:] == [None, None, None, None, None, "text is empty"]


def test_xlsx_parts_the_output_cannot_keep_are_named(tmp_path):
    import openpyxl
    from openpyxl.chart import BarChart, Reference
    from openpyxl.comments import Comment

    from finsent_local.jobs.tables import open_table

    book = openpyxl.Workbook()
    for row in [["Headline", "n"], ["Profit rises", 1], ["Loss widens", 2]]:
        book.active.append(row)
    book.active["A2"].comment = Comment("checked", "desk")
    book.active["A3"].hyperlink = "https://example.com/news/1"
    chart = BarChart()
    chart.add_data(Reference(book.active, min_col=2, min_row=1, max_row=3), titles_from_data=True)
    book.active.add_chart(chart, "D2")
    book.save(tmp_path / "in.xlsx")
    assert open_table(tmp_path / "in.xlsx", "Headline").notes == [
        "note: the output workbook keeps every sheet's cells, formulas and formats, but not the input's charts, "
        "images and shapes, comments (notes), links to web pages and files (hyperlinks)"]


def test_xlsx_classified_keeps_formulas_and_formats(classify, tmp_path):
    _workbook_with_formulas_and_formats(tmp_path / "in.xlsx", HEADLINES[:3])
    code, err = classify(tmp_path / "in.xlsx", tmp_path / "out.xlsx", "--column", "Headline")
    assert code == 0 and err[-1] == f"Wrote {tmp_path / 'out.xlsx'}: 3 rows", err
    values = _assert_formulas_and_formats_kept(tmp_path / "out.xlsx", 3, ADDED_7)
    assert [row[6] in LABELS_7 for row in values[1:]] == [True] * 3


def test_xlsx_columns_by_header_in_any_case_or_letter_say_which(classify, tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "News"
    for row in [["ID", "Headline"], [7, HEADLINES[0]], [8, HEADLINES[1]]]:
        book.active.append(row)
    book.create_sheet("Notes").append(["kept?"])
    book.save(tmp_path / "in.xlsx")
    code, err = classify(tmp_path / "in.xlsx", tmp_path / "a.xlsx", "--column", "headline")
    assert code == 0 and "note: --column 'headline' is the column headed 'Headline'" in err, err
    assert not [line for line in err if "output workbook" in line], err  # nothing of the input is lost
    assert [list(r) for r in openpyxl.load_workbook(tmp_path / "a.xlsx")["Notes"].iter_rows(values_only=True)] \
        == [["kept?"]]
    # "id" is also a column letter (the 238th): the header "ID" wins, and it is said
    code, err = classify(tmp_path / "in.xlsx", tmp_path / "b.xlsx", "--column", "id")
    assert code == 0 and "note: --column 'id' is the column headed 'ID'" in err, err
    rows = list(openpyxl.load_workbook(tmp_path / "b.xlsx").active.iter_rows(values_only=True))
    assert [r[-1] for r in rows[1:]] == ["text must be a string"] * 2  # the numbers in ID, not 238 empty cells
    code, err = classify(tmp_path / "in.xlsx", tmp_path / "c.xlsx", "--column", "B")
    assert code == 0 and "note: --column B is column B of sheet 'News' of in.xlsx, headed 'Headline'" in err, err
    code, err = classify(tmp_path / "in.xlsx", tmp_path / "d.xlsx", "--column", "zz")
    assert code == 1 and err == ["Error: no column 'zz' in sheet 'News' of in.xlsx; its columns: 'ID', 'Headline' "
                                 "(or a letter, e.g. B)"]


# -- durability ---------------------------------------------------------------------------------------------------
def test_output_is_on_disk_before_the_saved_results_go(tmp_path, monkeypatch):
    """The README promises safety across a power cut: the output's data, then its name in the folder,
    must reach the disk before the saved results are deleted. Which file each fsync flushed is read
    from the real calls (recorded, then passed on to the real os.fsync)."""
    import os
    import shutil

    from finsent_local.jobs import file_job
    from finsent_local.jobs.file_job import JobIdentity, WorkFolder, write_output
    from finsent_local.jobs.tables import RowResult, open_table, result_columns

    (tmp_path / "in.csv").write_text("id,headline\n1,Profit rises\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    table = open_table(tmp_path / "in.csv", "headline")
    work = WorkFolder(out)
    work.claim(JobIdentity.of(tmp_path / "in.csv", "headline", None, "3", "sha", "card"))
    work.append([RowResult("positive", 0.9, (0.05, 0.05, 0.9))])
    events = []
    real_fsync, real_replace, real_rmtree = os.fsync, os.replace, shutil.rmtree

    def fsync(fd):
        stat = os.fstat(fd)
        events.append(("fsync", "folder" if os.path.isdir(f"/proc/self/fd/{fd}") else
                       os.path.basename(os.readlink(f"/proc/self/fd/{fd}")), stat.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", Path(b).name)), real_replace(a, b)))
    monkeypatch.setattr(file_job.shutil, "rmtree",
                        lambda p, **kw: (events.append(("rmtree", Path(p).name)), real_rmtree(p, **kw)))
    write_output(table, work, out, result_columns(("negative", "neutral", "positive")))
    names = [e[:2] for e in events]
    written = names.index(("fsync", "output.csv"))  # the file in the work folder, before its rename
    assert names.index(("replace", "out.csv")) > written
    assert ("fsync", "folder") in names[names.index(("replace", "out.csv")):]
    assert names[-1] == ("rmtree", ".out.csv.finsent-partial")
    assert out.read_text().splitlines()[1].startswith("1,Profit rises,positive,0.9,")
