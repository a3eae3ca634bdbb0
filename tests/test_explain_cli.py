"""`finsent explain` and `finsent classify --input FILE --explain` (issue 35), through the real command in
a subprocess on the trained fixture model: the label and the words that moved it (the event phrase's, not
the company name's), plain output in a pipe and colour when asked, the JSON lines equal to POST
/v1/explain's objects, the why column in every file format with resume, and bad input as one line with
the server's own message."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_finsent
from sentiment_data import EVENTS_7, HELD_OUT_COMPANIES, held_out_examples

from finsent_local.engine.occlusion import strongest_text
from finsent_local.limits import DEFAULT_LIMITS

# Held-out headlines (companies and template the fixture never saw in training), each with one clear
# event word by measurement: "raises" moves the score by about +1.35, "dip" by about -0.67.
RAISES = "Breaking: Virtucon raises full-year guidance."
DIP = "Breaking: Bluth Company sees a small dip in quarterly orders."
assert "raises full-year guidance" in EVENTS_7["moderately positive"] and "Virtucon" in HELD_OUT_COMPANIES
assert "sees a small dip in quarterly orders" in EVENTS_7["mildly negative"] and "Bluth Company" in HELD_OUT_COMPANIES

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def model(trained_gguf) -> Path:
    return trained_gguf["f16"]


@pytest.fixture
def env(tmp_path):
    # FORCE_COLOR and NO_COLOR cleared: a developer's own settings must not decide what a test sees.
    return {"FINSENT_CACHE_DIR": str(tmp_path / "cache"), "FINSENT_MODEL": "", "FORCE_COLOR": "", "NO_COLOR": ""}


def explain(model, *args, env, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "finsent_local.cli", "explain", "--model", str(model), *args],
                          input=stdin if stdin is not None else "", capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def _table(stdout: str) -> list[list[str]]:
    """The strongest-words rows under a text: [word, weight, label_weight, label without it]."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["word", "weight"]) + 1
    rows = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        word, weight, label_weight, without = re.match(r"  (\S+)\s+(\S+)\s+(\S+)\s+(.+)$", line).groups()
        rows.append([word, weight, label_weight, without])
    return rows


# -- finsent explain ----------------------------------------------------------------------------------------
def test_the_label_then_the_event_words_above_the_company_name(model, env):
    done = explain(model, RAISES, "--top", "5", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"moderately positive  \+0\.\d{3}", lines[0]), lines[0]
    assert lines[1] == RAISES  # piped: the exact text, no escapes
    assert not ANSI.search(done.stdout)
    rows = _table(done.stdout)
    assert len(rows) == 5
    event = "raises full-year guidance".split()
    assert rows[0][0] == "raises" and float(rows[0][1]) > 0.5 and rows[0][3] != "moderately positive"
    weights = {word: abs(float(weight)) for word, weight, _, _ in rows}
    assert weights["raises"] >= 10 * weights.get("Virtucon", 0.0) + 0.1
    assert [float(r[1]) for r in rows] == sorted((float(r[1]) for r in rows), key=lambda w: -abs(w))

    as_json = json.loads(explain(model, RAISES, "--json", env=env).stdout)
    words = {w["text"]: abs(w["weight"]) for w in as_json["words"]}
    on_event = sum(words[w] for w in event)
    on_company = words["Virtucon"]
    assert on_event >= 0.9 * sum(words.values()) and on_company <= 0.01 * on_event, words


def test_colour_only_when_asked_for_a_pipe(model, env):
    plain = explain(model, RAISES, DIP, env=env)
    forced = explain(model, RAISES, DIP, env={**env, "FORCE_COLOR": "1"})
    assert plain.returncode == forced.returncode == 0, forced.stderr
    assert not ANSI.search(plain.stdout)
    # Positive words bright green, negative ones bright red (bold: the strongest in their text).
    assert re.search(r"\x1b\[92m(\x1b\[1m)?raises\x1b\[0m", forced.stdout), forced.stdout
    assert re.search(r"\x1b\[91m(\x1b\[1m)?dip\x1b\[0m", forced.stdout), forced.stdout
    assert not re.search(r"\x1b\[[0-9;]*mVirtucon", forced.stdout)  # a word that did not move it stays plain
    assert ANSI.sub("", forced.stdout) == plain.stdout  # colour adds nothing else, removes nothing
    assert "\n\n" in plain.stdout and plain.stdout.count("word") >= 2  # two texts, two blocks

    for extra_env, args in (({"FORCE_COLOR": "1", "NO_COLOR": "1"}, ()), ({"FORCE_COLOR": "1"}, ("--color", "never")),
                            ({"NO_COLOR": "1"}, ("--color", "always"))):
        shown = explain(model, RAISES, *args, env={**env, **extra_env})
        assert bool(ANSI.search(shown.stdout)) == ("always" in args), (extra_env, args)


