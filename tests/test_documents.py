"""Long documents: sentence segmentation on hand-marked financial text, offsets, the document result's
arithmetic against per-sentence /v1/classify answers, the entity filter, limits, and a 100,000-character
transcript through the API and the CLI, on the trained model."""

from __future__ import annotations

import json
import re

import pytest
from conftest import run_finsent
from long_documents import NEGATIVE, NEUTRAL, POSITIVE, transcript

from finsent_local.jobs.documents import DOCUMENT_RULE, nearest_label, summarize
from finsent_local.jobs.sentences import WINDOW_CHARS, split_sentences
from finsent_local.engine.labels import LABEL_VALUES_7, LABELS_7


# -- segmentation ------------------------------------------------------------------------------------------
def test_segmentation_on_hand_marked_financial_text():
    from segmentation_scoring import SPLITTERS, naive_starts, score

    ours = score(SPLITTERS["finsent (pysbd + line and item rules)"])
    naive = score(naive_starts)
    print(f"boundary F1: finsent {ours['f1']:.3f} (P {ours['precision']:.3f}, R {ours['recall']:.3f}); "
          f"naive '. ' split {naive['f1']:.3f}; {ours['boundaries']} boundaries")
    for kind, text, missed, extra in ours["misses"]:
        print(f"  {kind}: missed {missed}, extra {extra}: {text[:100]!r}")
    assert ours["boundaries"] >= 200
    assert ours["f1"] >= 0.97
    assert ours["f1"] > naive["f1"] + 0.1


def test_every_character_is_in_exactly_one_trimmed_sentence():
    from segmentation_cases import CASES, unmarked

    for _, case in CASES:
        text = unmarked(case)
        spans = split_sentences(text)
        covered = "".join(text[s.start:s.end] for s in spans)
        assert re.sub(r"\s", "", covered) == re.sub(r"\s", "", text)  # nothing lost, nothing twice
        for before, after in zip(spans, spans[1:]):
            assert before.end <= after.start and not text[before.end:after.start].strip()
        for s in spans:
            sentence = text[s.start:s.end]
            assert sentence == sentence.strip() and sentence


def test_long_text_is_split_window_by_window_as_in_one_piece():
    """Windows of WINDOW_CHARS give what one pass over the whole text gives (one pass is slow: pysbd's
    time grows faster than the text)."""
    import pysbd

    sentences = [f"Unit {i} of Acme Corp. reported EUR {i}.5 mn in sales vs. {i - 1}.9 mn a year ago."
                 if i % 3 else f'"We see {i}% growth," said Mr. Smith of the U.S. arm.' for i in range(1, 400)]
    text = " ".join(sentences)
    assert len(text) > 5 * WINDOW_CHARS
    whole = [(p.start, p.end) for p in pysbd.Segmenter(language="en", clean=False, char_span=True).segment(text)]
    ours = [(s.start, s.end) for s in split_sentences(text)]
    assert [text[a:b].strip() for a, b in whole] == [text[a:b] for a, b in ours] == sentences


@pytest.mark.parametrize("text, sentences", [
    ("1) Revenue rose 2) Margins fell", ["1) Revenue rose", "2) Margins fell"]),
    ("Highlights: 1.) Revenue rose 2.) Margins fell", ["Highlights:", "1.) Revenue rose", "2.) Margins fell"]),
    ("Highlights 1.) Revenue rose. 2.) Margins fell.", ["Highlights", "1.) Revenue rose.", "2.) Margins fell."]),
    ("Key drivers a. Revenue rose b. Margins fell", ["Key drivers", "a. Revenue rose", "b. Margins fell"]),
    ("a) Revenue rose b) Margins fell", ["a) Revenue rose", "b) Margins fell"]),
    ("Highlights: • Revenue rose 5%. • Margins fell", ["Highlights: • Revenue rose 5%.", "• Margins fell"]),
])
def test_inline_enumerations_are_split_as_pysbd_splits_them(text, sentences):
    """An item marker that starts a piece inside a line ("1.)", "2)", "b.", a bullet) starts a sentence, as
    a plain pysbd run has it, even when the piece before has no closing punctuation."""
    import pysbd

    alone = [text[p.start:p.end].strip() for p in pysbd.Segmenter(language="en", clean=False, char_span=True).segment(text)]
    assert [text[s.start:s.end] for s in split_sentences(text)] == alone == sentences


