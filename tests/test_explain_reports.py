"""Explanations where reports already point at texts (issue 35): `finsent eval --report` shades the words
of its most confident errors, and POST /v1/documents explains its most positive and most negative
sentence on request. On the trained fixture, whose label is decided by the event phrase by construction."""

from __future__ import annotations

import csv
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import run_finsent
from long_documents import NEGATIVE, NEUTRAL, POSITIVE
from sentiment_data import EVENTS_7, held_out_examples

from finsent_local.engine import occlusion
from finsent_local.engine.labels import LABELS_7

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)> Virtucon files for bankruptcy protection"


def _event_span(text: str) -> tuple[int, int]:
    event = next(e for events in EVENTS_7.values() for e in events if e in text)
    start = text.index(event)
    return start, start + len(event)


class _ErrorRows(HTMLParser):
    """The errors tables' rows: per row its row number, the text cell's characters (without the note
    under it), its shaded spans (class, --shade, data-weight, title, text) and the note under it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: list[dict] = []
        self.tags: list[str] = []
        self._cell = None  # "row", "text", "why" or None
        self._span = None
        self._tr = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "tr":
            self._tr = {"row": "", "text": "", "spans": [], "why": "", "cells": 0}
        elif tag == "td" and self._tr is not None:
            self._tr["cells"] += 1
            self._cell = "text" if "text" in (a.get("class") or "").split() else (
                "row" if self._tr["cells"] == 1 else None)
        elif tag == "div" and self._cell == "text" and "why" in (a.get("class") or ""):
            self._cell = "why"
            self._tr["why_class"] = a.get("class")
        elif tag == "span" and self._cell == "text":
            shade = re.fullmatch(r"--shade:([0-9.]+)", a.get("style") or "")
            self._span = {"class": a.get("class"), "shade": float(shade.group(1)) if shade else None,
                          "weight": float(a["data-weight"]) if "data-weight" in a else None,
                          "title": a.get("title"), "text": "", "start": len(self._tr["text"])}

    def handle_endtag(self, tag):
        if tag == "span" and self._span is not None:
            self._tr["spans"].append(self._span)
            self._span = None
        elif tag == "td":
            self._cell = None
        elif tag == "div" and self._cell == "why":
            self._cell = "text"
        elif tag == "tr" and self._tr is not None:
            if self._tr["row"].strip().replace(",", "").isdigit() and self._tr["text"]:
                self.rows.append(self._tr)
            self._tr = None

    def handle_data(self, data):
        if self._tr is None or self._cell is None:
            return
        key = {"row": "row", "text": "text", "why": "why"}[self._cell]
        self._tr[key] += data
        if self._span is not None:
            self._span["text"] += data


def _write_gold(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["headline", "sentiment"])
        writer.writerows(rows)


def _opposite(label: str) -> str:
    return LABELS_7[len(LABELS_7) - 1 - LABELS_7.index(label)]


# Held-out headlines whose gold labels are the opposite of the truth (neutral stays neutral, so it is
# right): the model, right about them, makes confident "errors" whose cause is the event phrase.
@pytest.fixture(scope="module")
def wrong_gold(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wrong-gold")
    rows = [(text, _opposite(label)) for text, label in held_out_examples(per_label=3)]
    _write_gold(folder / "gold.csv", rows + [(HOSTILE, "strong positive")])
    return folder / "gold.csv"


@pytest.fixture(scope="module")
def report(trained_gguf, wrong_gold, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("report")
    code, _, stderr = run_finsent("eval", "--model", str(trained_gguf["f16"]), "--input", str(wrong_gold),
                                  "--text-column", "headline", "--label-column", "sentiment",
                                  "--report", str(folder / "report.html"),
                                  env={"FINSENT_CACHE_DIR": str(folder / "cache")})
    assert code == 0, stderr
    return (folder / "report.html").read_text(encoding="utf-8")


def _errors(page: str) -> _ErrorRows:
    parsed = _ErrorRows()
    parsed.feed(page)
    return parsed


def test_the_reports_confident_errors_have_their_words_shaded(report, client):
    parsed = _errors(report)
    rows = parsed.rows
    assert len(rows) == 19  # 18 non-neutral headlines with opposite gold labels, and the hostile one
    assert "Each error's words are shaded by occlusion" in report
    explained = client.post("/v1/explain", json={"texts": [r["text"] for r in rows], "scheme": "7"}).json["results"]
    strongest_on_event = 0
    for row, api in zip(rows, explained):
        text = row["text"]
        spans = row["spans"]
        # one span per reader word, at its place in the text, with /v1/explain's weight (same F16 model)
        assert [s["text"] for s in spans] == [u.text for u in occlusion.units(text)]
        assert [s["start"] for s in spans] == [u.start for u in occlusion.units(text)]
        assert [s["weight"] for s in spans] == pytest.approx([w["weight"] for w in api["words"]], abs=2e-3)
        for s in spans:
            if abs(s["weight"]) >= 1e-4:  # data-weight has 4 decimals: a smaller one reads as 0
                assert s["class"] == ("w neg" if s["weight"] < 0 else "w pos")
            titled = re.match(r"weight ([-+][0-9.]+) \(score with the word minus without it\); p\((.+?)\) ", s["title"])
            assert float(titled.group(1)) == pytest.approx(s["weight"], abs=1e-3) and titled.group(2) == api["label"]
        peak = max(spans, key=lambda s: abs(s["weight"]))
        # each row's strongest word deepest, faint where no word alone moved the score by 0.05
        assert peak["shade"] == pytest.approx(0.7 * min(1.0, abs(peak["weight"]) / 0.05), abs=2e-3)
        assert row["why"].startswith("strongest: " + peak["text"])
        start, end = _event_span(text)
        strongest_on_event += start <= peak["start"] and peak["start"] + len(peak["text"]) <= end
    # By construction the event phrase decides the label; measured: the strongest word is in it for
    # 18 of 19 errors (the 19th: "Cooper" in "Sterling Cooper shares slip slightly on cautious outlook").
    assert strongest_on_event >= 0.8 * len(rows), strongest_on_event


def test_html_in_an_explained_text_is_shown_as_text(report):
    parsed = _errors(report)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    (hostile,) = [r for r in parsed.rows if r["text"].startswith("<script>")]
    assert hostile["text"] == HOSTILE  # the cell's characters, spans and all, are exactly the text
    assert {s["text"] for s in hostile["spans"]} >= {"script", "alert", "onerror", "bankruptcy"}
    # escaped around the spans: "<script>" is "&lt;" + the word "script" + "&gt;"
    assert "&lt;<span class='w " in report and "&gt;&lt;<span class='w " in report and "<script" not in report


def test_a_row_that_cannot_be_explained_is_listed_unshaded_with_the_reason(trained_gguf, tmp_path):
    """Over the explain word limit (256 per text): the row stays, plain, with why; the rest are shaded."""
    long_text = "Virtucon files for bankruptcy protection, " * 65  # 325 words
    _write_gold(tmp_path / "gold.csv", [(long_text, "strong positive"),
                                        ("Virtucon shares soar 40% after record profit", "strong negative")])
    report_path = tmp_path / "report.html"
    code, _, stderr = run_finsent("eval", "--model", str(trained_gguf["f16"]), "--input", str(tmp_path / "gold.csv"),
                                  "--text-column", "headline", "--label-column", "sentiment",
                                  "--report", str(report_path), env={"FINSENT_CACHE_DIR": str(tmp_path / "cache")})
    assert code == 0, stderr
    rows = {r["text"]: r for r in _errors(report_path.read_text(encoding="utf-8")).rows}
    assert set(rows) == {long_text, "Virtucon shares soar 40% after record profit"}
    assert rows[long_text]["spans"] == []
    assert rows[long_text]["why"] == "Not explained: 325 words; at most 256 are explained per text"
    assert len(rows["Virtucon shares soar 40% after record profit"]["spans"]) == 7


def test_no_explain_lists_the_errors_plain(trained_gguf, wrong_gold, tmp_path):
    report_path = tmp_path / "report.html"
    code, _, stderr = run_finsent("eval", "--model", str(trained_gguf["q8_0"]), "--input", str(wrong_gold),
                                  "--text-column", "headline", "--label-column", "sentiment",
                                  "--report", str(report_path), "--no-explain",
                                  env={"FINSENT_CACHE_DIR": str(tmp_path / "cache")})
    assert code == 0, stderr
    page = report_path.read_text(encoding="utf-8")
    rows = _errors(page).rows
    assert len(rows) == 19 and all(r["spans"] == [] and r["why"] == "" for r in rows)
    assert "shaded by occlusion" not in page


def test_benchmark_rows_are_explained_with_their_own_instruction_subject(trained_gguf):
    """`finsent eval --benchmark` asks about news or tweets per row (FiQA mixes them): each listed error
    is explained by the model opened with its row's subject, as it was classified."""
    from finsent_local.engine.classifier import EngineOptions
    from finsent_local.engine.service import open_service
    from finsent_local.limits import Limits
    from finsent_local.quality.evaluation import EvalRequest, evaluate_rows, explain_confident_errors

    def open_model(path, prompt, subject="news"):
        return open_service(path, EngineOptions(prompt_preset=prompt, instruction_subject=subject), None,
                            Limits(max_wait_s=None))

    rows = [(text, _opposite(label)) for text, label in held_out_examples(per_label=1) if label != "neutral"]
    texts, golds = [t for t, _ in rows] * 2, [g for _, g in rows] * 2
    subjects = ["news"] * len(rows) + ["tweet"] * len(rows)
    request = EvalRequest(Path("fiqa"), "text", "label", [trained_gguf["f16"]], ["train"])
    evaluation = evaluate_rows(request, texts, golds, list(range(1, len(texts) + 1)), {}, [], open_model,
                               subjects=subjects)
    (errors,) = evaluation.confident_errors
    assert len(errors) == len(texts)
    explain_confident_errors(evaluation, open_model)
    (explained,) = evaluation.error_explanations
    assert set(explained) == set(errors)
    moved = 0
    for subject in ("news", "tweet"):
        service = open_model(trained_gguf["f16"], "train", subject)
        try:
            for i in errors:
                if evaluation.subjects[i] == subject:
                    direct = service.explain([evaluation.texts[i]], "7")[0]
                    assert [w["weight"] for w in explained[i]["words"]] == [w["weight"] for w in direct["words"]]
                    other = explained[(i + len(rows)) % len(texts)]  # the same text asked about the other subject
                    moved += any(abs(a["weight"] - b["weight"]) > 1e-6 for a, b in zip(explained[i]["words"],
                                                                                       other["words"]))
        finally:
            service.close()
    assert moved  # the subject changes the prompt, so the numbers: the routing is seen, not assumed


