"""What openpyxl does not write back when it saves a workbook it loaded: the package parts it drops
(Power Query connections, custom XML, the data model, ActiveX, embedded objects, VBA in an .xlsx, pivot
caches, slicers, ...) and what it loses inside parts it keeps (shapes, sparklines, extensions), named for
the user, who keeps them in freeze's backup.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path


# What openpyxl loses inside parts it does write back: found in the file, named in the report.
_DROPPED_CONTENT = (
    (re.compile(r"xl/drawings/drawing\d+\.xml"), (b"<xdr:sp>", b"<xdr:sp "), "shapes and text boxes"),
    (re.compile(r"xl/worksheets/sheet\d+\.xml"), (b"sparklineGroups",), "sparklines"),
    (re.compile(r"xl/worksheets/sheet\d+\.xml"), (b"<extLst",), "newer formatting and validation kept in extensions"),
)

# Parts of a workbook package, by what they hold (openpyxl renames some: Excel's xl/comments1.xml is its
# xl/comments/comment1.xml). A kind the original has and the written file has not is named in the report.
_PART_KINDS = (
    (r"xl/connections\.xml|xl/queryTables/", "data connections and queries (Power Query)"),
    (r"customXml/", "custom XML parts"),
    (r"xl/model/", "data model (Power Pivot)"),
    (r"xl/activeX/", "ActiveX controls"),
    (r"xl/embeddings/", "embedded objects"),
    (r"xl/vbaProject\.bin|xl/vbaProjectSignature", "VBA macros"),
    (r"xl/pivotCache/", "pivot caches"),
    (r"xl/pivotTables/", "pivot tables"),
    (r"xl/slicers/|xl/slicerCaches/", "slicers"),
    (r"xl/timelines/|xl/timelineCaches/", "timelines"),
    (r"xl/ctrlProps/", "form controls"),
    (r"xl/richData/", "linked data types and pictures in cells"),
    (r"xl/threadedComments/|xl/persons/", "threaded comments (their first lines stay as notes)"),
    (r"xl/metadata\.xml", "dynamic-array formulas (other than FinSent's: they become fixed Ctrl+Shift+Enter arrays)"),
    (r"xl/externalLinks/", "links to other workbooks"),
    (r"xl/webextensions/", "Office add-in task panes and settings"),
    (r"xl/tables/", "tables"),
    (r"xl/charts/chart\d*\.xml", "charts"),
    (r"xl/charts/(?:style|colors)\d*\.xml", "chart styles and colour sets"),
    (r"xl/chartsheets/", "chart sheets"),
    (r"xl/dialogsheets/", "dialog sheets"),
    (r"xl/macrosheets/", "Excel 4 macro sheets"),
    (r"xl/drawings/drawing\d*\.xml", "drawings"),
    (r"xl/drawings/[^/]*\.vml", "legacy drawings (note boxes, controls)"),
    (r"xl/media/", "pictures"),
    (r"xl/comments\d*\.xml|xl/comments/", "notes"),
    (r"xl/printerSettings/", "printer settings"),
    (r"customUI/", "ribbon customisations"),
    (r"_xmlsignatures/", "digital signatures"),
    (r"docProps/thumbnail\.", "thumbnail preview"),
    (r"xl/worksheets/", "worksheets"),
)
_PART_KIND_PATTERNS = tuple((re.compile(pattern, re.IGNORECASE), what) for pattern, what in _PART_KINDS)
# Made again from the rest by whoever writes the package (relationships, content types) or by Excel
# when it opens the file (the calculation chain): their absence loses nothing.
_REBUILT_PARTS = re.compile(r"\[Content_Types\]\.xml$|(?:.*/)?_rels/|xl/calcChain\.xml$", re.IGNORECASE)


def _part_kind(name: str) -> str | None:
    return next((what for pattern, what in _PART_KIND_PATTERNS if pattern.match(name)), None)


def _parts(book_file) -> list[str]:
    with zipfile.ZipFile(book_file) as z:
        return [name for name in z.namelist() if not name.endswith("/") and not _REBUILT_PARTS.match(name)]


def dropped_parts(path: Path, written: Path | None = None) -> list[str]:
    """What the workbook at `path` holds that openpyxl does not write back, in words: every part of its
    package with no counterpart in `written` (the file openpyxl wrote from it; default: the workbook
    loaded and saved to memory), grouped by what it holds (data connections, custom XML, ActiveX...;
    "other parts: ..." for the rest), and what it loses inside the parts it keeps (shapes, sparklines...)."""
    if written is None:
        import io

        from openpyxl import load_workbook

        written = io.BytesIO()
        book = load_workbook(path, keep_vba=path.suffix.lower() == ".xlsm")
        book.save(written)
        if book.vba_archive is not None:  # openpyxl's copy of the macro parts, a zip it leaves open
            book.vba_archive.close()
    original, kept = _parts(path), _parts(written)
    kept_kinds = {_part_kind(name) for name in kept}
    kept_shapes = {re.sub(r"\d+", "#", name.lower()) for name in kept}
    found: list[str] = []
    others: list[str] = []
    for name in original:
        kind = _part_kind(name)
        if kind is None:
            if re.sub(r"\d+", "#", name.lower()) not in kept_shapes:
                others.append(name)
        elif kind not in kept_kinds and kind not in found:
            found.append(kind)
    with zipfile.ZipFile(path) as z:
        for name in original:
            for pattern, markers, what in _DROPPED_CONTENT:
                if what not in found and pattern.match(name) and any(m in z.read(name) for m in markers):
                    found.append(what)
    if others:
        found.append("other parts: " + ", ".join(others[:5]) + (f", ... ({len(others)} in all)" if len(others) > 5 else ""))
    return found