def test_a_numbered_line_with_a_closing_parenthesis_starts_a_sentence():
    text = ("Our results were mixed this quarter as described below in more detail for investors\n"
            "1.) Revenue rose 5%, helped by strong demand in Europe and Asia.\n2.) Margins fell.")
    assert [text[s.start:s.end] for s in split_sentences(text)] == [
        "Our results were mixed this quarter as described below in more detail for investors",
        "1.) Revenue rose 5%, helped by strong demand in Europe and Asia.", "2.) Margins fell."]


@pytest.mark.parametrize("text", [
    "We expect 1.) higher revenue and 2.) lower costs.",  # a lower-case item runs on in its sentence
    "The plan: 1) cut costs, 2) sell assets and 3) buy back shares.",
    "See Sections 10(b) and 20(a) of the Act.",  # pysbd cuts before "(b)": a reference, not an item
    "Virtucon Inc. Q3 2026 Earnings Call Transcript",  # a title, not "Inc." ending a sentence
    "He joined U.S. Steel in 2019 and later the U.S. Food and Drug Administration.",  # names after U.S.
    "Head of U.S. Sales, Jane Doe, said U.S. Sales and Marketing grew in the U.S. and U.K. markets.",
])
def test_one_sentence_stays_one(text):
    assert [text[s.start:s.end] for s in split_sentences(text)] == [text]


@pytest.mark.parametrize("text, sentences", [
    ("We sold 3.5 bn units in the U.S. Sales rose approx. 5%", ["We sold 3.5 bn units in the U.S.", "Sales rose approx. 5%"]),
    ("Demand was weak in the U.K. We expect a recovery.", ["Demand was weak in the U.K.", "We expect a recovery."]),
    ("Virtucon Inc. Q3 2026 Earnings Call Transcript\nOperator: Welcome to Virtucon Inc. We begin now.",
     ["Virtucon Inc. Q3 2026 Earnings Call Transcript", "Operator: Welcome to Virtucon Inc.", "We begin now."]),
    ("She joined from Otterbrook Pharma, Inc. She succeeds Ms. Joan Whitaker",
     ["She joined from Otterbrook Pharma, Inc.", "She succeeds Ms. Joan Whitaker"]),
])
def test_a_country_or_company_abbreviation_ends_a_sentence_before_a_sentence_starter(text, sentences):
    assert [text[s.start:s.end] for s in split_sentences(text)] == sentences


# -- the document result -------------------------------------------------------------------------------------
def test_document_label_rule_and_arithmetic_by_hand():
    sentences = [
        {"index": 0, "text": "a" * 10, "label": "strong positive", "score": 0.9},
        {"index": 1, "text": "b" * 30, "label": "neutral", "score": 0.0},
        {"index": 2, "text": "c" * 20, "label": "moderately negative", "score": -0.6},
        {"index": 3, "text": "d", "error": {"code": "text_too_long", "message": "x"}},
    ]
    doc = summarize(sentences, LABELS_7, LABEL_VALUES_7)
    assert doc["score"] == pytest.approx(0.1) and doc["label"] == "neutral"  # 0.1 is nearest 0
    assert doc["length_weighted_score"] == pytest.approx((0.9 * 10 - 0.6 * 20) / 60)
    assert doc["non_neutral_share"] == pytest.approx(2 / 3)
    assert (doc["sentences"], doc["scored"], doc["errors"]) == (4, 3, 1)
    assert doc["most_positive"]["index"] == 0 and doc["most_negative"]["index"] == 2
    assert doc["label_counts"]["neutral"] == 1 and doc["rule"] == DOCUMENT_RULE
    assert nearest_label(0.2, LABELS_7, LABEL_VALUES_7) == "mildly positive"  # 1/3 away by 0.13, 0 by 0.2
    assert summarize([], LABELS_7, LABEL_VALUES_7)["label"] is None




