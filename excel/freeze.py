"""Freeze as values: replace FinSent formulas by the values they show, so results outlive the server
(a workbook mailed to a colleague, opened on a Mac, or recalculated after the server has stopped).

Two ways in Python (the Office add-in has its own button, in addin/functions.js):
- `freeze_workbook(path, ...)`, behind `finsent excel freeze BOOK.xlsx`: a saved workbook, rewritten with
  openpyxl. Each FinSent formula is computed again (by the running server, or by the model itself) from
  the cells it names, and the values are written in its place (the whole spill of a range formula);
  every other cell, formula, sheet and format is kept, as far as openpyxl keeps them (`dropped_parts`).
- `freeze_selection(range)`, behind the xlwings macro FINSENT_FREEZE_SELECTION: the selection in the
  open workbook, each FinSent formula replaced by what Excel shows (the whole spill area).

Formulas this recognises (`is_finsent_formula`): =FINSENT, =FINSENT_SCORE, =FINSENT_PROBS, =FINSENT_DOC,
=FINSENT_DOC_SCORE, with the add-in's LOCAL. namespace or the prefixes files store them with, and the
documented WEBSERVICE(".../v1/label?...&text="&ENCODEURL(A2)) form (alone or inside IF(A2="","",...)).
A formula that is more than such a call (=IFERROR(FINSENT(A2),""), =FINSENT(A2&" "&B2),
=ROUND(FINSENT_SCORE(A2),2)...) is computed as Excel computes it (`_Computed`), for the functions in
`_FUNCTIONS`; any other stays a formula, with the reason (`left_summary` groups them).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from finsent_local.excel.cells import PREFIX, function_cells

# The FinSent functions as typed, and as workbooks store them: LOCAL. (the add-in's namespace),
# _xludf. (a function Excel did not know when it saved), _xldudf_LOCAL_ (an add-in function in a file).
_PREFIXES = r"(?:LOCAL\.|_xludf\.|_xldudf_LOCAL_)?"
_NAME = r"(FINSENT(?:_SCORE|_PROBS|_DOC_SCORE|_DOC)?)"
FUNCTION_CALL = re.compile(r"(?<![\w.])" + _PREFIXES + _NAME + r"\s*\(", re.IGNORECASE)
WEBSERVICE_LABEL = re.compile(r"(?<![\w.])(?:_xlfn\.)?WEBSERVICE\s*\(\s*\"[^\"]*/v1/label\?", re.IGNORECASE)

# Values that mean "not answered yet": xlwings' async placeholder, the add-in's and Excel's own.
PENDING_VALUES = ("#N/A waiting", "#GETTING_DATA", "#BUSY!")
# Messages of a request that failed this time (the cell's answer is not known), as opposed to an answer
# about the text itself (not text, empty, too long...): freezing them would make a passing failure permanent.
TRANSIENT_MESSAGES = ("did not answer in time", "server error (HTTP", "unexpected answer from", "server not running",
                      "server not reachable", "internal error", "no result", "no answer in time", "retry shortly",
                      "try again shortly", "could not be loaded")


def is_transient(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX) and any(m in value for m in TRANSIENT_MESSAGES)


def is_finsent_formula(formula) -> bool:
    """Whether a cell's formula calls a FinSent function (or the label WEBSERVICE) anywhere in it."""
    if not isinstance(formula, str) or not formula.startswith("="):
        return False
    return bool(FUNCTION_CALL.search(formula) or WEBSERVICE_LABEL.search(formula))


def is_pending(value) -> bool:
    return isinstance(value, str) and value.strip().startswith(PENDING_VALUES)


