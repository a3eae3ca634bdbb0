"""`finsent classify` on files (CSV/TSV, JSON Lines, Parquet, XLSX) and on lines, through the real
command and the trained fixture model: every input row and column kept in order, labels equal to the
engine's, bad rows as error rows, and interrupted jobs (Ctrl-C, SIGKILL) resumed to the same output."""

from __future__ import annotations

import csv
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_finsent
from sentiment_data import held_out_examples

from finsent_local.engine.labels import LABELS_3, LABELS_7


@pytest.fixture(scope="module")
def model(trained_gguf) -> Path:
    return trained_gguf["q8_0"]


@pytest.fixture
def env(tmp_path):
    return {"FINSENT_CACHE_DIR": str(tmp_path / "cache"), "FINSENT_MODEL": ""}


# F16 batched vs one-at-a-time probabilities agree within 5e-3 (tests/test_engine.py says why): where
# the engine's top two labels are closer than that, a batched path may rightly pick either.
NEAR_TIE = 5e-3


@pytest.fixture(scope="module")
def engine_labels(model):
    """The labels a text may get: the engine's own (one text at a time), plus any label within
    NEAR_TIE of it. Every path (file, lines, Ray) must give one of them."""
    from finsent_local.engine.classifier import ClassifierEngine

    engine = ClassifierEngine(model)
    memo: dict[tuple[str, str], set[str]] = {}

    def labels(text: str, scheme: str = "7") -> set[str]:
        if (text, scheme) not in memo:
            probs = engine.classify_batch([text], scheme)[0].probs
            top = max(probs.values())
            memo[text, scheme] = {label for label, p in probs.items() if p >= top - NEAR_TIE}
        return memo[text, scheme]

    yield labels
    engine.close()


HEADLINES = [text for text, _ in held_out_examples(per_label=3)]
AWKWARD = [
    'Globex files for bankruptcy protection, calling it a "painful" step',
    "Hooli raises full-year guidance\nas demand stays strong",
    "Ümlaut AG raises full-year guidance — 5% higher 🚀",
    "株式会社ソニー raises full-year guidance; shares rise",
    "Initech schedules its annual general meeting\ton May 5",
    "=HYPERLINK(\"http://x\") Vandelay shares plunge",
]
BLANKS = ["", "   "]


def write_awkward_csv(path: Path, rows: int) -> list[list[str]]:
    """A CSV with a BOM, CRLF, quoted commas/quotes/newlines, unicode, blank texts, short and wide rows."""
    texts = HEADLINES + AWKWARD + BLANKS
    data = [["id", "headline", "note, with comma"]]
    for i in range(rows):
        row = [str(i), texts[i % len(texts)], f'note "{i}", line\nbreak' if i % 7 == 0 else f"n{i}"]
        if i % 97 == 5:
            row = row[:2]  # a short row
        if i % 131 == 9:
            row = row + ["an extra field"]  # a row wider than the header
        data.append(row)
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows(data)
    return data


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


def test_csv_of_10k_rows_keeps_every_row_and_column(model, env, tmp_path, engine_labels):
    source = tmp_path / "news.csv"
    data = write_awkward_csv(source, 10_300)
    out = tmp_path / "news.scored.csv"
    code, stdout, stderr = run_finsent("classify", "--model", str(model), "--input", str(source), "--column",
                                       "headline", "--output", str(out), env=env)
    assert code == 0, stderr
    assert stderr.strip().splitlines()[-1].startswith("Wrote ") and "10,300 rows" in stderr
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # the input's byte-order mark is kept
    scored = read_csv(out)
    added = ["label", "score", *(f"p_{label.replace(' ', '_')}" for label in LABELS_7), "error"]
    width = 4  # the widest input row
    assert scored[0] == data[0] + [""] + added
    assert len(scored) == len(data)
    for row_in, row_out in zip(data[1:], scored[1:]):
        assert row_out[:width] == row_in + [""] * (width - len(row_in))
        label, score, *probs, error = row_out[width:]
        text = row_in[1]
        if not text.strip():
            assert (label, score, error) == ("", "", "text is empty")
        else:
            assert error == "" and label in engine_labels(text), text
            assert abs(sum(float(p) for p in probs) - 1) < 1e-3 and -1 <= float(score) <= 1


