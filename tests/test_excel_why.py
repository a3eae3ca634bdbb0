"""=FINSENT.WHY (the add-in: =LOCAL.FINSENT.WHY) and FINSENT_WHY (xlwings): each text's strongest words with
their weights, from POST /v1/explain on the real server, batched like =FINSENT.

Excel cannot run here: the xlwings function is called as the plain Python function xlwings wraps (its
declaration checked through xlwings' own VBA generator, with STAND-INS for the Windows-only COM modules),
and the add-in's real functions.js runs in Node with a STAND-IN for Excel's custom-functions runtime
(tests/js/run_addin_functions.mjs). Both must give the same cells.
"""

from __future__ import annotations

import importlib
import re
import threading
import types

import pytest

from finsent_local.client import MAX_EXPLAIN_WORDS, FinSentClient, explain_requests
from finsent_local.engine.occlusion import strongest_text, units
from finsent_local.excel import cells
from finsent_local.excel.finsent_udf import FINSENT, FINSENT_WHY
from test_excel_addin import FUNCTIONS_JS, NODE, python_cells, run_addin_functions
from xlwings_stand_ins import requests_to, sheet_env, xlwings_udfs_with_com_stand_ins  # noqa: F401 (a fixture)

needs_node = pytest.mark.skipif(NODE is None, reason="Node.js is not installed (setup.sh --dev installs Debian's nodejs)")

HEADLINES = ["Virtucon cuts full-year guidance", "Nakatomi Trading raises full-year guidance",
             "Dunder Mifflin schedules its annual general meeting"]
# Markup and formula characters: shown as text, never read as HTML or as a formula. The first word of the
# second is "+8%", so its cell may begin with "+", which Excel would read as a formula if it were typed.
MARKUP = ['=HYPERLINK("http://evil.example","x") <b>Virtucon</b> cuts guidance <script>alert(1)</script>',
          "+8% rise for Hooli shares after record profit =SUM(A1:A9)"]
LONG = " ".join(f"Initech{i}" for i in range(MAX_EXPLAIN_WORDS + 44))  # 300 words: over one request's limit
NO_WORDS = "!!! --- ..."


def api_why(url: str, texts: list[str], scheme: str = "7") -> list[str]:
    """Each text's cell as the API's own explanation gives it (client.explain, then strongest_text)."""
    return [strongest_text(r["words"], 3) for r in FinSentClient(url).explain(texts, scheme)]


# -- xlwings: FINSENT_WHY --------------------------------------------------------------------------------

def test_why_gives_the_strongest_words_of_the_api(sheet_env):
    text = HEADLINES[0]
    expected = api_why(sheet_env.url, [text])[0]
    words = FinSentClient(sheet_env.url).explain([text])[0]["words"]
    assert FINSENT_WHY(text) == FINSENT_WHY(text, "7") == expected
    assert expected.count(";") == 2 and expected.split(" ")[0] in [w["text"] for w in words]
    # the weights shown are the API's, to two places, strongest first
    shown = [float(part.rsplit(" ", 1)[1]) for part in expected.split("; ")]
    assert shown == sorted(shown, key=abs, reverse=True) and abs(shown[0]) == pytest.approx(
        max(abs(w["weight"]) for w in words), abs=0.005)
    assert FINSENT_WHY(text, 3.0) == api_why(sheet_env.url, [text], "3")[0]  # Excel passes numbers as floats


def test_why_keeps_the_range_shape_with_blanks_and_messages(sheet_env):
    import datetime as dt

    grid = [[HEADLINES[0], ""], [None, "   "], [42.0, True], [dt.datetime(2026, 1, 2), "#N/A"], ["x" * 40_000, HEADLINES[1]]]
    out = FINSENT_WHY(grid, "7")
    first, second = api_why(sheet_env.url, [HEADLINES[0], HEADLINES[1]])
    assert out == [[first, ""], ["", ""], ["#FINSENT! not text (a number)", "#FINSENT! not text (TRUE/FALSE)"],
                   ["#FINSENT! not text (a date)", "#FINSENT! the cell holds an error (#N/A)"],
                   ["#FINSENT! text too long", second]]
    assert FINSENT_WHY(None) == "" and FINSENT_WHY("  ") == ""
    assert FINSENT_WHY(HEADLINES[0], "5") == '#FINSENT! scheme must be "3" or "7"'
    assert FINSENT_WHY([[HEADLINES[0]], [HEADLINES[1]]], "x") == '#FINSENT! scheme must be "3" or "7"'