# -- one formula, read: which function, which cells, which scheme -----------------------------------------
_REF = r"(?:(?:'(?:[^']|'')+'|[A-Za-z_][\w.]*)!)?\$?[A-Za-z]{1,3}\$?\d+(?::\$?[A-Za-z]{1,3}\$?\d+)?"
_STRING = r'"(?:[^"]|"")*"'
_ARG = rf"\s*({_REF}|{_STRING}|-?\d+(?:\.\d+)?)\s*"
CALL_FORMULA = re.compile(rf"^=\s*{_PREFIXES}{_NAME}\(({_ARG})(?:,({_ARG}))?\)\s*$", re.IGNORECASE)
WEBSERVICE_FORMULA = re.compile(
    r"^=\s*(?:IF\(\s*(?P<blank>" + _REF + r')\s*=\s*""\s*,\s*""\s*,\s*)?(?:_xlfn\.)?WEBSERVICE\(\s*"(?P<url>[^"]*/v1/label\?'
    r'[^"]*)"\s*&\s*(?:_xlfn\.)?ENCODEURL\(\s*(?P<ref>' + _REF + r")\s*\)\s*\)\s*(?(blank)\))\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class FinSentCall:
    """A formula this module can compute: =NAME(text, scheme), each argument a reference or a constant."""

    function: str  # FINSENT, FINSENT_SCORE, ... (the WEBSERVICE form: FINSENT)
    text: str  # a reference (A2, A2:A9, 'Sheet 2'!B3) or a constant ("...", 42)
    scheme: str | None  # likewise, or None when omitted
    webservice: bool = False  # the WEBSERVICE form: the text goes through ENCODEURL (a number as its text)


def read_call(formula: str) -> FinSentCall | None:
    """The call a FinSent formula makes, or None when it is not a single call of simple arguments
    (=IFERROR(FINSENT(A2),""), =FINSENT(A2&B2)...: those are computed by _Computed)."""
    found = CALL_FORMULA.match(formula)
    if found:
        scheme = found.group(4)
        return FinSentCall(found.group(1).upper(), found.group(3).strip(), scheme.strip() if scheme else None)
    found = WEBSERVICE_FORMULA.match(formula)
    if found and (found.group("blank") is None or _same_ref(found.group("blank"), found.group("ref"))):
        query = parse_qs(urlsplit(found.group("url")).query)
        return FinSentCall("FINSENT", found.group("ref"), f'"{query.get("scheme", ["7"])[0]}"', webservice=True)
    return None


def _same_ref(a: str, b: str) -> bool:
    return a.replace("$", "").upper() == b.replace("$", "").upper()


# -- formulas around FinSent calls: =IFERROR(FINSENT(A2),""), =IF(A2="","",FINSENT(A2)), =FINSENT(A2&B2) -----
# The other FinSent formulas are read into a small tree and computed as Excel computes them, for the
# functions and operators in _FUNCTIONS and _BINARY. The FinSent functions answer every problem with a
# `#FINSENT! ...` text, never an Excel error, so IFERROR and IFNA around them keep that text, as Excel shows
# it; WEBSERVICE turns the server's refusal (HTTP 400) and its empty answer into #VALUE!, which they catch.
class ExcelError(str):
    """An Excel error value (#N/A, #VALUE!...), apart from a text that reads the same."""


VALUE_ERROR, DIV0, NUM_ERROR = ExcelError("#VALUE!"), ExcelError("#DIV/0!"), ExcelError("#NUM!")


class LeftAsFormula(Exception):
    """Why a formula stays a formula, worded to follow a count: "2 using OFFSET, which freeze does not compute"."""


_TOKEN = re.compile(r"""\s*(?:
    (?P<string>"(?:[^"]|"")*")
  | (?P<error>\#(?:NULL!|DIV/0!|VALUE!|REF!|NAME\?|NUM!|N/A|GETTING_DATA|SPILL!|CALC!|BUSY!))
  | (?P<ref>(?:(?:'(?:[^']|'')+'|[A-Za-z_][\w.]*)!)?\$?[A-Za-z]{1,3}\$?\d+(?::\$?[A-Za-z]{1,3}\$?\d+)?)(?![\w.(!:])
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<function>[A-Za-z_][\w.]*)\s*\(
  | (?P<name>[A-Za-z_\\][\w.]*(?:![\w.$:]+)?)
  | (?P<op><>|<=|>=|[-+*/^&=<>%(),])
  | (?P<other>\S)
)""", re.VERBOSE)
_BINARY = (("=", "<>", "<", ">", "<=", ">="), ("&",), ("+", "-"), ("*", "/"), ("^",))  # loosest first
_FUNCTION_PREFIX = re.compile(r"^(?:_xlfn\.|_xlws\.|_xludf\.|LOCAL\.|_xldudf_LOCAL_)+", re.IGNORECASE)
FINSENT_FUNCTIONS = ("FINSENT", "FINSENT_SCORE", "FINSENT_PROBS", "FINSENT_DOC", "FINSENT_DOC_SCORE")
_UNREADABLE = "that freeze cannot read"


def parse_formula(formula: str):
    """A formula as a tree of tuples: ("value", v), ("ref", "A2"), ("call", NAME, [args]), ("op", op,
    left, right), ("neg", x), ("percent", x). Raises LeftAsFormula for what it does not read."""
    tokens = []
    for found in _TOKEN.finditer(formula[1:] if formula.startswith("=") else formula):
        kind = found.lastgroup
        if kind is None:
            continue
        if kind == "other":
            raise LeftAsFormula("with an array constant ({...}), which freeze does not compute"
                                if found.group(kind) == "{" else _UNREADABLE)
        tokens.append((kind, found.group(kind)))
    tokens.append((None, None))
    position = 0

    def take():
        nonlocal position
        position += 1
        return tokens[position - 1]

    def expression(level=0):
        if level == len(_BINARY):
            return unary()
        left = expression(level + 1)
        while tokens[position][0] == "op" and tokens[position][1] in _BINARY[level]:
            left = ("op", take()[1], left, expression(level + 1))
        return left

    def unary():
        if tokens[position] in (("op", "-"), ("op", "+")):
            sign = take()[1]
            return ("neg", unary()) if sign == "-" else unary()
        node = primary()
        while tokens[position] == ("op", "%"):
            take()
            node = ("percent", node)
        return node

    def primary():
        kind, value = take()
        if kind == "string":
            return ("value", value[1:-1].replace('""', '"'))
        if kind == "number":
            return ("value", float(value))
        if kind == "error":
            return ("value", ExcelError(value.upper()))
        if kind == "ref":
            return ("ref", value)
        if kind == "name" and value.upper() in ("TRUE", "FALSE"):
            return ("value", value.upper() == "TRUE")
        if kind == "name":
            raise LeftAsFormula(f"with a defined name or whole column ({value}), which freeze does not look up")
        if kind == "function":
            name, args = _FUNCTION_PREFIX.sub("", value).upper(), []
            if tokens[position] == ("op", ")"):
                take()
                return ("call", name, args)
            while True:
                empty = tokens[position] in (("op", ","), ("op", ")"))
                args.append(("value", None) if empty else expression())
                separator = take()
                if separator == ("op", ")"):
                    return ("call", name, args)
                if separator != ("op", ","):
                    raise LeftAsFormula(_UNREADABLE)
        if (kind, value) == ("op", "("):
            node = expression()
            if take() != ("op", ")"):
                raise LeftAsFormula(_UNREADABLE)
            return node
        raise LeftAsFormula(_UNREADABLE)

    tree = expression()
    if tokens[position][0] is not None:
        raise LeftAsFormula(_UNREADABLE)
    return tree


def _walk(node):
    yield node
    if node[0] == "call":
        for arg in node[2]:
            yield from _walk(arg)
    elif node[0] == "op":
        yield from _walk(node[2])
        yield from _walk(node[3])
    elif node[0] in ("neg", "percent"):
        yield from _walk(node[1])


def _is_service_call(node) -> bool:
    return node[0] == "call" and (node[1] in FINSENT_FUNCTIONS or node[1] == "WEBSERVICE")


# -- Excel's conversions --------------------------------------------------------------------------------------
def number_text(value) -> str:
    """A number as Excel turns it into text (ENCODEURL, &): General format, 15 significant digits
    (42 -> "42", 3.5 -> "3.5", 1/3 -> "0.333333333333333", 1E+20)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    shown = f"{value:.15g}"
    if "e" in shown:
        mantissa, exponent = shown.split("e")
        shown = f"{mantissa}E{int(exponent):+03d}"
    return shown


def _serial(value):
    """Dates and times as Excel holds them: serial numbers."""
    from openpyxl.utils.datetime import to_excel

    return to_excel(value)


def as_text(value) -> str:
    """What Excel makes of a value where it needs text (ENCODEURL, &, UPPER...): a number in General
    format, a date as its serial number, TRUE/FALSE, blank as ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        value = _serial(value)
    if isinstance(value, (int, float)):
        return number_text(value)
    return str(value)


def _as_number(value):
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return _serial(value)
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value.strip()) if value.strip() else VALUE_ERROR
    except ValueError:
        return VALUE_ERROR