def test_control_characters_in_a_text_are_shown_not_acted_on(model, env):
    text = "Acme \x1b[31mcuts\x1b[0m guidance\r\u202eevil"
    done = explain(model, text, env={**env, "FORCE_COLOR": "1"})
    assert done.returncode == 0, done.stderr
    plain = ANSI.sub("", done.stdout)
    assert "\x1b" not in plain and "\r" not in plain and "\u202e" not in plain
    assert "Acme \\x1b[31mcuts\\x1b[0m guidance\\r\\u202eevil" in plain


def test_json_lines_are_the_explain_endpoints_objects(model, env, client):
    done = explain(model, RAISES, DIP, "--json", "--scheme", "3", env=env)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    served = client.post("/v1/explain", json={"texts": [RAISES, DIP], "scheme": "3"}).json["results"]
    assert len(lines) == 2
    for text, got, want in zip([RAISES, DIP], lines, served):
        assert got["text"] == text
        assert set(got) - {"text"} == set(want) == {"label", "score", "probs", "truncated", "cached", "unit", "words"}
        assert got["label"] == want["label"] and got["unit"] == "word" and got["truncated"] is False
        assert got["score"] == pytest.approx(want["score"], abs=1e-3)
        assert [(w["start"], w["end"], w["text"], w["label_without"]) for w in got["words"]] == \
            [(w["start"], w["end"], w["text"], w["label_without"]) for w in want["words"]]
        for a, b in zip(got["words"], want["words"]):
            assert text[a["start"]:a["end"]] == a["text"]
            assert a["weight"] == pytest.approx(b["weight"], abs=1e-3)
            assert a["label_weight"] == pytest.approx(b["label_weight"], abs=1e-3)
    assert [lines[0]["label"], lines[1]["label"]] == ["positive", "negative"]

    phrases = json.loads(explain(model, "Virtucon cuts full-year guidance", "--json", "--unit", "phrase", env=env).stdout)
    assert phrases["unit"] == "phrase"
    assert [w["text"] for w in phrases["words"]] == ["Virtucon cuts", "cuts full-year", "full-year guidance"]


def test_lines_from_standard_input(model, env):
    headlines = [text for text, _ in held_out_examples(per_label=1)][:3]
    for args in ((), ("-",)):
        done = explain(model, *args, "--json", env=env, stdin="\n".join([headlines[0], "", *headlines[1:]]) + "\n")
        assert done.returncode == 1  # the blank line
        rows = [json.loads(line) for line in done.stdout.splitlines()]
        assert [r["text"] for r in rows] == [headlines[0], "", *headlines[1:]]
        assert rows[1]["error"]["code"] == "empty_text" and all("words" in r for i, r in enumerate(rows) if i != 1)
        assert done.stderr.strip() == "1 of 4 texts could not be explained"
    human = explain(model, "--top", "1", env=env, stdin=f"{headlines[0]}\n\n")
    assert human.returncode == 1 and human.stdout.splitlines()[1] == headlines[0]
    assert human.stderr.splitlines() == ["Error: line 2: text is empty", "1 of 2 texts could not be explained"]


LONG = "a" * (DEFAULT_LIMITS.max_text_chars + 1)
WORDY = "Acme " * (DEFAULT_LIMITS.max_explain_words + 1)


@pytest.mark.parametrize("text, code", [("", "empty_text"), ("   ", "empty_text"), (LONG, "text_too_long"),
                                        (WORDY, "too_many_words")], ids=["empty", "blank", "too-long", "too-many-words"])