def test_why_over_the_word_limit_or_without_words_says_so(sheet_env):
    before = requests_to(sheet_env.url, "/v1/explain")
    assert FINSENT_WHY(LONG) == (f"#FINSENT! not explained: 300 words; at most {MAX_EXPLAIN_WORDS} are explained "
                                 "per text")
    assert requests_to(sheet_env.url, "/v1/explain") == before  # not asked: the server would refuse it
    assert FINSENT_WHY(NO_WORDS) == "#FINSENT! not explained: the text has no words"
    # a long text in a range costs only its own cell
    out = FINSENT_WHY([[LONG], [HEADLINES[2]]])
    assert out[0][0].startswith("#FINSENT! not explained: 300 words") and out[1][0] == api_why(sheet_env.url,
                                                                                                 [HEADLINES[2]])[0]


def test_markup_and_formula_characters_come_back_as_plain_text(sheet_env):
    out = FINSENT_WHY([[MARKUP[0]], [MARKUP[1]]])
    assert [row[0] for row in out] == api_why(sheet_env.url, MARKUP)
    for (value,) in out:
        # A plain str (xlwings hands it to Excel as a value, which Excel never parses as a formula),
        # made of the reader's words: no markup, no "=".
        assert type(value) is str and not value.startswith("=") and "<" not in value and "=" not in value
    texts = [w["text"] for w in FinSentClient(sheet_env.url).explain(MARKUP[:1])[0]["words"]]
    assert "HYPERLINK" in texts and "b" in texts and "script" in texts  # the tags' names are words, as the API says


def test_why_recalculation_is_stable_and_free(sheet_env):
    column = [[HEADLINES[0]], [HEADLINES[1]], [HEADLINES[2]]]
    first = FINSENT_WHY(column)
    before = requests_to(sheet_env.url, "/v1/explain")
    for _ in range(3):
        assert FINSENT_WHY(column) == first
    assert requests_to(sheet_env.url, "/v1/explain") == before  # served from the in-process cache
    # labels and explanations are kept apart: =FINSENT on the same texts still asks for labels
    labels_before = requests_to(sheet_env.url, "/v1/classify")
    assert all(row[0] in ("negative", "neutral", "positive") for row in FINSENT(column, "3"))
    assert requests_to(sheet_env.url, "/v1/classify") == labels_before + 1