def _as_bool(value):
    if value is None:
        return False
    if isinstance(value, (bool, int, float)):
        return bool(value)
    if isinstance(value, str) and value.strip().upper() in ("TRUE", "FALSE"):
        return value.strip().upper() == "TRUE"
    return VALUE_ERROR


def _first_error(*values):
    return next((v for v in values if isinstance(v, ExcelError)), None)


def _compare(op: str, a, b):
    """Excel's = <> < > <= >=: texts without case, blank as "", 0 or FALSE, numbers < texts < TRUE/FALSE."""
    error = _first_error(a, b)
    if error:
        return error

    def rank(v):
        return 2 if isinstance(v, bool) else 1 if isinstance(v, str) else 0

    def plain(v):
        if isinstance(v, (dt.datetime, dt.date, dt.time)):
            return _serial(v)
        return v.casefold() if isinstance(v, str) else v

    if a is None and b is None:
        a = b = 0
    elif a is None:
        a = "" if isinstance(b, str) else (False if isinstance(b, bool) else 0)
    elif b is None:
        b = "" if isinstance(a, str) else (False if isinstance(a, bool) else 0)
    left, right = (rank(a), plain(a)), (rank(b), plain(b))
    return {"=": left == right, "<>": left != right, "<": left < right, ">": left > right, "<=": left <= right,
            ">=": left >= right}[op]