def test_parquet_keeps_schema_types_and_nulls(model, env, tmp_path, engine_labels):
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = (HEADLINES + AWKWARD + [None, ""]) * 5
    table = pa.table({"id": pa.array(range(len(texts)), pa.int64()), "title": texts,
                      "day": [datetime.date(2024, 1, 1 + i % 28) for i in range(len(texts))]})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=17)
    code, _, stderr = run_finsent("classify", "--model", str(model), "--input", str(tmp_path / "in.parquet"),
                                  "--column", "title", "--output", str(tmp_path / "out.parquet"), "--scheme", "3",
                                  "--prefix", "s3_", env=env)
    assert code == 0, stderr
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.schema.names == ["id", "title", "day", "s3_label", "s3_score", "s3_p_negative", "s3_p_neutral",
                                "s3_p_positive", "s3_error"]
    assert out.schema.field("id").type == pa.int64() and out.schema.field("day").type == pa.date32()
    assert out.select(["id", "title", "day"]).equals(table.select(["id", "title", "day"]))
    for text, label, error in zip(texts, out.column("s3_label").to_pylist(), out.column("s3_error").to_pylist()):
        if text:
            assert label in engine_labels(text, "3") and error == ""
        else:
            assert label is None and error == "text is empty"


def test_jsonl_keeps_records_and_bad_lines(model, env, tmp_path, engine_labels):
    lines = [json.dumps({"headline": HEADLINES[0], "meta": {"source": "wire", "n": 1}}), "",
             "{not json", json.dumps({"headline": 42}), json.dumps(["a", "list"]),
             json.dumps({"other": "no headline"}), json.dumps({"headline": AWKWARD[2]}, ensure_ascii=False)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _, stderr = run_finsent("classify", "--model", str(model), "--input", str(tmp_path / "in.jsonl"),
                                  "--column", "headline", "--output", str(tmp_path / "out.jsonl"), env=env)
    assert code == 0, stderr
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 6  # the blank line is not a record
    assert records[0]["meta"] == {"source": "wire", "n": 1} and records[0]["label"] in engine_labels(HEADLINES[0])
    assert records[1] == {**records[1], "input_line": "{not json", "label": None, "error": "the line is not a JSON object"}
    assert records[2]["headline"] == 42 and records[2]["error"] == "text must be a string"
    assert records[3]["input_line"] == '["a", "list"]'
    assert records[4]["other"] == "no headline" and records[4]["error"] == "text is empty"
    assert records[5]["label"] in engine_labels(AWKWARD[2]) and records[5]["error"] == ""


def test_xlsx_by_column_letter_keeps_values_and_text(model, env, tmp_path, engine_labels):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Other"
    news = book.create_sheet("News")
    news.append(["date", "headline", "n"])
    rows = [[datetime.datetime(2024, 1, 2), HEADLINES[0], 1], [None, None, 2], [None, "=1+1 is not a formula here", 3],
            [datetime.datetime(2024, 1, 3), HEADLINES[5], 4.5]]
    for row in rows:
        news.append(row)
    news["B4"].data_type = "s"  # a text that starts with "=" (as Excel stores '=...)
    book.save(tmp_path / "in.xlsx")
    code, _, stderr = run_finsent("classify", "--model", str(model), "--input", str(tmp_path / "in.xlsx"),
                                  "--sheet", "News", "--column", "B", "--output", str(tmp_path / "out.xlsx"), env=env)
    assert code == 0, stderr
    out = openpyxl.load_workbook(tmp_path / "out.xlsx")
    assert out.sheetnames == ["Other", "News"]  # every sheet is kept
    values = [[c.value for c in row] for row in out["News"].iter_rows()]
    assert values[0][:4] == ["date", "headline", "n", "label"] and values[0][-1] == "error"
    assert [v[:3] for v in values[1:]] == rows
    assert values[1][3] in engine_labels(HEADLINES[0]) and values[4][3] in engine_labels(HEADLINES[5])
    assert values[2][3] is None and values[2][-1] == "text is empty"
    assert out["News"]["B4"].data_type == "s"  # written as text, not as a formula


@pytest.mark.parametrize("args, message", [
    (["--column", "title"], "no column 'title' in news.csv; its columns: 'id', 'headline', 'note, with comma'"),
    ([], "--column is needed: which column of news.csv holds the texts? Its columns: 'id', 'headline'"),
    (["--column", "headline", "--output", "{tmp}/out.parquet"], "the output is written in the input's format"),
    (["--column", "headline", "--output", "{tmp}/news.csv"], "news.csv is the input"),
    (["--column", "headline", "--output", "{tmp}/news.csv", "--force"], "news.csv is the input"),
    (["--column", "headline", "--output", "{tmp}/out.docx"], "unknown file format '.docx'"),
    (["--column", "headline", "--scheme", "3"], "news.csv already has a column named 'label'; name the new columns "
                                                "differently with --prefix"),
])
def test_file_errors_are_one_line(args, message, model, env, tmp_path):
    data = write_awkward_csv(tmp_path / "news.csv", 5)
    if "--scheme" in args:  # an input scored before: its columns would collide with the new ones
        data[0][2] = "label"
        with open(tmp_path / "news.csv", "w", newline="") as f:
            csv.writer(f).writerows(data)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--output" not in args:
        args += ["--output", str(tmp_path / "out.csv")]
    code, stdout, stderr = run_finsent("classify", "--model", str(model), "--input", str(tmp_path / "news.csv"),
                                       *args, env=env)
    assert code == 1 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], stderr
    assert not (tmp_path / "out.csv").exists()