def test_sentences_get_the_labels_they_get_alone_and_the_document_adds_them_up(client):
    """A press release mixing clearly positive and clearly negative sentences: each sentence's label is
    the one /v1/classify gives it alone, and the document figures are those sentence results summed."""
    sentences = [POSITIVE[0], NEGATIVE[0], NEUTRAL[0], POSITIVE[1], NEGATIVE[1]]
    text = "PRESS RELEASE\n" + " ".join(sentences[:3]) + "\n\n- " + sentences[3] + "\n- " + sentences[4]
    answer = client.post("/v1/documents", json={"text": text, "scheme": "7"})
    assert answer.status_code == 200, answer.json
    got = answer.json["sentences"]
    assert [s["text"] for s in got] == ["PRESS RELEASE", *sentences[:3], "- " + sentences[3], "- " + sentences[4]]
    for s in got:
        assert text[s["start"]:s["end"]] == s["text"]
    alone = client.post("/v1/classify", json={"texts": [s["text"] for s in got], "scheme": "7"}).json["results"]
    assert [s["label"] for s in got] == [a["label"] for a in alone]
    for s, a in zip(got, alone):
        assert s["probs"] == pytest.approx(a["probs"], abs=1e-6) and s["score"] == pytest.approx(a["score"], abs=1e-6)
    assert {got[1]["label"], got[4]["label"]} <= {"moderately positive", "strong positive"}
    assert {got[2]["label"], got[5]["label"]} <= {"moderately negative", "strong negative"}
    doc = answer.json["document"]
    scores = [a["score"] for a in alone]
    assert doc["score"] == pytest.approx(sum(scores) / len(scores), abs=1e-5)
    lengths = [len(s["text"]) for s in got]
    assert doc["length_weighted_score"] == pytest.approx(sum(x * n for x, n in zip(scores, lengths)) / sum(lengths),
                                                         abs=1e-5)
    assert doc["non_neutral_share"] == pytest.approx(sum(a["label"] != "neutral" for a in alone) / len(alone), abs=1e-5)
    assert doc["label_counts"] == {label: sum(a["label"] == label for a in alone) for label in LABELS_7}
    assert doc["most_positive"]["index"] == max(range(len(scores)), key=scores.__getitem__)
    assert doc["most_negative"]["index"] == min(range(len(scores)), key=scores.__getitem__)
    assert doc["label"] == nearest_label(doc["score"], LABELS_7, LABEL_VALUES_7)


def test_about_keeps_the_sentences_that_name_the_entity(client):
    text = " ".join(POSITIVE + NEGATIVE + ["Virtucon Holdings, not Virtucons, holds its meeting."])
    answer = client.post("/v1/documents", json={"text": text, "scheme": "3", "about": "virtucon|Dunder Mifflin"}).json
    assert [s["index"] for s in answer["sentences"]] == [1, 2, 4]  # case-insensitive, whole words, aliases
    assert answer["document"]["about"] == {"names": ["virtucon", "Dunder Mifflin"], "matched": 3, "of": 5}
    none = client.post("/v1/documents", json={"text": text, "about": ["Initech"]}).json
    assert none["sentences"] == [] and none["document"]["label"] == "no mention"
    assert none["document"]["about"]["matched"] == 0