def test_bad_input_is_one_line_with_the_servers_message(model, env, client, text, code):
    answer = client.post("/v1/explain", json={"text": text})
    message = answer.json["error"]["message"]
    assert answer.json["error"]["code"] == code

    done = explain(model, text, env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"Error: {message}\n" and "Traceback" not in done.stderr
    if code == "too_many_words":
        assert answer.status_code == 413
        assert f"at most {DEFAULT_LIMITS.max_explain_words} words" in message and "(got 257)" in message

    as_json = explain(model, text, "--json", env=env)
    assert as_json.returncode == 1 and as_json.stderr == ""
    (line,) = as_json.stdout.splitlines()
    assert json.loads(line)["error"] == {"code": code, "message": message}


def test_bad_invocations_are_one_line(model, env):
    for args, said in ((["explain", "--model", str(model), "ok", ""], "Error: text 2: text is empty"),
                       (["explain", "--model", str(model), "--top", "-1", "ok"], "Invalid value for '--top'"),
                       (["classify", "--model", str(model), "ok", "--explain"], "Error: --explain goes with --input"),
                       (["classify", "--model", str(model), "--input", "x.csv", "--output", "y.csv", "--explain",
                         "--split", "sentences"], "Error: --explain is for texts")):
        code, stdout, stderr = run_finsent(*args, env=env)
        assert code != 0 and said in stderr and "Traceback" not in stderr, (args, stderr)


def test_help_says_what_it_costs_and_where_the_docs_are():
    code, stdout, _ = run_finsent("explain", "--help")
    assert code == 0 and stdout.rstrip().endswith("Docs: docs/explain.md")
    assert "one classification per word" in " ".join(stdout.split())
    code, stdout, _ = run_finsent("classify", "--help")
    flat = " ".join(stdout.split())
    assert code == 0 and "--explain" in flat and "one classification per word" in flat
    code, stdout, _ = run_finsent("--help")
    assert "finsent explain" in stdout


# -- finsent classify --input FILE --explain ----------------------------------------------------------------
FORMULA = '=HYPERLINK("http://example.com","x") <b>Dunder Mifflin</b> posts record revenue & triples earnings'
FILE_TEXTS = [RAISES, FORMULA, None, "!!!", "Acme " * 300, DIP]
WHY = re.compile(r"\S.* [+-]\d\.\d\d(; \S.* [+-]\d\.\d\d){0,2}")


def _write_csv(path: Path, texts: list) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "headline"])
        writer.writerows([i, "" if t is None else t] for i, t in enumerate(texts))


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _why_parts(why: str) -> list[tuple[str, float]]:
    assert WHY.fullmatch(why), why
    return [(word, float(weight)) for word, weight in (part.rsplit(" ", 1) for part in why.split("; "))]


def _same_why(got: str, want: str) -> None:
    """Two why cells of one text: the same strongest word first, and each listed word's weight within
    rounding (words of ~0 weight may swap places between engine runs: their order is float noise)."""
    got_parts, want_parts = _why_parts(got), _why_parts(want)
    assert got_parts[0][0] == want_parts[0][0] and len(got_parts) == len(want_parts), (got, want)
    wanted = dict(want_parts)
    for word, weight in got_parts:
        assert word not in wanted or abs(weight - wanted[word]) <= 0.011, (got, want)


def _check_why_rows(rows: list[dict], client) -> None:
    """The file's why cells against POST /v1/explain's words for the same texts."""
    served = client.post("/v1/explain", json={"texts": [RAISES, FORMULA, DIP]}).json["results"]
    by_text = {(r["headline"] or None): r for r in rows}
    for text, answer in zip((RAISES, FORMULA, DIP), served):
        _same_why(by_text[text]["why"], strongest_text(answer["words"], 3))
        assert {word for word, _ in _why_parts(by_text[text]["why"])} <= {w["text"] for w in answer["words"]}
    assert by_text[RAISES]["why"].startswith("raises +") and by_text[DIP]["why"].startswith("dip -")
    assert by_text[FORMULA]["why"].startswith("record +")  # the event word, not the markup's
    assert by_text[RAISES]["label"] == "moderately positive" and not by_text[RAISES]["error"]
    assert by_text[None]["error"] == "text is empty" and not by_text[None]["why"]
    assert by_text["!!!"]["why"] == "not explained: the text has no words" and by_text["!!!"]["label"]
    long = by_text["Acme " * 300]
    assert long["why"] == f"not explained: 300 words; at most {DEFAULT_LIMITS.max_explain_words} are explained per text"
    assert long["label"] and not long["error"]  # the label stands; the job did not fail


def test_classify_explain_adds_a_why_column_to_a_csv(model, env, client, tmp_path):
    source, out = tmp_path / "news.csv", tmp_path / "news.why.csv"
    _write_csv(source, FILE_TEXTS)
    code, _, stderr = run_finsent("classify", "--model", str(model), "--input", str(source), "--column", "headline",
                                  "--output", str(out), "--explain", env=env)
    assert code == 0, stderr
    assert f"Wrote {out}: 6 rows; 1 with an error" in stderr
    rows = _read_csv(out)
    assert list(rows[0])[-3:] == ["p_strong_positive", "error", "why"]
    assert [r["headline"] for r in rows] == ["" if t is None else t for t in FILE_TEXTS]  # kept as text, exactly
    _check_why_rows(rows, client)

    plain = tmp_path / "news.plain.csv"  # without --explain: no why column, the same labels
    code, _, stderr = run_finsent("classify", "--model", str(model), "--input", str(source), "--column", "headline",
                                  "--output", str(plain), env=env)
    assert code == 0, stderr
    without = _read_csv(plain)
    assert "why" not in without[0] and [r["label"] for r in without] == [r["label"] for r in rows]