def _arithmetic(op: str, a, b):
    a, b = _as_number(a), _as_number(b)
    error = _first_error(a, b)
    if error:
        return error
    if op == "/" and b == 0:
        return DIV0
    try:
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if op == "/" else 0, "^": a ** b}[op]
    except (OverflowError, ZeroDivisionError, ValueError, TypeError):
        return NUM_ERROR


def _round(x, digits=0):
    """Excel's ROUND: halves away from zero, on the number as written (2.675 -> 2.68)."""
    from decimal import ROUND_HALF_UP, Decimal

    x, digits = _as_number(x), _as_number(digits)
    error = _first_error(x, digits)
    if error:
        return error
    return float(Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-int(digits)), rounding=ROUND_HALF_UP))


def _text_function(function):
    def apply(*values):
        return _first_error(*values) or function(*(as_text(v) for v in values))
    return apply


# Functions computed around FinSent calls: name -> (fewest arguments, most, function of the values).
# IF, IFERROR and IFNA take errors as values (the others pass the first error on).
_FUNCTIONS = {
    "IF": (2, 3, None),
    "IFERROR": (2, 2, lambda v, fallback: fallback if isinstance(v, ExcelError) else v),
    "IFNA": (2, 2, lambda v, fallback: fallback if v == "#N/A" and isinstance(v, ExcelError) else v),
    "ISERROR": (1, 1, lambda v: isinstance(v, ExcelError)),
    "ISERR": (1, 1, lambda v: isinstance(v, ExcelError) and v != "#N/A"),
    "ISNA": (1, 1, lambda v: isinstance(v, ExcelError) and v == "#N/A"),
    "ISBLANK": (1, 1, lambda v: v is None),
    "ISTEXT": (1, 1, lambda v: isinstance(v, str) and not isinstance(v, ExcelError)),
    "ISNUMBER": (1, 1, lambda v: isinstance(v, (int, float, dt.date, dt.time)) and not isinstance(v, bool)),
    "ISLOGICAL": (1, 1, lambda v: isinstance(v, bool)),
    "NOT": (1, 1, lambda v: _first_error(v) or (lambda b: b if isinstance(b, ExcelError) else not b)(_as_bool(v))),
    "TRIM": (1, 1, _text_function(lambda s: " ".join(p for p in s.split(" ") if p))),
    "UPPER": (1, 1, _text_function(str.upper)),
    "LOWER": (1, 1, _text_function(str.lower)),
    "LEN": (1, 1, _text_function(len)),
    "CONCATENATE": (1, 255, _text_function(lambda *s: "".join(s))),
    "CONCAT": (1, 254, _text_function(lambda *s: "".join(s))),
    "ENCODEURL": (1, 1, _text_function(lambda s: quote(s, safe=""))),
    "ROUND": (1, 2, _round),
    "ABS": (1, 1, lambda v: (lambda n: n if isinstance(n, ExcelError) else abs(n))(_as_number(v))),
}
_ERRORS_AS_VALUES = ("IF", "IFERROR", "IFNA", "ISERROR", "ISERR", "ISNA", "ISBLANK", "ISTEXT", "ISNUMBER", "ISLOGICAL")