# -- POST /v1/documents with "explain" -------------------------------------------------------------
def _validate(spec: dict, name: str, instance: dict) -> None:
    import jsonschema

    jsonschema.validate(instance, {**spec, "$ref": f"#/components/schemas/{name}"},
                        cls=jsonschema.Draft202012Validator)


def test_documents_explain_their_strongest_sentences_on_request(client):
    text = " ".join([POSITIVE[0], NEUTRAL[0], NEGATIVE[0], POSITIVE[1]])
    plain = client.post("/v1/documents", json={"text": text, "scheme": "7"}).json
    answer = client.post("/v1/documents", json={"text": text, "scheme": "7", "explain": True})
    assert answer.status_code == 200, answer.json
    doc = answer.json["document"]
    top, bottom = doc["most_positive"], doc["most_negative"]
    assert {top["index"], bottom["index"]} <= {0, 2, 3} and top["index"] != bottom["index"]
    alone = client.post("/v1/explain", json={"texts": [top["text"], bottom["text"]], "scheme": "7"}).json["results"]
    for extreme, explained in zip((top, bottom), alone):
        assert [w["text"] for w in extreme["words"]] == [w["text"] for w in explained["words"]]
        assert [w["weight"] for w in extreme["words"]] == pytest.approx([w["weight"] for w in explained["words"]],
                                                                         abs=1e-6)
    # the strongest word of each is in its event phrase ("raises ...", "files for bankruptcy protection")
    for extreme in (top, bottom):
        peak = occlusion.strongest(extreme["words"], 1)[0]
        start, end = _event_span(extreme["text"])
        assert start <= peak["start"] and peak["end"] <= end, peak
    # only those two: no other sentence carries words, and the rest of the answer is what it was
    assert all("words" not in s for s in answer.json["sentences"])
    assert answer.json["sentences"] == plain["sentences"]
    assert {k: v for k, v in doc.items() if k not in ("most_positive", "most_negative")} == {
        k: v for k, v in plain["document"].items() if k not in ("most_positive", "most_negative")}
    assert {k: v for k, v in top.items() if k != "words"} == plain["document"]["most_positive"]
    spec = client.get("/openapi.json").json
    _validate(spec, "DocumentResponse", answer.json)
    assert spec["components"]["schemas"]["DocumentRequest"]["properties"]["explain"]["type"] == ["boolean", "null"]


