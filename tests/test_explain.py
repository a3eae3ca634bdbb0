"""Word attributions by occlusion (issue 35): the units, the engine's shared-prefix scoring, faithfulness
on the trained fixture, and POST /v1/explain."""

from __future__ import annotations

import json
import random

import pytest

from finsent_local.engine import occlusion
from finsent_local.engine.classifier import ClassifierEngine, TextError
from sentiment_data import EVENTS_7


# -- units ------------------------------------------------------------------------------------------
def test_reader_words_keep_numbers_whole_with_offsets():
    text = "Acme's $1.2bn deal: shares -8% (U.S. arm), +3.5 pts; 40 million year-on-year; Q3 ok"
    words = occlusion.reader_words(text)
    assert [w.text for w in words] == ["Acme's", "$1.2bn", "deal", "shares", "-8%", "U.S", "arm", "+3.5 pts",
                                       "40 million", "year-on-year", "Q3", "ok"]
    assert all(text[w.start:w.end] == w.text for w in words)


def test_offsets_are_code_points_in_the_exact_input():
    text = "📉 Ünïcode  Corp\tcuts <b>guidance</b> & \"=SUM(A1)\""
    words = occlusion.reader_words(text)
    assert [w.text for w in words] == ["Ünïcode", "Corp", "cuts", "b", "guidance", "b", "SUM", "A1"]
    assert all(text[w.start:w.end] == w.text for w in words)


def test_a_variant_removes_the_word_and_one_space():
    text = "Acme cuts guidance"
    assert [occlusion.without(text, u) for u in occlusion.units(text)] == ["cuts guidance", "Acme guidance",
                                                                           "Acme cuts"]
    phrases = occlusion.units(text, "phrase")
    assert [p.text for p in phrases] == ["Acme cuts", "cuts guidance"]
    assert [occlusion.without(text, p) for p in phrases] == ["guidance", "Acme"]
    with pytest.raises(ValueError, match="unknown unit 'letter'"):
        occlusion.units(text, "letter")


def test_strongest_orders_by_weight_then_label_weight():
    words = [{"text": "a", "weight": 0.1, "label_weight": 0.0}, {"text": "b", "weight": -0.4, "label_weight": 0.2},
             {"text": "c", "weight": 0.1, "label_weight": 0.3}]
    assert [w["text"] for w in occlusion.strongest(words, 2)] == ["b", "c"]
    assert occlusion.strongest_text(words, 2) == "b -0.40; c +0.10"


# -- the engine -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(trained_gguf):
    made = ClassifierEngine(trained_gguf["f16"])
    yield made
    made.close()


# The variants are scored in shared-prefix batches, the direct classifications one text per sequence
# after the instruction prefix: other batch shapes, so F16 rounding may move probabilities by a few
# 1e-3 (see test_engine.py); weights are differences of two such scores, hence 1e-2.
def test_weights_equal_classifying_each_variant(engine, held_out):
    for text, _ in held_out[::4]:
        explanation = engine.explain(text, "7")
        full = engine.classify_batch([text], "7")[0]
        assert explanation.classification.label == full.label
        units = occlusion.units(text)
        assert [(w.start, w.end) for w in explanation.words] == [(u.start, u.end) for u in units]
        direct = engine.classify_batch([occlusion.without(text, u) for u in units], "7")
        for word, alone in zip(explanation.words, direct):
            assert word.weight == pytest.approx(full.score - alone.score, abs=1e-2)
            assert word.label_weight == pytest.approx(full.probs[full.label] - alone.probs[full.label], abs=1e-2)


def test_explaining_leaves_the_engine_as_it_was(engine):
    before = engine.classify_batch(["Hooli raises full-year guidance"], "3")[0]
    engine.explain("Virtucon cuts full-year guidance", "3", "phrase")
    after = engine.classify_batch(["Hooli raises full-year guidance"], "3")[0]
    assert after.probs == pytest.approx(before.probs, abs=1e-6)
    for bad in ("", "   "):
        with pytest.raises(TextError, match="text is empty"):
            engine.explain(bad, "7")


def _event_span(text: str) -> tuple[int, int]:
    event = next(e for events in EVENTS_7.values() for e in events if e in text)
    start = text.index(event)
    return start, start + len(event)


def test_attribution_mass_falls_on_the_event_phrase(engine, held_out):
    """The fixture's label is decided by the event phrase by construction (tests/sentiment_data.py), so a
    faithful method puts the weight there, not on the company name or the template's words."""
    shares, word_shares = [], []
    for text, _ in held_out:
        words = engine.explain(text, "7").words
        start, end = _event_span(text)
        on_event = [w for w in words if start <= w.start and w.end <= end]
        total = sum(abs(w.weight) for w in words)
        if total > 0:
            shares.append(sum(abs(w.weight) for w in on_event) / total)
            word_shares.append(len(on_event) / len(words))
    mean_share = sum(shares) / len(shares)
    mean_word_share = sum(word_shares) / len(word_shares)
    # Measured 0.92 on 28 held-out headlines, whose event phrases are 64% of their words: attributions
    # spread evenly would give 0.64.
    assert len(shares) >= 24
    assert mean_share >= 0.8 and mean_share >= mean_word_share + 0.15, (mean_share, mean_word_share)
    assert sum(s > 0.5 for s in shares) >= 0.8 * len(shares)


def _drop(text: str, words: list[dict]) -> str:
    for w in sorted(words, key=lambda w: w["start"], reverse=True):
        text = occlusion.without(text, occlusion.Unit(w["start"], w["end"], w["text"]))
    return text