class _Computed:
    """A FinSent formula other than a single call: its tree, the FinSent calls in it with their
    arguments' values (read before any request, so the texts can be asked together), then its value."""

    def __init__(self, formula: str, sheet_name: str, reading: "_Cells"):
        self.tree = parse_formula(formula)
        self.sheet_name, self.reading = sheet_name, reading
        self.calls: dict[int, tuple[str, object, object]] = {}  # id(node) -> (function, text, scheme)
        self.webservice: set[int] = set()  # ids of the calls made by WEBSERVICE (errors as #VALUE!)
        for node in _walk(self.tree):
            if node[0] == "call" and node[1] not in _FUNCTIONS and not _is_service_call(node):
                raise LeftAsFormula(f"using {node[1]}, which freeze does not compute")
        for node in _walk(self.tree):
            if _is_service_call(node):
                self._read_call(node)

    def _read_call(self, node) -> None:
        _, name, args = node
        if any(_is_service_call(inner) for arg in args for inner in _walk(arg)):
            raise LeftAsFormula("with a FinSent call inside another FinSent call's arguments")
        top = node is self.tree
        if name == "WEBSERVICE":
            if len(args) != 1:
                raise LeftAsFormula(_UNREADABLE)
            url = self._value(args[0])
            if isinstance(url, ExcelError) or "/v1/label?" not in as_text(url):
                raise LeftAsFormula("calling WEBSERVICE on another address than FinSent's /v1/label")
            query = parse_qs(urlsplit(as_text(url)).query, keep_blank_values=True)
            text = query["text"][0] if "text" in query else VALUE_ERROR
            self.calls[id(node)] = ("FINSENT", text, query.get("scheme", ["7"])[0])
            self.webservice.add(id(node))
            return
        if not 1 <= len(args) <= 2:
            raise LeftAsFormula(f"with {name} given {len(args)} arguments")
        if name == "FINSENT_PROBS" and not top:
            raise LeftAsFormula("with FINSENT_PROBS inside another function (its result is a table)")
        text_node = args[0]
        if text_node[0] == "ref" and ":" in text_node[1]:
            if not top:
                raise LeftAsFormula("with a FinSent call on a range inside another function")
            text, problem = self.reading.grid(self.sheet_name, text_node[1])
            if problem:
                raise LeftAsFormula(problem)
        else:
            text = self._value(text_node)
            if isinstance(text, ExcelError):
                text = str(text)  # as the functions see an error cell: "#FINSENT! the cell holds an error (#N/A)"
        scheme = self._value(args[1]) if len(args) == 2 else None
        self.calls[id(node)] = (name, text, str(scheme) if isinstance(scheme, ExcelError) else scheme)

    def needed(self) -> list[tuple[str, object, object]]:
        return list(self.calls.values())

    def values(self, source) -> list[list]:
        """The formula's value (a grid: a single call at the top gives its whole result)."""
        self.source = source
        if self.tree[0] == "call" and self.tree[1] in FINSENT_FUNCTIONS:
            return self._service(self.tree, whole=True)
        value = self._value(self.tree)
        return [[0 if value is None else str(value) if isinstance(value, ExcelError) else value]]

    def _service(self, node, whole=False):
        function, text, scheme = self.calls[id(node)]
        if id(node) in self.webservice and isinstance(text, ExcelError):
            return text
        grid = function_cells(function, text, "7" if scheme is None else scheme, self.source)
        grid = [[grid]] if isinstance(grid, str) else grid
        _raise_if_failed(grid)
        if whole:
            return grid
        value = grid[0][0]
        if id(node) in self.webservice and (value == "" or (isinstance(value, str) and value.startswith(PREFIX))):
            return VALUE_ERROR  # the server's empty answer or refusal
        return value

    def _value(self, node):
        kind = node[0]
        if kind == "value":
            return node[1]
        if kind == "ref":
            if ":" in node[1]:
                raise LeftAsFormula("with a range where one value is needed")
            value, problem = self.reading.value(self.sheet_name, node[1])
            if problem:
                raise LeftAsFormula(problem)
            return value
        if kind == "neg":
            return _arithmetic("*", -1, self._value(node[1]))
        if kind == "percent":
            return _arithmetic("/", self._value(node[1]), 100)
        if kind == "op":
            op, a, b = node[1], self._value(node[2]), self._value(node[3])
            if op == "&":
                return _first_error(a, b) or as_text(a) + as_text(b)
            return _compare(op, a, b) if op in _BINARY[0] else _arithmetic(op, a, b)
        name, args = node[1], node[2]
        if _is_service_call(node):
            return self._service(node)
        least, most, function = _FUNCTIONS[name]
        if not least <= len(args) <= most:
            raise LeftAsFormula(f"with {name} given {len(args)} arguments")
        if name == "IF":
            condition = _as_bool(self._value(args[0]))
            if isinstance(condition, ExcelError):
                return condition
            return self._value(args[1]) if condition else (self._value(args[2]) if len(args) == 3 else False)
        values = [self._value(arg) for arg in args]
        if name not in _ERRORS_AS_VALUES and _first_error(*values):
            return _first_error(*values)
        return function(*values)


def _raise_if_failed(grid) -> None:
    """A stopped server stops the freeze (FreezeError); a request that failed this time leaves the formula."""
    first = grid[0][0] if grid and grid[0] else None
    if isinstance(first, str) and first.startswith(PREFIX + "server not"):
        raise FreezeError(first[len(PREFIX):])
    failed = next((v for row in grid for v in row if is_transient(v)), None)
    if failed is not None:
        raise LeftAsFormula(f"whose request failed this time ({failed[len(PREFIX):]}; run freeze again)")


# -- a saved workbook ---------------------------------------------------------------------------------------
class FreezeError(Exception):
    """The workbook cannot be frozen (one line for the user); nothing was written."""