def test_unreadable_inputs_are_one_line(model, env, tmp_path):
    # neither UTF-8 nor Windows-1252 (0x81 is undefined there); Windows-1252 itself is read (test_file_inputs.py)
    (tmp_path / "latin1.csv").write_bytes(b"id,headline\n1,Soci\x81t\x81 G\xe9n\xe9rale profit rises\n")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not a workbook")
    for name, message in [("latin1.csv", "is not UTF-8 text"), ("broken.parquet", "is not a readable Parquet file"),
                          ("broken.xlsx", "is not a readable .xlsx workbook"), ("missing.csv", "input file not found")]:
        out = tmp_path / ("out" + Path(name).suffix)
        code, _, stderr = run_finsent("classify", "--model", str(model), "--input", str(tmp_path / name),
                                      "--column", "headline", "--output", str(out), env=env)
        lines = stderr.strip().splitlines()
        assert code == 1 and len(lines) == 1 and message in lines[0] and "Traceback" not in stderr, stderr
        assert not out.exists() and not list(tmp_path.glob(".out*"))  # no work folder left behind either


# -- interrupted and resumed ---------------------------------------------------------------------------
RESUME_ROWS = 1500


@pytest.fixture(scope="module")
def resume_source(tmp_path_factory, model):
    """A CSV of distinct headlines (nothing to reuse from a cache), and the uninterrupted run's output."""
    folder = tmp_path_factory.mktemp("resume")
    source = folder / "archive.csv"
    with open(source, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "headline"])
        for i in range(RESUME_ROWS):
            writer.writerow([i, f"{HEADLINES[i % len(HEADLINES)]} (ref {i})" if i % 50 else ""])
    reference = folder / "reference.csv"
    code, _, stderr = run_finsent("classify", "--model", str(model), "--input", str(source), "--column", "headline",
                                  "--output", str(reference), "--no-cache", "--scheme", "3",
                                  env={"FINSENT_CACHE_DIR": str(folder / "cache")})
    assert code == 0, stderr
    return source, read_csv(reference)