def test_documents_explain_false_or_absent_adds_no_words_and_a_non_boolean_is_400(client):
    text = " ".join([POSITIVE[0], NEGATIVE[0]])
    for body in ({"text": text}, {"text": text, "explain": False}, {"text": text, "explain": None}):
        doc = client.post("/v1/documents", json=body).json["document"]
        assert "words" not in doc["most_positive"] and "words" not in doc["most_negative"], body
    for value in ("yes", 1, "true", [True]):
        response = client.post("/v1/documents", json={"text": text, "explain": value})
        assert response.status_code == 400, value
        assert response.json["error"] == {"code": "invalid_parameter", "message": "explain must be true or false",
                                          "type": "invalid_request_error", "param": "explain"}


def test_a_one_sentence_document_and_a_sentence_over_the_word_limit(client, loaded_runtime):
    one = client.post("/v1/documents", json={"text": NEGATIVE[1], "explain": True}).json["document"]
    assert one["most_positive"]["words"] == one["most_negative"]["words"] != []
    limit = loaded_runtime.limits.max_explain_words
    long_sentence = "Sterling Cooper " + "really " * limit + "cuts full-year guidance."
    answer = client.post("/v1/documents", json={"text": long_sentence + " " + POSITIVE[0], "explain": True}).json
    doc = answer["document"]
    assert doc["most_negative"]["text"] == long_sentence and "words" not in doc["most_negative"]
    assert doc["most_negative"]["words_error"] == {
        "code": "too_many_words", "message": f"sentence has {limit + 5} words; at most {limit} are explained per text"}
    assert doc["most_positive"]["words"]  # the other one is still explained
    _validate(client.get("/openapi.json").json, "DocumentResponse", answer)