@dataclass
class FreezeReport:
    formulas: int = 0  # FinSent formulas replaced by values
    cells: int = 0  # cells written (a spilled range writes several)
    sheets: set = field(default_factory=set)
    left: list[tuple[str, str]] = field(default_factory=list)  # ("Sheet!C5", why), formulas kept as they were
    backup: Path | None = None
    dropped: list[str] = field(default_factory=list)  # what openpyxl does not keep (the backup has it)


WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
_ENCRYPTED_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")  # an OLE file: what Excel writes for a password-protected workbook


def left_summary(left: list[tuple[str, str]], places_shown: int = 5) -> str:
    """The formulas left as formulas, grouped by reason with their counts and a few cells each:
    "3 FinSent formulas left as formulas: 2 with ... (News!C2, C3); 1 using OFFSET, ... (News!B9)"."""
    groups: dict[str, list[str]] = {}
    for place, reason in left:
        groups.setdefault(reason, []).append(place)

    def places(cells: list[str]) -> str:
        shown, sheet = [], None
        for place in cells[:places_shown]:
            where, _, cell = place.rpartition("!")
            shown.append(cell if where == sheet else place)
            sheet = where
        return ", ".join(shown) + (", ..." if len(cells) > places_shown else "")

    one = len(left) == 1
    head = f"{len(left):,} FinSent formula{'' if one else 's'} left as {'a formula' if one else 'formulas'}"
    if len(groups) == 1:
        (reason, cells), = groups.items()
        return f"{head}, {reason}: {places(cells)}"
    return head + ": " + "; ".join(f"{len(cells):,} {reason} ({places(cells)})" for reason, cells in groups.items())


def _open_workbooks(path: Path):
    """(formulas, cached values) of a workbook, or a FreezeError saying why it cannot be read."""
    from openpyxl import load_workbook

    if not path.is_file():
        raise FreezeError(f"{path} not found")
    if path.suffix.lower() not in WORKBOOK_SUFFIXES:
        raise FreezeError(f"{path.name}: finsent excel freeze reads .xlsx and .xlsm workbooks (save it as .xlsx in "
                          "Excel first)")
    with open(path, "rb") as f:
        head = f.read(8)
    if head == _ENCRYPTED_MAGIC:
        raise FreezeError(f"{path.name} is password-protected: open it in Excel, remove the password (File > Info > "
                          "Protect Workbook > Encrypt with Password), save, and run this again")
    try:
        keep_vba = path.suffix.lower() == ".xlsm"
        return load_workbook(path, keep_vba=keep_vba), load_workbook(path, data_only=True, keep_vba=keep_vba)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise FreezeError(f"{path.name} is not a readable Excel workbook ({type(e).__name__}: {e})") from None


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


def backup_path(path: Path) -> Path:
    """BOOK.before-freeze.xlsx beside BOOK.xlsx (numbered when taken), so it still opens in Excel."""
    candidate = path.with_name(f"{path.stem}.before-freeze{path.suffix}")
    n = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}.before-freeze-{n}{path.suffix}")
        n += 1
    return candidate


NO_SAVED_VALUE = "reading a formula cell that has no saved value (open and save the workbook in Excel first)"


class _Cells:
    """Reads what a reference holds, as Excel passes it to a function: a cell's value, or a formula's
    saved value (None when the workbook was never calculated)."""

    def __init__(self, formulas_book, values_book):
        self.formulas_book = formulas_book
        self.values_book = values_book

    def grid(self, sheet_name: str, reference: str) -> tuple[list[list] | None, str | None]:
        """(values as rows, problem) of `reference` as seen from `sheet_name`."""
        from openpyxl.utils.cell import range_boundaries

        where, _, cells = reference.rpartition("!")
        sheet_name = where.strip("'").replace("''", "'") if where else sheet_name
        if sheet_name not in self.formulas_book.sheetnames:
            return None, f"naming a sheet that does not exist ({sheet_name!r})"
        min_col, min_row, max_col, max_row = range_boundaries(cells.replace("$", ""))
        formulas, values = self.formulas_book[sheet_name], self.values_book[sheet_name]
        rows = []
        for r in range(min_row, max_row + 1):
            row = []
            for c in range(min_col, max_col + 1):
                value = formulas.cell(r, c).value
                if _is_formula(value):
                    value = values.cell(r, c).value
                    if value is None:
                        return None, NO_SAVED_VALUE
                row.append(value)
            rows.append(row)
        return rows, None

    def value(self, sheet_name: str, reference: str):
        """(value, problem) of one cell, an error value as an ExcelError."""
        rows, problem = self.grid(sheet_name, reference)
        if problem:
            return None, problem
        where, _, cell = reference.rpartition("!")
        sheet_name = where.strip("'").replace("''", "'") if where else sheet_name
        cell = cell.replace("$", "")
        shown = self.formulas_book[sheet_name][cell]
        if _is_formula(shown.value):
            shown = self.values_book[sheet_name][cell]
        return (ExcelError(rows[0][0]) if shown.data_type == "e" else rows[0][0]), None

    def argument(self, sheet_name: str, argument: str | None):
        """(value, problem): a reference's grid (one cell: its value), a string or a number constant."""
        if argument is None:
            return None, None
        if argument.startswith('"'):
            return argument[1:-1].replace('""', '"'), None
        if re.fullmatch(r"-?\d+(?:\.\d+)?", argument):
            return float(argument), None
        rows, problem = self.grid(sheet_name, argument)
        if problem:
            return None, problem
        return (rows[0][0] if ":" not in argument else rows), None