def test_classify_explain_in_the_other_formats(model, env, client, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from openpyxl import Workbook, load_workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["id", "headline"])
    for i, text in enumerate(FILE_TEXTS):
        sheet.append([i, text])
    sheet["B3"].data_type = "s"  # the formula-like headline is stored as text, as Excel stores a typed '=...
    book.save(tmp_path / "news.xlsx")
    with open(tmp_path / "news.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"id": i, "headline": t}) + "\n" for i, t in enumerate(FILE_TEXTS))
    pq.write_table(pa.table({"id": list(range(len(FILE_TEXTS))), "headline": FILE_TEXTS}), tmp_path / "news.parquet")

    for suffix in ("xlsx", "jsonl", "parquet"):
        out = tmp_path / f"out.{suffix}"
        code, _, stderr = run_finsent("classify", "--model", str(model), "--input", str(tmp_path / f"news.{suffix}"),
                                      "--column", "headline", "--output", str(out), "--explain", env=env)
        assert code == 0, (suffix, stderr)
        if suffix == "xlsx":
            ws = load_workbook(out).active
            header = [c.value for c in ws[1]]
            assert header[-2:] == ["error", "why"]
            rows = [dict(zip(header, (c.value for c in row))) for row in ws.iter_rows(min_row=2)]
            formula_row = ws[3]
            assert formula_row[1].value == FORMULA and formula_row[1].data_type == "s"  # text, not a formula
            assert all(row[-1].data_type != "f" for row in ws.iter_rows(min_row=2))  # no why cell runs as a formula
            assert formula_row[-1].data_type == "s" and ws[2][-1].data_type == "s"
        elif suffix == "jsonl":
            rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
            assert list(rows[0])[-1] == "why"
        else:
            table = pq.read_table(out)
            assert table.schema.field("why").type == pa.string() and table.column_names[-1] == "why"
            rows = table.to_pylist()
        _check_why_rows(rows, client)


# -- resume ------------------------------------------------------------------------------------------------
RESUME_ROWS = 96


def _resume_source(folder: Path) -> Path:
    """Distinct held-out headlines (nothing to reuse from a cache)."""
    headlines = [text for text, _ in held_out_examples(per_label=4)]
    source = folder / "archive.csv"
    _write_csv(source, [f"{headlines[i % len(headlines)]} (ref {i})" for i in range(RESUME_ROWS)])
    return source


def _classify_args(model, source: Path, out: Path, *extra: str) -> list[str]:
    return ["classify", "--model", str(model), "--input", str(source), "--column", "headline", "--output", str(out),
            "--no-cache", *extra]


def _killed_after_saving(model, source: Path, out: Path, env: dict, rows: int = 8) -> int:
    """Start `classify --explain`, SIGKILL it once `rows` rows are saved; the rows saved by then."""
    work = out.parent / f".{out.name}.finsent-partial"
    proc = subprocess.Popen([sys.executable, "-m", "finsent_local.cli", *_classify_args(model, source, out, "--explain")],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    results = work / "results.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= rows:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    saved = results.read_bytes().count(b"\n")
    assert rows <= saved < RESUME_ROWS and not out.exists(), saved
    return saved


def test_an_interrupted_explain_job_resumes_to_the_same_output(model, env, tmp_path):
    source = _resume_source(tmp_path)
    reference = tmp_path / "reference.csv"
    code, _, stderr = run_finsent(*_classify_args(model, source, reference, "--explain"), env=env)
    assert code == 0, stderr
    want = _read_csv(reference)

    out = tmp_path / "archive.why.csv"
    saved = _killed_after_saving(model, source, out, env)
    code, _, stderr = run_finsent(*_classify_args(model, source, out, "--explain"), env=env)
    assert code == 0, stderr
    assert f"Continuing: {saved:,} of {RESUME_ROWS:,} rows were already done" in stderr
    got = _read_csv(out)
    assert len(got) == RESUME_ROWS and list(got[0]) == list(want[0])
    for a, b in zip(got, want):
        assert (a["headline"], a["label"], a["error"]) == (b["headline"], b["label"], b["error"])
        _same_why(a["why"], b["why"])

    # Saved rows with a why cell are not mixed into a run without --explain (nor the other way): it starts over.
    other = tmp_path / "archive.other.csv"
    _killed_after_saving(model, source, other, env)
    code, _, stderr = run_finsent(*_classify_args(model, source, other), env=env)
    assert code == 0 and "starting over" in stderr and "Continuing" not in stderr, stderr
    plain = _read_csv(other)
    assert len(plain) == RESUME_ROWS and "why" not in plain[0] and list(plain[0])[-1] == "error"
