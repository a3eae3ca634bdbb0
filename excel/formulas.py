"""FinSent formulas in a workbook, read and computed as Excel computes them.

- Recognising them (`is_finsent_formula`): =FINSENT, =FINSENT_SCORE, =FINSENT_PROBS, =FINSENT_DOC,
  =FINSENT_DOC_SCORE, with the add-in's LOCAL. namespace or the prefixes files store them with, and the
  documented WEBSERVICE(".../v1/label?...&text="&ENCODEURL(A2)) form; results still pending or failed.
- One call alone (`read_call`): which function, which cells, which scheme.
- A formula around calls (=IFERROR(FINSENT(A2),""), =FINSENT(A2&" "&B2), =ROUND(FINSENT_SCORE(A2),2)...):
  read into a small tree (`parse_formula`) and computed (`_Computed`) for the functions in `_FUNCTIONS`,
  with Excel's own conversions (`as_text`, `number_text`); anything else is `LeftAsFormula`, with why.
- What stops a freeze (`FreezeError`: a stopped server) and what leaves one formula as it is.

excel/freeze.py uses this to write the values in place of the formulas.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

from finsent_local.excel.cells import PREFIX, function_cells

class FreezeError(Exception):
    """The workbook cannot be frozen (one line for the user); nothing was written."""


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

    def __init__(self, formula: str, sheet_name: str, reading):  # reading: freeze's _Cells
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