def _is_formula(value) -> bool:
    from openpyxl.worksheet.formula import ArrayFormula

    return isinstance(value, ArrayFormula) or (isinstance(value, str) and value.startswith("="))


def _formula_text(value) -> str:
    from openpyxl.worksheet.formula import ArrayFormula

    text = value.text if isinstance(value, ArrayFormula) else value
    return text if text.startswith("=") else "=" + text


def _spill_area(cell) -> tuple[int, int, int, int]:
    """(first row, first column, last row, last column) the cell's formula fills: an array formula's
    ref, else the cell itself."""
    from openpyxl.utils.cell import range_boundaries
    from openpyxl.worksheet.formula import ArrayFormula

    if isinstance(cell.value, ArrayFormula) and cell.value.ref:
        min_col, min_row, max_col, max_row = range_boundaries(cell.value.ref.replace("$", ""))
        return min_row, min_col, max_row, max_col
    return cell.row, cell.column, cell.row, cell.column


def freeze_workbook(path: Path, output: Path | None, source, prefetch: Callable[[list[tuple[str, str, str]]], None]
                    = lambda needed: None) -> FreezeReport:
    """Replace every FinSent formula of the workbook at `path` by its values, computed by `source`
    (cells.ServerSource or cells.ModelSource). Written to `output`, or over `path` with the original
    kept as backup_path(path). `prefetch(needed)` gets every (kind, scheme, text) first, to ask them in
    few requests. Raises FreezeError, writing nothing, when the workbook cannot be read."""
    path = Path(path)
    formulas_book, values_book = _open_workbooks(path)
    reading = _Cells(formulas_book, values_book)
    report = FreezeReport()
    plans = []  # (sheet, cell, plan): a _Single call or a _Computed formula
    for sheet in formulas_book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if not _is_formula(cell.value):
                    continue
                formula = _formula_text(cell.value)
                if not is_finsent_formula(formula):
                    continue
                try:
                    call = read_call(formula)
                    plan = _Single(call, sheet.title, reading) if call else _Computed(formula, sheet.title, reading)
                except LeftAsFormula as e:
                    report.left.append((f"{sheet.title}!{cell.coordinate}", str(e)))
                    continue
                plans.append((sheet, cell, plan))
    prefetch(_needed_texts(call for _, _, plan in plans for call in plan.needed()))
    for sheet, cell, plan in plans:
        try:
            values = plan.values(source)
        except LeftAsFormula as e:
            report.left.append((f"{sheet.title}!{cell.coordinate}", str(e)))
            continue
        _write_values(sheet, cell, values, report)
    if not report.formulas and not report.left:
        raise FreezeError(f"{path.name} has no FinSent formulas: nothing to freeze")
    _save(formulas_book, path, output, report)
    return report


class _Single:
    """A formula that is one FinSent call on cells or constants (its whole spill written)."""

    def __init__(self, call: FinSentCall, sheet_name: str, reading: _Cells):
        self.call = call
        self.text, problem = reading.argument(sheet_name, call.text)
        self.scheme, scheme_problem = reading.argument(sheet_name, call.scheme)
        if problem or scheme_problem:
            raise LeftAsFormula(problem or scheme_problem)
        if call.webservice and not isinstance(self.text, (list, str)) and self.text is not None:
            self.text = as_text(self.text)  # ENCODEURL(42) sends "42", a date its serial number

    def needed(self) -> list[tuple[str, object, object]]:
        return [(self.call.function, self.text, self.scheme)]

    def values(self, source) -> list[list]:
        values = function_cells(self.call.function, self.text, "7" if self.scheme is None else self.scheme, source)
        values = [[values]] if isinstance(values, str) else values
        _raise_if_failed(values)
        return values