def test_document_limits_are_413_and_bad_requests_400(client, loaded_runtime):
    limits = loaded_runtime.limits
    too_long = client.post("/v1/documents", json={"text": "a" * (limits.max_document_chars + 1)})
    assert too_long.status_code == 413 and too_long.json["error"]["code"] == "document_too_long"
    many = client.post("/v1/documents", json={"text": "Up. " * (limits.max_document_sentences + 1)})
    assert many.status_code == 413 and many.json["error"]["code"] == "too_many_sentences"
    for body in ({}, {"text": 5}, {"text": "x", "about": 3}, {"text": "x", "scheme": "9"}):
        response = client.post("/v1/documents", json=body)
        assert response.status_code == 400, body
    empty = client.post("/v1/documents", json={"text": "   "}).json
    assert empty["sentences"] == [] and empty["document"]["label"] is None


def test_a_100000_character_transcript_through_the_api(client):
    text = transcript()
    assert len(text) >= 100_000
    answer = client.post("/v1/documents", json={"text": text, "scheme": "3"})
    assert answer.status_code == 200
    sentences = answer.json["sentences"]
    assert len(sentences) == 2400 and all(text[s["start"]:s["end"]] == s["text"] for s in sentences)
    assert answer.json["document"]["scored"] == 2400


def test_the_cli_splits_texts_into_sentences(trained_gguf, tmp_path):
    text = " ".join([POSITIVE[0], NEGATIVE[0], POSITIVE[1]])
    env = {"FINSENT_CACHE_DIR": str(tmp_path / "cache")}
    code, stdout, stderr = run_finsent("classify", "--model", str(trained_gguf["q8_0"]), "--split", "sentences",
                                       "--json", text, env=env)
    assert code == 0, stderr
    (record,) = [json.loads(line) for line in stdout.splitlines()]
    assert [s["text"] for s in record["sentences"]] == [POSITIVE[0], NEGATIVE[0], POSITIVE[1]]
    assert record["document"]["scored"] == 3 and record["text"] == text
    code, stdout, stderr = run_finsent("classify", "--model", str(trained_gguf["q8_0"]), "--split", "sentences",
                                       "--about", "Virtucon", text, env=env)
    assert code == 0, stderr
    label, score, counts, shown = stdout.rstrip("\n").split("\t")
    assert label in LABELS_7 and float(score) > 0.3 and counts == "1 of 3 sentences, 1 not neutral"
    assert shown == text
    code, stdout, stderr = run_finsent("classify", "--model", str(trained_gguf["q8_0"]), "--split", "sentences",
                                       "--about", "Virtucon", text, "  ", NEUTRAL[0], env=env)
    rows = stdout.splitlines()
    assert code == 1 and rows[1].startswith("#FINSENT! text is empty")  # a blank one is an error row, as in line mode
    assert rows[2].startswith("no mention\t\t0 of 1 sentences") and "1 of 3 texts could not be classified" in stderr