def _start_job(model, source: Path, out: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "finsent_local.cli", "classify", "--model", str(model), "--input",
                             str(source), "--column", "headline", "--output", str(out), "--no-cache", "--scheme", "3"],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_saved_rows(work: Path, rows: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    results = work / "results.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= rows:
            return
        time.sleep(0.05)
    raise AssertionError(f"the job did not save {rows} rows in time (exit {proc.poll()})")


def _assert_same_output(scored: list[list[str]], reference: list[list[str]]) -> None:
    assert len(scored) == len(reference) == RESUME_ROWS + 1 and scored[0] == reference[0]
    for got, want in zip(scored[1:], reference[1:]):
        assert got[:3] == want[:3] and got[-1] == want[-1], (got, want)  # id, text, label ... error
        for a, b in zip(got[3:-1], want[3:-1]):  # score and probabilities: llama.cpp may batch differently
            assert (a == b == "") or abs(float(a) - float(b)) < 5e-3


@pytest.mark.parametrize("how", ["ctrl-c", "sigkill"])
def test_interrupted_job_resumes_to_the_same_output(how, model, resume_source, tmp_path):
    source, reference = resume_source
    out = tmp_path / "archive.scored.csv"
    work = tmp_path / ".archive.scored.csv.finsent-partial"
    env = {"FINSENT_CACHE_DIR": str(tmp_path / "cache")}
    proc = _start_job(model, source, out, env)
    _wait_for_saved_rows(work, 300, proc)
    assert not out.exists()  # nothing under the output name until the whole file is there
    proc.send_signal(signal.SIGINT if how == "ctrl-c" else signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)
    if how == "ctrl-c":
        assert proc.returncode == 130 and "Interrupted: " in stderr and "run the same command again" in stderr, stderr
        assert "Traceback" not in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    saved = (work / "results.jsonl").read_bytes().count(b"\n")
    assert 300 <= saved < RESUME_ROWS and not out.exists()

    code, _, stderr = run_finsent("classify", "--model", str(model), "--input", str(source), "--column", "headline",
                                  "--output", str(out), "--no-cache", "--scheme", "3", env=env)
    assert code == 0, stderr
    assert f"Continuing: {saved:,} of {RESUME_ROWS:,} rows were already done" in stderr
    _assert_same_output(read_csv(out), reference)
    assert not work.exists()  # the work folder goes once the output is in place


def test_changed_input_starts_over(model, resume_source, tmp_path):
    source, _ = resume_source
    copy = tmp_path / "archive.csv"
    copy.write_bytes(source.read_bytes())
    out = tmp_path / "out.csv"
    env = {"FINSENT_CACHE_DIR": str(tmp_path / "cache")}
    proc = _start_job(model, copy, out, env)
    _wait_for_saved_rows(tmp_path / ".out.csv.finsent-partial", 128, proc)
    code, _, stderr = run_finsent("classify", "--model", str(model), "--input", str(copy), "--column", "headline",
                                  "--output", str(out), "--no-cache", "--scheme", "3", env=env)
    assert code == 1 and "another `finsent classify` is working on this output" in stderr  # one run at a time
    assert proc.poll() is None and (tmp_path / ".out.csv.finsent-partial" / "results.jsonl").exists()
    proc.kill()
    proc.wait()
    with open(copy, "a", newline="") as f:  # the input grew meanwhile
        f.write("9999,Hooli raises full-year guidance\r\n")
    code, _, stderr = run_finsent("classify", "--model", str(model), "--input", str(copy), "--column", "headline",
                                  "--output", str(out), "--scheme", "3", env=env)
    assert code == 0 and "starting over" in stderr and "Continuing" not in stderr, stderr
    assert len(read_csv(out)) == RESUME_ROWS + 2


# -- lines and arguments -----------------------------------------------------------------------------------
def _pipe(model, stdin: bytes, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "finsent_local.cli", "classify", "--model", str(model), *args],
                          input=stdin, capture_output=True, env={**os.environ, **env}, timeout=300)


def test_lines_give_one_row_each_blank_ones_included(model, env, engine_labels):
    lines = [HEADLINES[0], "", HEADLINES[1], "   ", HEADLINES[2]]
    text_run = _pipe(model, ("\n".join(lines) + "\n").encode(), env=env)
    json_run = _pipe(model, ("\r\n".join(lines) + "\r\n").encode(), "--json", env=env)
    assert text_run.returncode == json_run.returncode == 1  # some rows failed: the same rule either way
    assert text_run.stderr.decode().strip() == json_run.stderr.decode().strip() == "2 of 5 texts could not be classified"
    rows = text_run.stdout.decode().splitlines()
    assert len(rows) == 5 and rows[1].startswith("#FINSENT! text is empty")
    assert all(r.split("\t")[0] in engine_labels(t) for r, t in zip(rows[::2], lines[::2]))
    records = [json.loads(r) for r in json_run.stdout.decode().splitlines()]
    assert [r.get("label") for r in records] == [r.split("\t")[0] if not r.startswith("#") else None for r in rows]
    assert [r["text"] for r in records] == lines
    fine = _pipe(model, (HEADLINES[3] + "\n").encode(), "--json", env=env)
    assert fine.returncode == 0 and fine.stderr == b""


def test_long_and_broken_lines(model, env):
    too_long = "Profit rose. " * 3100  # over 40,000 characters: an error row that does not echo it back whole
    truncated = " ".join(["Hooli raises full-year guidance"] * 300)  # under the character limit, over the tokens
    stdin = "\n".join([too_long, truncated]).encode() + b"\nSoci\xe9t\xe9 G\xe9n\xe9rale\n" + HEADLINES[0].encode()
    run = _pipe(model, stdin, env=env)
    rows = run.stdout.decode().splitlines()
    assert run.returncode == 1 and len(rows) == 4
    assert rows[0].startswith("#FINSENT! text too long") and len(rows[0]) < 400 and "(40,300 characters)" in rows[0]
    assert rows[1].split("\t")[2].startswith("[truncated] Hooli raises")
    # Bytes that are not UTF-8: that row only, said as such (not as "lone surrogates").
    assert rows[2].startswith("#FINSENT! text is not UTF-8 (byte 0xE9 at character 5)")
    assert rows[3].split("\t")[2] == HEADLINES[0]
    records = [json.loads(r) for r in _pipe(model, stdin, "--json", env=env).stdout.decode().splitlines()]
    assert records[0]["error"]["code"] == "text_too_long" and len(records[0]["text"]) < 300
    assert records[1]["truncated"] is True


