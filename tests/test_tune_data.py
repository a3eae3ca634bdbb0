"""`finsent tune`'s training data (issue 21, first part): gold values read as `finsent eval` reads them,
the checks on rows per label, the seeded stratified split, and token sequences whose loss falls on the
answer only, with the real Llama 3 tokenizer."""

from __future__ import annotations

import pytest

from finsent_local.tuning.examples import (IGNORED, MIN_ROWS_PER_LABEL, TuneDataError, labelled_rows,
                                           stratified_split, training_examples)


def _rows(golds, scheme="3", **kw):
    return labelled_rows([f"Text {i}" for i in range(len(golds))], golds, list(range(1, len(golds) + 1)), scheme, **kw)


def test_gold_conventions_and_collapse():
    rows = _rows(["bullish"] * 5 + ["bearish"] * 5 + ["neutral"] * 5)
    assert rows.labels[:1] == ["positive"] and rows.labels[5] == "negative"
    seven = _rows(["strong positive"] * 5 + ["mildly negative"] * 5, scheme="3")  # 7-label gold, 3-label tuning
    assert set(seven.labels) == {"positive", "negative"}
    assert _rows([1] * 5 + [-1] * 5 + [0] * 5).labels[-1] == "neutral"


def test_integer_labels_are_read_by_the_numbering_named():
    """tune reads integers as eval does: 0/1/2 refused unless --gold-convention says which numbering."""
    golds = [0] * 5 + [1] * 5 + [2] * 5
    with pytest.raises(TuneDataError, match="say which with --gold-convention twitter"):
        _rows(golds)
    assert _rows(golds, gold_convention="phrasebank").labels[5::5] == ["neutral", "positive"]
    assert _rows(golds, gold_convention="twitter").labels[5::5] == ["positive", "neutral"]
    mapped = _rows(golds + ["mixed"] * 5, gold_convention="phrasebank", label_map={"mixed": "neutral"})
    assert mapped.labels[-1] == "neutral" and mapped.convention.endswith("and --label-map")


@pytest.mark.parametrize("golds,scheme,message", [
    (["positive"] * 9, "3", "every row has the label 'positive'"),
    (["positive"] * 9 + ["negative"] * 2, "3", "too few rows: 'negative' has 2; at least 5 rows per label"),
    (["positive"] * 5 + ["negative"] * 5, "7", "they can tune --scheme 3, not 7"),
    (["positive"] * 5 + ["sunny"] * 5, "3", "sunny"),
])
def test_bad_rows_are_one_line(golds, scheme, message):
    with pytest.raises(TuneDataError, match=message) as caught:
        _rows(golds, scheme)
    assert "\n" not in str(caught.value)


def test_split_is_stratified_seeded_and_complete():
    labels = ["a"] * 50 + ["b"] * 10 + ["c"] * MIN_ROWS_PER_LABEL
    train, validation = stratified_split(labels, 0.2, seed=7)
    assert sorted(train + validation) == list(range(len(labels)))
    held = [labels[i] for i in validation]
    assert (held.count("a"), held.count("b"), held.count("c")) == (10, 2, 1)
    assert stratified_split(labels, 0.2, seed=7) == (train, validation)
    assert stratified_split(labels, 0.2, seed=8) != (train, validation)


def test_examples_put_the_loss_on_the_answer_only(tokenizer_dir):
    from transformers import AutoTokenizer

    from finsent_local.engine.labels import default_schemes

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenize = lambda text, special: tokenizer(text, add_special_tokens=special)["input_ids"]  # noqa: E731
    rows = _rows(["strong positive"] * 5 + ["neutral"] * 5, scheme="7")
    examples = training_examples(rows, "7", tokenize, eos_id=tokenizer.eos_token_id)
    first = examples[0]
    prompt = tokenize(default_schemes()["7"].prompt("Text 0"), True)
    assert first.input_ids[: len(prompt)] == prompt and first.labels[: len(prompt)] == [IGNORED] * len(prompt)
    answer = [t for t in first.labels if t != IGNORED]
    assert tokenizer.decode(answer[:-1]) == " strong positive" and answer[-1] == tokenizer.eos_token_id
    long = _rows(["positive"] * 5 + ["negative"] * 5)
    long.texts[3] = "profit " * 2000
    with pytest.raises(TuneDataError, match="row 4: the text is too long"):
        training_examples(long, "3", tokenize)