def test_a_file_of_documents_gets_one_row_each_and_a_sentence_file(trained_gguf, tmp_path):
    import csv

    env = {"FINSENT_CACHE_DIR": str(tmp_path / "cache")}
    documents = [" ".join([POSITIVE[0], NEGATIVE[0], POSITIVE[1]]), "", "PRESS RELEASE\n" + " ".join(NEGATIVE),
                 "Nothing here names the firm."]
    with open(tmp_path / "docs.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "body"])
        writer.writerows([[i, d] for i, d in enumerate(documents)])
    model = str(trained_gguf["q8_0"])
    code, _, stderr = run_finsent("classify", "--model", model, "--input", str(tmp_path / "docs.csv"), "--column", "body",
                                  "--output", str(tmp_path / "out.csv"), "--split", "sentences", "--sentences-output",
                                  str(tmp_path / "sentences.csv"), env=env)
    assert code == 0, stderr
    assert "Wrote " + str(tmp_path / "sentences.csv") + ": 7 sentences" in stderr
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "body", "label", "score", "weighted_score", "non_neutral_share", "sentences",
                             "most_positive_sentence", "most_negative_sentence", "error"]
    assert rows[1]["error"] == "text is empty" and rows[1]["label"] == ""
    for row, text in ((rows[0], documents[0]), (rows[2], documents[2])):  # as the command gives each document
        code, stdout, _ = run_finsent("classify", "--model", model, "--split", "sentences", "--json", text, env=env)
        doc = json.loads(stdout)["document"]
        assert row["label"] == doc["label"] and float(row["score"]) == pytest.approx(doc["score"], abs=1e-6)
        assert float(row["non_neutral_share"]) == pytest.approx(doc["non_neutral_share"], abs=1e-6)
        assert int(row["sentences"]) == doc["scored"]
        assert int(row["most_positive_sentence"]) == doc["most_positive"]["index"]
    with open(tmp_path / "sentences.csv", newline="", encoding="utf-8") as f:
        sentences = list(csv.DictReader(f))
    assert [(s["row"], s["sentence"]) for s in sentences] == [("1", "0"), ("1", "1"), ("1", "2"), ("3", "0"),
                                                             ("3", "1"), ("3", "2"), ("4", "0")]
    for s in sentences:
        text = documents[int(s["row"]) - 1]
        assert text[int(s["start"]):int(s["end"])] == s["text"]
    assert list(sentences[0])[:7] == ["row", "sentence", "start", "end", "text", "label", "score"]
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".finsent-partial")] == []


def test_document_counts_and_indices_are_integer_arrow_columns():
    """The arrays every Arrow writer takes (the Parquet file job, Ray's batches): the sentence count and
    the extremes' indices int64, null in an error row; the scores float64."""
    from finsent_local.jobs.documents import document_columns
    from finsent_local.jobs.tables import RowResult, result_arrays, result_columns

    columns = document_columns("doc_")
    arrays = dict(zip(columns, result_arrays([RowResult("neutral", 0.1, (0.2, 0.5, 4, 0, 3)),
                                              RowResult(error="text is empty")], columns)))
    assert {name: str(a.type) for name, a in arrays.items()} == {
        "doc_label": "string", "doc_score": "double", "doc_weighted_score": "double",
        "doc_non_neutral_share": "double", "doc_sentences": "int64", "doc_most_positive_sentence": "int64",
        "doc_most_negative_sentence": "int64", "doc_error": "string"}
    assert arrays["doc_sentences"].to_pylist() == [4, None]
    texts = result_columns(("negative", "neutral", "positive"), "doc_")  # a text job's: probabilities stay floats
    assert [str(a.type) for a in result_arrays([RowResult("neutral", 0.0, (0.2, 0.5, 0.3))], texts)] == [
        "string", "double", "double", "double", "double", "string"]