def test_option_mistakes_are_one_line(model, env):
    for args, message in [(["--output", "x.csv"], "--output goes with --input FILE"),
                          (["Profit rose", "--input", "x.csv"], "give texts or --input FILE, not both"),
                          (["--input", "x.csv", "--column", "a"], "--output is needed with --input")]:
        code, stdout, stderr = run_finsent("classify", "--model", str(model), *args, env=env)
        lines = stderr.strip().splitlines()
        assert code == 1 and stdout == "" and len(lines) == 1 and lines[0].startswith(f"Error: {message}"), stderr


def test_labels_match_the_three_way_scheme_too(model, env, engine_labels):
    code, stdout, _ = run_finsent("classify", "--model", str(model), "--scheme", "3", *HEADLINES[:4], env=env)
    rows = stdout.splitlines()
    assert code == 0 and len(rows) == 4 and all(r.split("\t")[0] in engine_labels(t, "3") for r, t in zip(rows, HEADLINES))
    assert set(LABELS_3) >= {r.split("\t")[0] for r in stdout.splitlines()}


def test_progress_bar_on_a_terminal_only(model, env, tmp_path):
    """stderr a terminal: a progress bar (rows, rate); piped or --quiet: only the last line."""
    import fcntl
    import pty
    import struct
    import termios

    data = write_awkward_csv(tmp_path / "news.csv", 300)
    blank = sum(1 for row in data[1:] if not row[1].strip())
    command = [sys.executable, "-m", "finsent_local.cli", "classify", "--model", str(model), "--input",
               str(tmp_path / "news.csv"), "--column", "headline"]
    # A terminal 100 columns wide, and ones that report 0 columns, or 0 columns and 0 lines (a serial
    # console, some containers, `script`): tqdm alone would draw nothing there.
    for lines, columns in ((24, 100), (24, 0), (0, 0)):
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        proc = subprocess.Popen([*command, "--output", str(tmp_path / f"a{lines}x{columns}.csv")], stderr=follower,
                                stdout=subprocess.DEVNULL, env={**os.environ, **env})
        os.close(follower)
        seen = b""
        while True:
            try:
                block = os.read(leader, 4096)
            except OSError:  # the terminal closed: the process has ended
                break
            if not block:
                break
            seen += block
        assert proc.wait(timeout=60) == 0
        assert b"300/300" in seen and b"row/s" in seen, (lines, columns, seen[-500:])
    for extra in ([], ["--quiet"]):
        out = tmp_path / f"b{len(extra)}.csv"
        code, _, stderr = run_finsent(*command[3:], "--output", str(out), *extra, env=env)
        assert code == 0 and stderr.strip().splitlines() == [
            f"Wrote {out}: 300 rows; {blank} with an error (see the error column)"]


def test_a_changed_encoding_or_delimiter_starts_the_job_over(tmp_path):
    """Resume keys on how the CSV is read: the same bytes read with another --encoding or --delimiter are
    other rows, so the saved results must not be reused."""
    from finsent_local.jobs.file_job import JobIdentity, WorkFolder
    from finsent_local.jobs.tables import RowResult

    source = tmp_path / "in.csv"
    source.write_text("a;b\nx;y\n", encoding="cp1252")
    out = tmp_path / "out.csv"
    first = JobIdentity.of(source, "a", None, "7", "sha", "card", encoding="cp1252", delimiter=";")
    for changed in (JobIdentity.of(source, "a", None, "7", "sha", "card", encoding="utf-8", delimiter=";"),
                    JobIdentity.of(source, "a", None, "7", "sha", "card", encoding="cp1252", delimiter=",")):
        work = WorkFolder(out)
        assert work.claim(first) == (0, False)
        work.append([RowResult("neutral", 0.0, (1.0,), None)])
        work.release()
        again = WorkFolder(out)
        assert again.claim(first) == (1, False)  # the same reading resumes
        again.release()
        other = WorkFolder(out)
        assert other.claim(changed) == (0, True)  # another reading starts over, and says so
        other.release()
        other.results_file.unlink(missing_ok=True)
        other.state_file.unlink()