def _needed_texts(calls) -> list[tuple[str, str, str]]:
    """(kind, scheme, text) of every text the calls (function, text, scheme) ask about."""
    from finsent_local.excel.cells import as_grid, normalize_scheme

    needed = {}
    for function, text, scheme in calls:
        kind = "document" if function.startswith("FINSENT_DOC") else "text"
        scheme_name = normalize_scheme(scheme) if scheme is not None else "7"
        for row in as_grid(text)[0]:
            for value in row:
                if isinstance(value, str) and value.strip() and scheme_name:
                    needed[(kind, scheme_name, value)] = None
    return list(needed)


def _write_values(sheet, cell, values: list[list], report: FreezeReport) -> None:
    old_top, old_left, old_bottom, old_right = _spill_area(cell)
    bottom, right = cell.row + len(values) - 1, cell.column + max(len(r) for r in values) - 1
    for r in range(cell.row, bottom + 1):
        for c in range(cell.column, right + 1):
            inside_old = old_top <= r <= old_bottom and old_left <= c <= old_right
            if not inside_old and (r, c) != (cell.row, cell.column) and sheet.cell(r, c).value not in (None, ""):
                report.left.append((f"{sheet.title}!{cell.coordinate}", "whose result would cover cells that hold "
                                    "something else"))
                return
    for r in range(old_top, old_bottom + 1):  # the old spill's cached values, where the new result is smaller
        for c in range(old_left, old_right + 1):
            sheet.cell(r, c).value = None
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            sheet.cell(cell.row + i, cell.column + j).value = None if value == "" else value
            report.cells += 1
    report.formulas += 1
    report.sheets.add(sheet.title)


def _save(book, path: Path, output: Path | None, report: FreezeReport) -> None:
    target = Path(output) if output is not None else path
    partial = target.with_name(f".{target.name}.finsent-partial")
    try:
        book.save(partial)
        report.dropped = dropped_parts(path, partial)
        if output is None:
            report.backup = backup_path(path)
            shutil.copy2(path, report.backup)
        os.replace(partial, target)
    except OSError as e:
        raise FreezeError(f"cannot write {target}: {e.strerror or e}") from None
    finally:
        partial.unlink(missing_ok=True)


# -- the open workbook (the xlwings macro) --------------------------------------------------------------------
def freeze_selection(selection) -> str:
    """Replace the FinSent formulas in an xlwings Range (the selection) by the values Excel shows; a
    formula that spills, or an array formula (Ctrl+Shift+Enter), is replaced with its whole area. Every
    check comes before any write: while a FinSent cell is still waiting for its result, nothing is
    changed. Returns the message for the user."""
    anchors, waiting = {}, []
    for cell in formula_cells(selection):
        formula = cell.formula2 if hasattr(cell, "formula2") else cell.formula
        if not is_finsent_formula(formula):
            continue
        area = spill_area_of(cell)
        if any(is_pending(v) for row in _as_rows(area.options(ndim=2, err_to_str=True).value) for v in row):
            waiting.append(cell.address)
        anchors.setdefault(area.address, area)
    if waiting:
        one, more = len(waiting) == 1, ", ..." if len(waiting) > 3 else ""
        return (f"Nothing was frozen: {len(waiting)} FinSent {'cell is' if one else 'cells are'} still waiting for "
                f"{'its result' if one else 'their results'} ({', '.join(waiting[:3])}{more}). Try again when "
                f"{'it has' if one else 'they have'} filled in.")
    if not anchors:
        return "No FinSent formulas in the selection."
    for area in anchors.values():
        area.value = area.options(ndim=2).value  # values over the formula (and its spill)
    return f"Froze {len(anchors)} FinSent formula{'' if len(anchors) == 1 else 's'} into values."


XL_CELL_TYPE_FORMULAS = -4123  # Excel's xlCellTypeFormulas


def formula_cells(selection) -> list:
    """The cells of the selection that hold a formula, in every area of it (Ctrl+click selections),
    asked of Excel in one call (SpecialCells), so a selected whole column is not a million cells."""
    try:
        found = selection.api.SpecialCells(XL_CELL_TYPE_FORMULAS)
    except Exception:  # Excel raises when there is none
        return []
    sheet = selection.sheet
    return [sheet.range(cell.Address) for area in found.Areas for cell in area.Cells]


def spill_area_of(cell):
    """The range a cell's formula fills: its spill area (Excel 365's dynamic arrays), its array
    formula's range (Ctrl+Shift+Enter), else the cell."""
    api = cell.api
    if getattr(api, "HasSpill", False):
        return cell.sheet.range(api.SpillParent.SpillingToRange.Address)
    if getattr(api, "HasArray", False):
        return cell.sheet.range(api.CurrentArray.Address)
    return cell


def _as_rows(value) -> list[list]:
    return value if isinstance(value, list) else [[value]]