def test_cells_at_once_are_gathered_into_few_explain_requests(sheet_env):
    """60 single-cell =FINSENT_WHY formulas recalculating together (xlwings runs each in a thread)."""
    texts = [f"Initech unit {i} {('raises its outlook', 'cuts jobs', 'holds its meeting')[i % 3]}" for i in range(60)]
    answers: dict[int, object] = {}
    start = threading.Barrier(len(texts))

    def cell(i: int) -> None:
        start.wait()
        answers[i] = FINSENT_WHY(texts[i], "7")

    before = requests_to(sheet_env.url, "/v1/explain")
    threads = [threading.Thread(target=cell, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    requests = requests_to(sheet_env.url, "/v1/explain") - before
    words = sum(len(units(t)) for t in texts)  # 340 words in all
    assert len(answers) == len(texts)
    # in requests of at most 64 texts and 256 words: 2, a few more if the calls span two windows; not 60
    assert requests <= 6, requests
    assert -(-words // MAX_EXPLAIN_WORDS) <= requests
    assert [answers[i] for i in range(len(texts))] == [api_why(sheet_env.url, [t])[0] for t in texts]


def test_explain_chunks_stay_within_the_word_and_text_limits():
    from finsent_local.excel.batching import CHUNK_TEXTS, explain_chunks

    texts = [" ".join(["word"] * (i % 30 + 1)) + f" n{i}" for i in range(400)]
    parts = explain_chunks(texts)
    assert [t for part in parts for t in part] == texts  # every text once, in order
    assert all(sum(len(units(t)) for t in part) <= MAX_EXPLAIN_WORDS and len(part) <= CHUNK_TEXTS for part in parts)
    assert len(parts) == len([p for chunk in (texts[i:i + CHUNK_TEXTS] for i in range(0, 400, CHUNK_TEXTS))
                              for p in explain_requests(chunk)])


def test_why_with_the_server_stopped(monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("FINSENT_URL", url)
    cells.results_cache.clear()
    assert FINSENT_WHY([[HEADLINES[0]], [""]]) == f"#FINSENT! server not running at {url} - start it with: finsent serve"


def test_the_xlwings_name_has_no_period(monkeypatch):
    """xlwings declares each function as a VBA Function named after the Python function (xlwings' own
    generator, with STAND-INS for the COM modules): FINSENT_WHY there, asynchronous like the others."""
    udfs, module = xlwings_udfs_with_com_stand_ins(monkeypatch)
    try:
        from io import StringIO

        out = StringIO()
        udfs.generate_vba_wrapper("finsent_udf", module, out, types.SimpleNamespace(Name="Book1.xlsm"))
        vba = out.getvalue()
        assert module.FINSENT_WHY.__xlfunc__["async_mode"] == "threading"
        assert module.FINSENT_WHY.__xlfunc__["name"] == "FINSENT_WHY"
    finally:
        monkeypatch.undo()
        importlib.reload(module)
    assert re.search(r"^Function FINSENT_WHY\(text, Optional scheme\)", vba, re.M), vba
    assert '"finsent_udf", "FINSENT_WHY", Array(text, scheme)' in vba
    names = re.findall(r"^(?:Function|Sub) (\S+?)\(", vba, re.M)
    assert names and all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", n) for n in names)  # VBA's identifiers: no "."


# -- the add-in: =LOCAL.FINSENT.WHY, the same cells from functions.js ----------------------------------------

def test_addin_constants_are_the_python_ones():
    from finsent_local.excel.functions import WHY_WORDS

    source = FUNCTIONS_JS.read_text()
    assert f"const WHY_WORDS = {WHY_WORDS};" in source
    assert f"const EXPLAIN_TIMEOUT_MS = {round(cells.EXPLAIN_TIMEOUT_S * 1000)};" in source
    assert "status.limits && status.limits.max_explain_words" in source  # the server's limit, asked


@needs_node
def test_addin_counts_and_shows_words_as_python_does():
    """functions.js's own word reader and formatting against occlusion.units and strongest_text, on
    awkward texts and on weights that are exact ties at two places (Python rounds them to even)."""
    texts = ["Initech cuts guidance by -8% to $1.2bn", "EUR 40m 40 million 3Q U.S. AT&T year-on-year don't",
             "Prix \u2212€3,5 mrd : l’action chute de 12\u00a0%", "数据显示 利润增长 25% 东京", "\u0939\u093f\u0902\u0926\u0940 "
             "\u0916\u092c\u0930 5 bps", "e\u0301t\u00e9 naïve café_bar x2 2x 1.5x 7 bn 7 bnx", NO_WORDS, MARKUP[0],
             MARKUP[1], "a\u2028b\x1cc 5\u3000million", "٣٤ arabic digits ١٢%", "+3.5 pts and -$5 and $-5"]
    weights = [0.125, -0.375, 0.625, -0.875, 0.0, -0.0, 0.005, -0.015, 1.125, 0.3449999, -1.0, 0.41]
    words = [[{"text": f"w{i}", "weight": w, "label_weight": 0.01 * (i % 3)}] for i, w in enumerate(weights)]
    ranked = [[{"text": t, "weight": w, "label_weight": lw} for t, w, lw in
               [("a", 0.1, 0.2), ("b", -0.1, 0.3), ("c", 0.1, 0.2), ("d", 0.3, 0.0), ("e", -0.02, 0.9)]]]
    out = run_addin_functions("http://127.0.0.1:9", [
        [{"helper": "countWords", "args": [t]} for t in texts]
        + [{"helper": "whyText", "args": [{"words": w}]} for w in words + ranked]])
    results = out["phases"][0]["results"]
    assert results[:len(texts)] == [len(units(t)) for t in texts]
    assert results[len(texts):] == [strongest_text(w, 3) for w in words + ranked]
    assert results[-1] == "d +0.30; b -0.10; a +0.10"  # |weight|, then |label_weight|, then the earlier word


def why_cases() -> list[tuple[str, list]]:
    mixed = [[HEADLINES[0], ""], [None, "   "], [42, True], ["#N/A", "x" * 32_768], ["\ud800 lone surrogate", HEADLINES[1]]]
    return [
        ("FINSENT.WHY", [[[HEADLINES[0]]], "7"]),
        ("FINSENT.WHY", [[[HEADLINES[1]]], None]),  # omitted scheme: "7"
        ("FINSENT.WHY", [[[HEADLINES[2]]], 3]),  # a number for the scheme
        ("FINSENT.WHY", [[[HEADLINES[2]]], "9"]),  # not a scheme: one message
        ("FINSENT.WHY", [mixed, "3"]),
        ("FINSENT.WHY", [[[MARKUP[0]], [MARKUP[1]]], "7"]),
        ("FINSENT.WHY", [[[LONG], [NO_WORDS], [HEADLINES[0]]], "7"]),
    ]


@needs_node
def test_addin_why_gives_the_xlwings_cells(server, monkeypatch):
    cases = why_cases()
    out = run_addin_functions(server.url, [[{"fn": f, "args": a} for f, a in cases]])
    assert "FINSENT.WHY" in out["associated"]
    results = out["phases"][0]["results"]
    for (function, args), js in zip(cases, results):
        assert js == python_cells(function, args, server.url, monkeypatch), (function, args)
    assert results[0] == [[api_why(server.url, [HEADLINES[0]])[0]]]
    assert results[3] == [['#FINSENT! scheme must be "3" or "7"']]
    assert [row[0] for row in results[5]] == api_why(server.url, MARKUP)  # plain strings, markup and "=" as text
    assert results[6][0][0].startswith("#FINSENT! not explained: 300 words")
    assert results[6][1][0] == "#FINSENT! not explained: the text has no words"
    # The 7 calls in one recalculation: one GET /v1/status (the word limit), then explain requests by words
    # (the long text not sent), nothing else.
    paths = out["phases"][0]["paths"]
    assert paths["GET /v1/status"] == 1 and set(paths) == {"GET /v1/status", "POST /v1/explain"}
    sent = [(body["scheme"], t) for body in out["phases"][0]["bodies"] for t in body["texts"]]
    assert ("7", LONG) not in sent and len(sent) == len(set(sent))  # each text once per scheme
    assert all(body["unit"] == "word" and sum(len(units(t)) for t in body["texts"]) <= MAX_EXPLAIN_WORDS
               for body in out["phases"][0]["bodies"])


@needs_node
def test_addin_batches_why_into_few_requests_and_keeps_the_results(server):
    column = [[f"Globex unit {i} reports revenue up {i % 17}%"] for i in range(80)]
    singles = [{"fn": "FINSENT.WHY", "args": [[[f"Initech branch {i} closes"]], "7"]} for i in range(20)]
    recalc = [{"fn": "FINSENT.WHY", "args": [column, "7"]}, {"fn": "FINSENT", "args": [column, "7"]}, *singles]
    out = run_addin_functions(server.url, [recalc, recalc])
    first, again = out["phases"]
    texts = [row[0] for row in column] + [f"Initech branch {i} closes" for i in range(20)]
    words = sum(len(units(t)) for t in texts)  # 80 x 7 + 20 x 4 = 640 words
    # 100 texts in one recalculation: as few explain requests as 256 words each allow (3, packed in order),
    # one classify request for =FINSENT's labels, one status request; not 101 requests.
    assert first["paths"]["POST /v1/explain"] == len(explain_requests(texts)) == -(-words // MAX_EXPLAIN_WORDS)
    assert first["paths"]["POST /v1/classify"] == 1
    assert [t for body in first["bodies"] for t in body["texts"]] == texts
    assert again["requests"] == 0 and again["results"] == first["results"]
    assert [row[0] for row in first["results"][0]] == api_why(server.url, texts[:80])
    assert [r[0][0] for r in first["results"][2:]] == api_why(server.url, texts[80:])


@pytest.fixture(scope="module")
def small_limit_server(trained_gguf, tmp_path_factory):
    """The real app on the trained model with max_explain_words=20 (a werkzeug server in this process):
    to see functions.js size its requests by the server's own limit, not by a number of its own."""
    from werkzeug.serving import make_server

    from finsent_local.limits import Limits
    from finsent_local.server import create_app
    from finsent_local.server.runtime import Runtime

    runtime = Runtime(model_path=trained_gguf["f16"], limits=Limits(max_explain_words=20),
                      cache_path=tmp_path_factory.mktemp("small-limit") / "results.sqlite3")
    runtime.load()
    httpd = make_server("127.0.0.1", 0, create_app(runtime), threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        runtime.close()


@needs_node
def test_addin_sizes_explain_requests_by_the_servers_limit(small_limit_server):
    texts = [f"Hooli branch {i} raises full-year guidance" for i in range(9)]  # 6 words each
    over = " ".join(["Vandelay"] * 21)
    out = run_addin_functions(small_limit_server, [[{"fn": "FINSENT.WHY", "args": [[[t] for t in texts + [over]], "7"]}]])
    phase = out["phases"][0]
    assert [len(body["texts"]) for body in phase["bodies"]] == [3, 3, 3]  # 18 words a request, at most 20
    assert phase["paths"]["POST /v1/explain"] == len(explain_requests(texts, max_words=20)) == 3
    cells_out = [row[0] for row in phase["results"][0]]
    one_by_one = [strongest_text(FinSentClient(small_limit_server).explain([t])[0]["words"], 3) for t in texts]
    assert cells_out[:-1] == one_by_one
    assert cells_out[-1] == "#FINSENT! not explained: 21 words; at most 20 are explained per text"