def test_a_parquet_file_of_documents_keeps_counts_and_indices_integers(trained_gguf, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    documents = [" ".join([POSITIVE[0], NEGATIVE[0], POSITIVE[1]]), "", "PRESS RELEASE\n" + " ".join(NEGATIVE)]
    pq.write_table(pa.table({"id": [1, 2, 3], "body": documents}), tmp_path / "docs.parquet")
    code, _, stderr = run_finsent("classify", "--model", str(trained_gguf["q8_0"]), "--input",
                                  str(tmp_path / "docs.parquet"), "--column", "body", "--output",
                                  str(tmp_path / "out.parquet"), "--split", "sentences",
                                  env={"FINSENT_CACHE_DIR": str(tmp_path / "cache")})
    assert code == 0, stderr
    out = pq.read_table(tmp_path / "out.parquet")
    for name in ("sentences", "most_positive_sentence", "most_negative_sentence"):
        assert out.schema.field(name).type == pa.int64(), (name, out.schema)
    assert out.schema.field("score").type == out.schema.field("weighted_score").type == pa.float64()
    assert out.schema.field("id").type == pa.int64() and out.column("id").to_pylist() == [1, 2, 3]
    assert out.column("sentences").to_pylist() == [3, None, 3]
    assert out.column("error").to_pylist()[1] == "text is empty"
    assert all(0 <= i < n for i, n in zip(out.column("most_positive_sentence").to_pylist(),
                                          out.column("sentences").to_pylist()) if n is not None)


def test_a_100000_character_transcript_through_the_cli(trained_gguf, tmp_path):
    """One CSV cell holding the whole transcript (line breaks inside the quoted value): one document row,
    and its 2,400 sentences in the sentence file, each at its offsets in the cell."""
    import csv

    text = transcript()
    with open(tmp_path / "calls.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["call", "transcript"], ["Q3", text]])
    code, _, stderr = run_finsent("classify", "--model", str(trained_gguf["q8_0"]), "--input", str(tmp_path / "calls.csv"),
                                  "--column", "transcript", "--output", str(tmp_path / "out.csv"), "--split",
                                  "sentences", "--scheme", "3", "--sentences-output", str(tmp_path / "sentences.csv"),
                                  env={"FINSENT_CACHE_DIR": str(tmp_path / "cache")})
    assert code == 0, stderr
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert row["transcript"] == text and row["error"] == "" and int(row["sentences"]) == 2400
    with open(tmp_path / "sentences.csv", newline="", encoding="utf-8") as f:
        sentences = list(csv.DictReader(f))
    assert [int(s["sentence"]) for s in sentences] == list(range(2400))
    assert all(text[int(s["start"]):int(s["end"])] == s["text"] and s["label"] for s in sentences)
    assert sum(1 for s in sentences if s["label"] != "neutral") / 2400 == pytest.approx(float(row["non_neutral_share"]))


def test_saved_sentences_of_rows_not_done_are_dropped_on_resume(tmp_path):
    from finsent_local.jobs.file_job import WorkFolder

    work = WorkFolder(tmp_path / "out.csv")
    work.path.mkdir()
    work.append_sentences([{"row": r, "sentence": 0, "text": f"s{r}"} for r in (1, 2, 3)])
    with open(work.sentences_file, "a") as f:
        f.write('{"row": 4, "sent')  # cut short by a crash
    work.trim_sentences(2)
    assert [json.loads(line)["row"] for line in work.sentences_file.read_text().splitlines()] == [1, 2]


def test_sentences_output_mistakes_are_one_line(trained_gguf, tmp_path):
    (tmp_path / "docs.csv").write_text("body\nInitech raises full-year guidance.\n", encoding="utf-8")
    base = ["classify", "--model", str(trained_gguf["q8_0"]), "--input", str(tmp_path / "docs.csv"), "--column", "body",
            "--output", str(tmp_path / "out.csv")]
    for extra, message in ((["--sentences-output", str(tmp_path / "s.csv")], "--sentences-output goes with --split"),
                           (["--split", "sentences", "--sentences-output", str(tmp_path / "s.jsonl")], "extension .csv"),
                           (["--split", "sentences", "--sentences-output", str(tmp_path / "no" / "s.csv")], "no folder"),
                           (["--split", "sentences", "--sentences-output", str(tmp_path / "docs.csv"), "--force"],
                            f"--sentences-output {tmp_path / 'docs.csv'} is the input"),
                           (["--split", "sentences", "--sentences-output", str(tmp_path / "out.csv"), "--force"],
                            "--output and --sentences-output name the same place"),
                           (["--split", "sentences", "--sentences-output", str(tmp_path / "s.csv"), "--ray"],
                            "--sentences-output is not written on Ray")):
        code, stdout, stderr = run_finsent(*base, *extra, env={"FINSENT_CACHE_DIR": str(tmp_path / "cache")})
        assert code == 1 and message in stderr and len(stderr.strip().splitlines()) == 1, (extra, stderr)
    assert not (tmp_path / "out.csv").exists()