def test_removing_the_top_words_changes_the_answer_far_more_than_other_words(engine, held_out):
    """Comprehensiveness (ERASER, DeYoung et al. 2020): the drop in the label's probability when the k
    strongest words are removed, against k other words (a seeded random choice) removed."""
    rng = random.Random(0)
    k = 3
    flips = {"top": 0, "other": 0}
    drops = {"top": 0.0, "other": 0.0}
    n = 0
    for text, _ in held_out:
        explanation = engine.explain(text, "7")
        words = [w.as_dict() for w in explanation.words]
        top = occlusion.strongest(words, k)
        rest = [w for w in words if w not in top]
        if len(rest) < k:
            continue
        chosen = {"top": top, "other": rng.sample(rest, k)}
        label = explanation.classification.label
        for kind, removed in chosen.items():
            result = engine.classify_batch([_drop(text, removed)], "7")[0]
            flips[kind] += result.label != label
            drops[kind] += explanation.classification.probs[label] - result.probs[label]
        n += 1
    # Measured on 27 headlines: the label changed 13 times without the top 3 words and 0 times without 3
    # others; the label's probability fell by 0.45 against 0.001 on average.
    assert n >= 24
    assert flips["top"] >= 0.25 * n and flips["top"] >= 4 * max(1, flips["other"]), flips
    assert drops["top"] / n >= 0.25 and drops["other"] / n <= 0.05, {k: v / n for k, v in drops.items()}


# -- POST /v1/explain -------------------------------------------------------------------------------
def test_explain_route(client):
    text = 'Virtucon cuts full-year guidance <script>alert(1)</script> "=HYPERLINK(1)"'
    response = client.post("/v1/explain", json={"text": text, "scheme": "7"})
    assert response.status_code == 200, response.json
    body = response.json
    assert body["scheme"] == "7" and body["unit"] == "word" and body["label"] == "moderately negative"
    assert body["labels"][0] == "strong negative" and body["cached"] is False
    words = body["words"]
    assert [w["text"] for w in words][:4] == ["Virtucon", "cuts", "full-year", "guidance"]
    assert all(text[w["start"]:w["end"]] == w["text"] for w in words)
    assert all(w["label_without"] in body["labels"] for w in words)
    again = client.post("/v1/explain", json={"text": text, "scheme": "7"}).json
    assert again["cached"] is True and again["words"] == words
    classify = client.post("/v1/classify", json={"text": text, "scheme": "7"}).json
    assert classify["label"] == body["label"] and classify["score"] == pytest.approx(body["score"], abs=5e-3)


def test_explain_batch_and_item_errors(client):
    response = client.post("/v1/explain", json={"texts": ["", 42, "x " * 20_000, "Hooli raises full-year guidance"],
                                                "scheme": "3", "unit": "phrase"})
    assert response.status_code == 200
    results = response.json["results"]
    assert [r.get("error", {}).get("code") for r in results] == ["empty_text", "invalid_text", "text_too_long", None]
    assert results[3]["label"] == "positive" and results[3]["unit"] == "phrase"
    assert [w["text"] for w in results[3]["words"]] == ["Hooli raises", "raises full-year", "full-year guidance"]


@pytest.mark.parametrize("body, status, code", [
    (b"not json", 400, "invalid_json"),
    ({"texts": ["a"], "scheme": "5"}, 400, "invalid_scheme"),
    ({"scheme": "7"}, 400, "invalid_request"),
    ({"texts": []}, 400, "invalid_request"),
    ({"text": "a", "unit": "letter"}, 400, "invalid_parameter"),
    ({"texts": ["x"] * 300}, 413, "too_many_texts"),
    ({"texts": ["Acme " * 200, "Globex " * 57]}, 413, "too_many_words"),
])
def test_explain_errors(client, body, status, code):
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = client.post("/v1/explain", data=data, content_type="application/json")
    assert response.status_code == status
    error = response.json["error"]
    assert error["code"] == code and error["message"] and error["type"]
    if code == "too_many_words":
        assert "at most 256 words" in error["message"] and "(got 257)" in error["message"]


def test_explain_follows_the_key_and_host_rules(loaded_runtime):
    from finsent_local.server import ServerConfig, create_app

    keyed = create_app(loaded_runtime, ServerConfig(api_key="s3cret")).test_client()
    assert keyed.post("/v1/explain", json={"text": "Hooli raises guidance"}).status_code == 401
    ok = keyed.post("/v1/explain", json={"text": "Hooli raises guidance"}, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json["words"]
    keyless = create_app(loaded_runtime).test_client()
    assert keyless.post("/v1/explain", json={"text": "x"}, headers={"Host": "finsent.lan"}).status_code == 403


def test_status_and_openapi_state_the_word_limit(client):
    assert client.get("/v1/status").json["limits"]["max_explain_words"] == 256
    spec = client.get("/openapi.json").json
    assert "/v1/explain" in spec["paths"]
    assert "256 words" in spec["components"]["schemas"]["ExplainRequest"]["properties"]["texts"]["description"]


def test_an_explanation_does_not_hold_other_requests_back(engine):
    """Each explained text is a turn of the engine thread of its own: a classification sent while a long
    explanation request runs is answered before that request ends."""
    import threading
    import time

    from finsent_local.engine.worker import EngineWorker

    worker = EngineWorker(engine, max_wait_s=None)
    try:
        texts = [f"Breaking: Virtucon {event}, sources say, as markets weigh the outlook for the sector"
                 for event in ("cuts full-year guidance", "raises full-year guidance")] * 4
        finished = {}

        def explain():
            worker.explain(texts, "7")
            finished["explain"] = time.monotonic()

        thread = threading.Thread(target=explain)
        thread.start()
        time.sleep(0.05)
        label = worker.classify(["Hooli raises full-year guidance"], "3")[0].label
        finished["classify"] = time.monotonic()
        thread.join(120)
        assert label == "positive"
        assert finished["classify"] < finished["explain"]
    finally:
        worker.close()
