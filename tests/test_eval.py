"""`finsent eval`: the metrics on hand-built cases, gold labels in every documented convention, and the
real command on the trained model (against `finsent classify`'s own labels, two models side by side,
the report in Chromium, Ctrl-C)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import run_finsent
from sentiment_data import coarse_label, held_out_examples

import browser
from finsent_local.engine.labels import LABELS_3, LABELS_7
from finsent_local.quality.gold_labels import GoldLabelError, load_label_map, read_gold_labels
from finsent_local.quality.metrics import Predictions, calibration, compare, label_metrics

# -- metrics on cases worked out by hand ------------------------------------------------------------------
GOLD = np.array([0, 0, 1, 1, 2, 2])
PREDICTED = np.array([0, 1, 1, 1, 2, 0])


def _one_hot_probs(labels: np.ndarray, confidence: float, classes: int = 3) -> np.ndarray:
    probs = np.full((len(labels), classes), (1 - confidence) / (classes - 1))
    probs[np.arange(len(labels)), labels] = confidence
    return probs


def test_metrics_on_a_known_confusion_matrix():
    m = label_metrics(GOLD, Predictions(PREDICTED, _one_hot_probs(PREDICTED, 0.9)), LABELS_3)
    assert m["confusion"]["counts"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["confusion"]["row_normalised"] == [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    # negative: P 1/2, R 1/2; neutral: P 2/3, R 1; positive: P 1, R 1/2
    f1 = {"negative": 0.5, "neutral": 0.8, "positive": 2 / 3}
    for label, expected in f1.items():
        assert m["per_class"][label]["f1"] == pytest.approx(expected)
        assert m["per_class"][label]["support"] == 2
    assert m["per_class"]["neutral"]["precision"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx(sum(f1.values()) / 3)
    assert m["weighted_f1"] == pytest.approx(sum(f1.values()) / 3)  # equal supports
    low, high = m["accuracy_95"]
    assert 0 <= low <= 4 / 6 <= high <= 1 and low < high
    # Seeded: the same intervals twice.
    again = label_metrics(GOLD, Predictions(PREDICTED, _one_hot_probs(PREDICTED, 0.9)), LABELS_3)
    assert again["weighted_f1_95"] == m["weighted_f1_95"]


def test_expected_calibration_error_by_hand():
    # Confidence 0.9 everywhere, right 4 times in 6: one bin, |4/6 - 0.9| = 0.2333.
    result = calibration(GOLD, Predictions(PREDICTED, _one_hot_probs(PREDICTED, 0.9)))
    assert result["ece"] == pytest.approx(abs(4 / 6 - 0.9))
    filled = [b for b in result["bins"] if b["count"]]
    assert len(filled) == 1 and filled[0]["low"] == pytest.approx(0.8) and filled[0]["count"] == 6
    # Right when sure (0.95), wrong when unsure (0.4): two bins, each off by its own gap.
    sure = np.array([0.95, 0.95, 0.95, 0.95, 0.4, 0.4])
    probs = np.stack([sure, (1 - sure) / 2, (1 - sure) / 2], axis=1)
    gold = np.array([0, 0, 0, 0, 1, 1])
    result = calibration(gold, Predictions(np.zeros(6, dtype=int), probs))
    assert result["ece"] == pytest.approx(4 / 6 * 0.05 + 2 / 6 * 0.4)


def test_comparison_of_two_models():
    first = Predictions(PREDICTED, _one_hot_probs(PREDICTED, 0.9))
    other_labels = np.array([0, 0, 1, 1, 2, 0])  # one more right than `first`
    other = Predictions(other_labels, _one_hot_probs(other_labels, 0.8))
    c = compare(GOLD, first, other)
    assert c["agreement"] == pytest.approx(5 / 6)
    assert c["accuracy_difference"] == pytest.approx(1 / 6)
    low, high = c["accuracy_difference_95"]
    assert low <= 1 / 6 <= high
    assert c["max_abs_dp"] == pytest.approx(0.8)  # row 2: negative 0.05 -> 0.8
    assert c["mean_kl"] > 0
    same = compare(GOLD, first, first)
    assert same["agreement"] == 1.0 and same["mean_abs_dp"] == 0.0 and same["mean_kl"] == pytest.approx(0.0)


def _sklearn_f1(gold: list[str], predicted: list[str], average: str) -> float:
    """The reference: scikit-learn over the labels present in gold or predictions."""
    from sklearn.metrics import f1_score

    return f1_score(gold, predicted, labels=sorted(set(gold) | set(predicted)), average=average, zero_division=0)


def test_f1_averages_only_the_labels_present_in_gold_or_predictions():
    """Perfect answers on gold that uses 5 of the 7 labels: macro F1 1.0 (not 5/7 = 0.714)."""
    used = ["moderately negative", "mildly negative", "neutral", "mildly positive", "moderately positive"]
    gold_names = [label for label in used for _ in range(4)]
    gold = np.array([LABELS_7.index(label) for label in gold_names])
    m = label_metrics(gold, Predictions(gold, _one_hot_probs(gold, 0.9, classes=7)), LABELS_7)
    assert m["macro_f1"] == pytest.approx(1.0) and m["weighted_f1"] == pytest.approx(1.0)
    assert m["macro_f1_labels"] == used
    assert m["weighted_f1_95"] == [1.0, 1.0]
    for label in ("strong negative", "strong positive"):
        assert m["per_class"][label] == {"precision": None, "recall": None, "f1": None, "support": 0, "absent": True}
    assert m["per_class"]["neutral"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 4, "absent": False}
    # Wrong answers, one into a label gold never uses: that label counts (F1 0), the two absent ones do not.
    predicted_names = list(gold_names)
    predicted_names[0] = "strong positive"
    predicted_names[5] = "neutral"
    predicted_names[9] = "mildly negative"
    predicted = np.array([LABELS_7.index(label) for label in predicted_names])
    m = label_metrics(gold, Predictions(predicted, _one_hot_probs(predicted, 0.9, classes=7)), LABELS_7)
    assert m["macro_f1"] == pytest.approx(_sklearn_f1(gold_names, predicted_names, "macro"))
    assert m["weighted_f1"] == pytest.approx(_sklearn_f1(gold_names, predicted_names, "weighted"))
    assert m["macro_f1_labels"] == [label for label in LABELS_7 if label != "strong negative"]
    assert m["per_class"]["strong positive"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0,
                                                 "absent": False}
    assert m["per_class"]["strong negative"]["absent"] is True


def test_a_class_the_model_never_predicts_counts_as_0_in_macro_f1():
    gold = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 1, 1, 1, 1])  # never positive
    m = label_metrics(gold, Predictions(predicted, _one_hot_probs(predicted, 0.8)), LABELS_3)
    names = lambda indices: [LABELS_3[i] for i in indices]  # noqa: E731
    assert m["macro_f1"] == pytest.approx(_sklearn_f1(names(gold), names(predicted), "macro")) == pytest.approx(
        (1 + 2 / 3 + 0) / 3)
    assert m["per_class"]["positive"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2, "absent": False}


def test_7_labels_collapse_to_3_by_the_summed_distribution():
    """One rule for the label and its probability: the argmax of the sums by sign."""
    from finsent_local.quality.gold_labels import COLLAPSE_7_TO_3, collapse_7_to_3

    # neutral is the 7-way argmax (0.3), but positive holds 0.6: the row reads positive, p 0.6.
    row = [0.05, 0.03, 0.02, 0.3, 0.25, 0.2, 0.15]
    labels, probs = collapse_7_to_3(np.array([row, [0.5, 0.1, 0.0, 0.4, 0.0, 0.0, 0.0]]))
    assert [LABELS_3[i] for i in labels] == ["positive", "negative"]
    assert probs[0] == pytest.approx([0.1, 0.3, 0.6]) and probs[1] == pytest.approx([0.6, 0.4, 0.0])
    # A single 7-label gold label (tune's 7-label gold for a 3-label scheme) is the one-hot case.
    for i, label in enumerate(LABELS_7):
        one_hot = np.eye(7)[i]
        assert LABELS_3[collapse_7_to_3(one_hot)[0][0]] == COLLAPSE_7_TO_3[label]


class _TableService:
    """A stand-in for the classification service: each text's 7-label probabilities from a table."""

    def __init__(self, table: dict[str, list[float]]):
        from types import SimpleNamespace

        self.table = table
        self.schemes = {"7": SimpleNamespace(labels=LABELS_7), "3": SimpleNamespace(labels=LABELS_3)}

    def classify(self, texts, scheme):
        assert scheme == "7"
        out = []
        for text in texts:
            probs = self.table[text]
            out.append({"label": LABELS_7[int(np.argmax(probs))], "score": 0.0, "probs": dict(zip(LABELS_7, probs))})
        return out

    def close(self):
        pass


def _table_evaluation(table: dict, golds: list, **request):
    from finsent_local.quality.evaluation import EvalRequest, evaluate_rows

    texts = list(table)
    return evaluate_rows(EvalRequest(Path("gold.csv"), "text", "label", [Path("m.gguf")], **request), texts, golds,
                         list(range(1, len(texts) + 1)), {}, [], lambda path, prompt: _TableService(table))


def _peak(label: str, p: float = 0.9) -> list[float]:
    probs = [(1 - p) / 6] * 7
    probs[LABELS_7.index(label)] = p
    return probs


def test_the_collapse_rule_holds_in_every_output(tmp_path):
    """A row whose 7-way argmax is neutral but whose positive labels hold 0.6: positive in the metrics,
    the predictions file (with p_positive 0.6) and the confusion matrix; the report says the rule."""
    from finsent_local.quality.report import metrics_json, report_html, summary_lines, write_predictions

    table = {"Acme beats estimates": [0.05, 0.03, 0.02, 0.3, 0.25, 0.2, 0.15],
             "Globex misses estimates": _peak("strong negative"), "Initech holds its meeting": _peak("neutral")}
    evaluation = _table_evaluation(table, ["positive", "negative", "neutral"])
    assert evaluation.collapsed
    assert metrics_json(evaluation)["models"][0]["accuracy"] == 1.0
    write_predictions(evaluation, tmp_path / "p.csv")
    with open(tmp_path / "p.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert (rows[0]["predicted"], rows[0]["model_label"]) == ("positive", "neutral")
    assert float(rows[0]["p_positive"]) == pytest.approx(0.6)
    for row in rows:
        assert row["predicted"] == max(LABELS_3, key=lambda label: float(row[f"p_{label}"]))
    assert "the label is the largest of those 3 sums" in report_html(evaluation)
    assert "7-label predictions collapsed to 3 (probabilities summed by sign, the label the largest sum)" in \
        summary_lines(evaluation)[-1]


def test_absent_labels_are_shown_as_absent_everywhere():
    """7-label gold that uses 5 labels, answered perfectly: macro F1 100% in the terminal, the report and
    the JSON; the two absent labels read "absent", not 0%."""
    from finsent_local.quality.report import metrics_json, report_html, summary_lines

    used = ["moderately negative", "mildly negative", "neutral", "mildly positive", "moderately positive"]
    table = {f"Headline {i} ({label})": _peak(label) for i, label in enumerate(used * 2)}
    evaluation = _table_evaluation(table, [text.split("(")[1][:-1] for text in table])
    figures = metrics_json(evaluation)["models"][0]
    assert figures["macro_f1"] == 1.0 and figures["per_class"]["strong negative"]["absent"] is True
    assert json.loads(json.dumps(figures))["per_class"]["strong positive"]["f1"] is None
    lines = summary_lines(evaluation)
    assert lines[1].split()[-2] == "100.0%"  # the macro F1 column
    assert "macro F1 averages the 5 labels in the gold labels or the predictions; absent from both: strong " \
           "negative, strong positive" in lines
    page = report_html(evaluation)
    assert page.count("absent (in neither the gold labels nor the predictions)") == 2
    assert re.search(r"<td>strong negative</td><td class='n' colspan='3'>absent", page)
    assert "<td class='n'>0.0%</td>" not in page  # no label reads 0% for what was never there


# -- gold labels as people have them ----------------------------------------------------------------------
TWITTER = "twitter (0 bearish, 1 bullish, 2 neutral)"
PHRASEBANK = "phrasebank (0 negative, 1 neutral, 2 positive)"
SCORES = "scores in [-1, 1] (below -0.1 negative, from 0.1 positive)"


@pytest.mark.parametrize("values,named,convention,scheme,expected", [
    (["Strong_Negative", "moderately-negative", " mildly  negative", "NEUTRAL", "mildly positive",
      "Moderately Positive", "strong positive"], None, "7 labels", "7", list(LABELS_7)),
    (["strongly negative", "slightly positive"], None, "7 labels", "7", ["strong negative", "mildly positive"]),
    (["positive", "Negative", "neutral"], None, "3 labels", "3", ["positive", "negative", "neutral"]),
    (["Bearish", "bullish", "Neutral"], None, "bearish/bullish", "3", ["negative", "positive", "neutral"]),
    ([-1, 0, 1], None, "-1/0/1", "3", ["negative", "neutral", "positive"]),
    (["-1", "0", "1"], None, "-1/0/1", "3", ["negative", "neutral", "positive"]),  # as a CSV holds them
    ([-1, 1], None, "-1/0/1", "3", ["negative", "positive"]),  # a subset with -1: still signed
    ([0, 1], "signed", "-1/0/1", "3", ["neutral", "positive"]),
    ([0, 1, 2], "twitter", TWITTER, "3", ["negative", "positive", "neutral"]),
    (["0", "1", "2.0"], "twitter", TWITTER, "3", ["negative", "positive", "neutral"]),
    ([0, 1, 2], "phrasebank", PHRASEBANK, "3", ["negative", "neutral", "positive"]),
    (["2", "0"], "phrasebank", PHRASEBANK, "3", ["positive", "negative"]),
    ([-0.62, -0.05, 0.1, 0.35, 1], None, SCORES, "3", ["negative", "neutral", "positive", "positive", "positive"]),
])
def test_every_documented_convention_is_recognised(values, named, convention, scheme, expected):
    reading = read_gold_labels(Counter(values), convention=named)
    assert reading.convention == convention and reading.scheme == scheme
    assert [reading.label_of(v) for v in values] == expected
    assert reading.label_of("") is None and reading.label_of(None) is None  # an empty cell: skipped


def test_the_neutral_band_is_settable():
    reading = read_gold_labels(Counter([-0.3, 0.2, 0.5]), band=0.25)
    assert [reading.label_of(v) for v in (-0.3, 0.2, 0.5)] == ["negative", "neutral", "positive"]


def test_scores_are_banded_as_fingpts_fiqa():
    """FinGPT's FiQA rule: < -0.1 negative, -0.1 <= s < 0.1 neutral, >= 0.1 positive."""
    values = [-0.5, -0.1001, -0.1, 0.0, 0.0999, 0.1, 0.1001, 0.75]
    reading = read_gold_labels(Counter(values))
    assert [reading.label_of(v) for v in values] == ["negative", "negative", "neutral", "neutral", "neutral",
                                                     "positive", "positive", "positive"]
    assert reading.convention == SCORES and "from 0.1 positive" in reading.source
    banded = read_gold_labels(Counter([-0.25, 0.25, 0.2499, 0.5]), band=0.25)
    assert [banded.label_of(v) for v in (-0.25, 0.25, 0.2499)] == ["neutral", "positive", "neutral"]
    assert banded.convention == "scores in [-1, 1] (below -0.25 negative, from 0.25 positive)"


@pytest.mark.parametrize("values", [[0, 1, 2], ["0", "1", "2"], [0, 1], [1, 2], [2]])
def test_integers_other_than_signed_ones_need_to_be_told_which_numbering(values):
    with pytest.raises(GoldLabelError) as raised:
        read_gold_labels(Counter(values))
    message = str(raised.value)
    assert "\n" not in message and message.startswith("the gold labels are the integers ")
    assert "--gold-convention twitter (0 bearish, 1 bullish, 2 neutral" in message
    assert "phrasebank (0 negative, 1 neutral, 2 positive" in message and "--label-map" in message
    # Told, each numbering reads them its own way (2: neutral for twitter, positive for PhraseBank).
    twitter = read_gold_labels(Counter(values), convention="twitter")
    phrasebank = read_gold_labels(Counter(values), convention="phrasebank")
    assert [twitter.label_of(v) for v in values] == [["negative", "positive", "neutral"][int(v)] for v in values]
    assert [phrasebank.label_of(v) for v in values] == [["negative", "neutral", "positive"][int(v)] for v in values]
    # A map for every value needs no convention.
    mapped = read_gold_labels(Counter(values), {"0": "negative", "1": "neutral", "2": "positive"})
    assert mapped.convention == "--label-map"


def test_a_named_convention_lists_what_it_does_not_map():
    with pytest.raises(GoldLabelError, match=r"^cannot read these gold labels as --gold-convention phrasebank: 3 \(2\)"):
        read_gold_labels(Counter({0: 4, 1: 2, 3: 2}), convention="phrasebank")
    with pytest.raises(GoldLabelError, match="no gold convention 'fiqa'"):
        read_gold_labels(Counter([0, 1]), convention="fiqa")


def test_unmapped_values_are_shown_as_the_file_spells_them():
    values = Counter({"positive": 5, "bullish-ish": 2, "Bullish_Ish": 1, "n/a": 1, "7.5": 1})
    with pytest.raises(GoldLabelError) as raised:
        read_gold_labels(values)
    assert str(raised.value).startswith("cannot read these gold labels: 'bullish-ish' (3), 'n/a' (1), 7.5 (1);")


def test_the_label_map_adds_to_the_convention_the_other_values_follow():
    values = ["positive", "negative", "neutral", "bullish-ish", "Positive"]
    reading = read_gold_labels(Counter(values), {"bullish-ish": "positive"})
    assert [reading.label_of(v) for v in values] == ["positive", "negative", "neutral", "positive", "positive"]
    assert reading.convention == "3 labels and --label-map" and reading.scheme == "3"
    assert reading.source.endswith("; --label-map for 'bullish-ish'")
    # A 7-label file with one odd spelling stays a 7-label file.
    seven = read_gold_labels(Counter(["strong negative", "neutral", "very very good"]), {"very very good": "strong positive"})
    assert seven.scheme == "7" and seven.convention == "7 labels and --label-map"
    # Integers: the map adds to the numbering named (PhraseBank's 0/1/2 with a 3 of the file's own).
    numbered = read_gold_labels(Counter([0, 1, 2, 3]), {"3": "positive"}, convention="phrasebank")
    assert [numbered.label_of(v) for v in (0, 1, 2, 3)] == ["negative", "neutral", "positive", "positive"]
    assert numbered.convention == PHRASEBANK + " and --label-map"
    with pytest.raises(GoldLabelError, match="--label-map maps into strong positive, but the other gold labels are read "
                                             "as 3 labels \\(3 labels\\)"):
        read_gold_labels(Counter(["positive", "negative", "great"]), {"great": "strong positive"})


def test_unmapped_values_are_listed_with_their_counts(tmp_path):
    with pytest.raises(GoldLabelError) as raised:
        read_gold_labels(Counter({"positive": 5, "negative": 4, "mixed": 3, "n/a": 1}))
    assert str(raised.value).startswith("cannot read these gold labels: 'mixed' (3), 'n/a' (1); map them with --label-map")
    mapping = load_label_map('{"pos": "positive", "neg": "Negative", "0": "neutral"}')
    reading = read_gold_labels(Counter(["pos", "NEG", 0]), mapping)
    assert reading.convention == "--label-map" and reading.scheme == "3"
    assert [reading.label_of(v) for v in ("pos", "NEG", "0")] == ["positive", "negative", "neutral"]
    (tmp_path / "map.json").write_text('{"up": "strong positive", "down": "strong negative", "flat": "neutral"}')
    reading = read_gold_labels(Counter(["up", "flat"]), load_label_map(str(tmp_path / "map.json")))
    assert reading.scheme == "7"
    with pytest.raises(GoldLabelError, match="not a label"):
        read_gold_labels(Counter(["up"]), {"up": "bullish"})
    with pytest.raises(GoldLabelError, match="'sideways' \\(1\\)"):
        read_gold_labels(Counter(["up", "sideways"]), {"up": "positive"})
    with pytest.raises(GoldLabelError, match="neither a JSON object nor a readable file"):
        load_label_map("no-such-file.json")


# -- the command on the trained model ----------------------------------------------------------------------
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)> Virtucon files for bankruptcy protection"


def _write_gold(path: Path, rows: list[tuple[str, str]], label=lambda label: label) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "headline", "sentiment"])
        for i, (text, gold) in enumerate(rows):
            writer.writerow([i, text, label(gold)])


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """Held-out headlines with their 7 labels, a hostile one labelled wrong on purpose (so it is among
    the confident errors), a row with no text and one with no gold label."""
    folder = tmp_path_factory.mktemp("eval")
    rows = held_out_examples(per_label=6) + [(HOSTILE, "strong positive")]
    _write_gold(folder / "gold.csv", rows + [("", "neutral"), ("Initech raises full-year guidance", "")])
    return folder / "gold.csv"


def test_eval_agrees_with_finsent_classify(trained_gguf, labelled, tmp_path):
    """Accuracy as `finsent eval` computes it equals what `finsent classify`'s output on the same file gives."""
    model = str(trained_gguf["q8_0"])
    code, stdout, stderr = run_finsent("eval", "--model", model, "--input", str(labelled), "--text-column", "headline",
                                       "--label-column", "sentiment", "--json", str(tmp_path / "m.json"))
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    code, _, stderr = run_finsent("classify", "--model", model, "--input", str(labelled), "--column", "headline",
                                  "--output", str(tmp_path / "scored.csv"))
    assert code == 0, stderr
    with open(tmp_path / "scored.csv", newline="", encoding="utf-8") as f:
        scored = [row for row in csv.DictReader(f) if row["headline"] and row["sentiment"]]
    expected = sum(row["label"] == row["sentiment"] for row in scored) / len(scored)
    assert metrics["rows_evaluated"] == len(scored) == 43
    assert metrics["models"][0]["accuracy"] == pytest.approx(expected)
    assert metrics["models"][0]["accuracy"] >= 0.85  # the fixture's held-out accuracy, as its build checks
    assert metrics["rows_skipped"] == {"empty text": 1, "empty gold label": 1}
    assert metrics["gold"]["convention"] == "7 labels"
    assert "1 row skipped: empty text" in stdout and "1 row skipped: empty gold label" in stdout
    assert stdout.splitlines()[0].startswith("model ")


def test_3_class_gold_collapses_7_predictions_and_7_class_gold_refuses_3(trained_gguf, tmp_path):
    rows = held_out_examples(per_label=3)
    twitter = {"negative": 0, "positive": 1, "neutral": 2}
    _write_gold(tmp_path / "gold3.csv", rows, lambda label: twitter[coarse_label(label)])
    model = str(trained_gguf["q8_0"])
    arguments = ["eval", "--model", model, "--input", str(tmp_path / "gold3.csv"), "--text-column", "headline",
                 "--label-column", "sentiment"]
    code, stdout, stderr = run_finsent(*arguments)  # 0/1/2: which numbering is not guessed
    assert code == 1 and stdout == "" and len(stderr.strip().splitlines()) == 1
    assert "--gold-convention twitter" in stderr and "phrasebank" in stderr
    code, stdout, stderr = run_finsent(*arguments, "--gold-convention", "twitter", "--predictions", str(tmp_path / "p.csv"))
    assert code == 0, stderr
    assert "gold labels read as twitter (0 bearish, 1 bullish, 2 neutral); 7-label predictions collapsed to 3" in stdout
    with open(tmp_path / "p.csv", newline="", encoding="utf-8") as f:
        predictions = list(csv.DictReader(f))
    assert list(predictions[0])[:5] == ["row", "text", "gold", "predicted", "model_label"]
    for row in predictions:
        # the 7-label answer's probabilities summed by sign; the label is the largest sum
        assert row["predicted"] == max(LABELS_3, key=lambda label: float(row[f"p_{label}"]))
        assert sum(float(row[f"p_{label}"]) for label in LABELS_3) == pytest.approx(1.0, abs=1e-4)
    _write_gold(tmp_path / "gold7.csv", rows)
    code, stdout, stderr = run_finsent("eval", "--model", model, "--scheme", "3", "--input", str(tmp_path / "gold7.csv"),
                                       "--text-column", "headline", "--label-column", "sentiment")
    assert code == 1 and stdout == "" and len(stderr.strip().splitlines()) == 1
    assert "the gold labels have 7 classes but --scheme 3" in stderr


def test_unmapped_gold_values_stop_before_anything_is_written(trained_gguf, tmp_path):
    _write_gold(tmp_path / "gold.csv", [("Initech raises guidance", "up"), ("Globex cuts guidance", "down"),
                                        ("Hooli holds its meeting", "down")])
    code, stdout, stderr = run_finsent("eval", "--model", str(trained_gguf["q8_0"]), "--input", str(tmp_path / "gold.csv"),
                                       "--text-column", "headline", "--label-column", "sentiment",
                                       "--report", str(tmp_path / "r.html"))
    assert code == 1 and stdout == ""
    assert stderr.strip().splitlines() == [
        "Error: cannot read these gold labels: 'down' (2), 'up' (1); map them with --label-map "
        "'{\"value\": \"label\", ...}' (labels: the 7 or the 3 of --scheme)"]
    assert list(tmp_path.iterdir()) == [tmp_path / "gold.csv"]


def test_two_models_side_by_side(trained_gguf, labelled, tmp_path):
    code, stdout, stderr = run_finsent("eval", "--model", str(trained_gguf["f16"]), "--model", str(trained_gguf["q4_k_m"]),
                                       "--input", str(labelled), "--text-column", "headline", "--label-column", "sentiment",
                                       "--json", str(tmp_path / "m.json"), "--predictions", str(tmp_path / "p.csv"),
                                       "--no-cache")
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert [m["name"] for m in metrics["models"]] == [trained_gguf["f16"].name, trained_gguf["q4_k_m"].name]
    (versus,) = metrics["against_first"]
    # The same model quantized: nearly every label agrees and the probabilities barely move.
    assert versus["agreement"] >= 0.95 and versus["mean_abs_dp"] < 0.05
    low, high = versus["accuracy_difference_95"]
    assert low <= versus["accuracy_difference"] <= high
    with open(tmp_path / "p.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # Each model's columns are named after it (the file name without .gguf), not m1_/m2_.
    first, second = (f"{trained_gguf[t].name.removesuffix('.gguf')}_" for t in ("f16", "q4_k_m"))
    assert f"{first}predicted" in rows[0] and f"{second}predicted" in rows[0] and "m1_predicted" not in rows[0]
    agree = sum(r[f"{first}predicted"] == r[f"{second}predicted"] for r in rows) / len(rows)
    assert agree == pytest.approx(versus["agreement"])
    # |dp| as the predictions file gives it (6 decimals): the largest and the mean over rows and labels
    moved = [abs(float(r[f"{first}p_{label.replace(' ', '_')}"]) - float(r[f"{second}p_{label.replace(' ', '_')}"]))
             for r in rows for label in LABELS_7]
    assert versus["max_abs_dp"] == pytest.approx(max(moved), abs=2e-6)
    assert versus["mean_abs_dp"] == pytest.approx(sum(moved) / len(moved), abs=2e-6)
    assert f"{trained_gguf['q4_k_m'].name} against {trained_gguf['f16'].name}:" in stdout


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = Counter()

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1


@pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing()))
def test_the_report_is_self_contained_and_shows_hostile_text_as_text(trained_gguf, labelled, tmp_path):
    report = tmp_path / "report.html"
    code, _, stderr = run_finsent("eval", "--model", str(trained_gguf["q8_0"]), "--input", str(labelled),
                                  "--text-column", "headline", "--label-column", "sentiment", "--report", str(report))
    assert code == 0, stderr
    page = report.read_text(encoding="utf-8")
    parsed = _Tags()
    parsed.feed(page)
    assert parsed.tags["script"] == 0 and parsed.tags["img"] == 0 and parsed.tags["svg"] >= 2
    # the error's words are shaded spans (issue 35): without them, the text is there escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in re.sub(r"</?span[^>]*>", "", page)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing to fetch from elsewhere
    driver = browser.start_chromium(tmp_path / "downloads")
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.get(report.as_uri())
        assert driver.title.startswith("FinSent Local evaluation")
        assert driver.find_element("css selector", "figure.confusion svg").size["width"] > 200
        assert driver.find_element("css selector", "figure.reliability svg").is_displayed()
        errors_table = driver.find_elements("css selector", "td.text")
        assert any(cell.text.startswith("<script>alert(1)</script>") for cell in errors_table)  # shown, not run
        # the words' shading applies under the report's Content-Security-Policy (inline --shade, no script)
        shades = [span.value_of_css_property("background-color") for span in
                  driver.find_elements("css selector", "td.text span.w")]
        assert shades and any(shade not in ("rgba(0, 0, 0, 0)", "transparent") for shade in shades)
        requests = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert requests == [], requests
        assert browser.console_errors(driver) == []
    finally:
        driver.quit()


def test_ctrl_c_leaves_no_half_written_report(trained_gguf, tmp_path):
    rows = [(f"Company {i} {'raises' if i % 2 else 'cuts'} its full-year guidance for unit {i}", "neutral")
            for i in range(6000)]
    _write_gold(tmp_path / "big.csv", rows)
    report = tmp_path / "report.html"
    proc = subprocess.Popen([sys.executable, "-m", "finsent_local.cli", "eval", "--model", str(trained_gguf["f16"]),
                             "--input", str(tmp_path / "big.csv"), "--text-column", "headline", "--label-column",
                             "sentiment", "--report", str(report), "--no-cache"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FINSENT_CACHE_DIR": str(tmp_path / "cache")})
    time.sleep(6)  # loading or labelling: 6,000 texts take far longer than this
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Interrupted." in stderr and "Traceback" not in stderr
    assert [p.name for p in tmp_path.iterdir()] == ["big.csv"]  # no report, no half-written one beside it


def test_a_missing_eval_extra_is_one_line(tmp_path):
    """Without scikit-learn (a plain `pip install finsent-local`): one line naming the extra."""
    blocker = tmp_path / "sklearn"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('not installed (this test hides it)')\n")
    code, stdout, stderr = run_finsent("eval", "--input", "x.csv", "--text-column", "t", "--label-column", "l",
                                       env={"PYTHONPATH": str(tmp_path)})
    assert code == 1 and stdout == ""
    assert stderr.strip() == ("Error: finsent eval needs scikit-learn and matplotlib, which are not installed: "
                              "pip install 'finsent-local[eval]' (setup.sh installs them)")


def test_gold_labels_typed_as_numbers_in_parquet_and_json_lines(trained_gguf, tmp_path):
    """Gold columns as other tools write them: Parquet integers (twitter's 0/1/2), JSON Lines scores."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = held_out_examples(per_label=2)
    twitter = {"negative": 0, "positive": 1, "neutral": 2}
    pq.write_table(pa.table({"text": [t for t, _ in rows], "label": [twitter[coarse_label(g)] for _, g in rows]}),
                   tmp_path / "gold.parquet")
    scores = {"negative": -0.6, "neutral": 0.02, "positive": 0.45}
    with open(tmp_path / "gold.jsonl", "w", encoding="utf-8") as f:
        for text, gold in rows:
            f.write(json.dumps({"text": text, "score": scores[coarse_label(gold)]}) + "\n")
    model = str(trained_gguf["q8_0"])
    for name, column, convention, told in (("gold.parquet", "label", TWITTER, ["--gold-convention", "twitter"]),
                                           ("gold.jsonl", "score", SCORES, [])):
        code, _, stderr = run_finsent("eval", "--model", model, "--input", str(tmp_path / name), "--text-column", "text",
                                      "--label-column", column, "--json", str(tmp_path / f"{name}.json"), *told)
        assert code == 0, stderr
        metrics = json.loads((tmp_path / f"{name}.json").read_text())
        assert metrics["gold"]["convention"] == convention and metrics["rows_evaluated"] == len(rows)
        assert metrics["collapsed_7_to_3"] and metrics["models"][0]["accuracy"] >= 0.85


def test_both_prompt_layouts_side_by_side(trained_gguf, labelled, tmp_path):
    code, stdout, stderr = run_finsent("eval", "--model", str(trained_gguf["q8_0"]), "--prompt", "card", "--prompt",
                                       "train", "--input", str(labelled), "--text-column", "headline",
                                       "--label-column", "sentiment", "--json", str(tmp_path / "m.json"))
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    name = trained_gguf["q8_0"].name
    assert [m["name"] for m in metrics["models"]] == [f"{name} (card prompt)", f"{name} (train prompt)"]
    assert [m["prompt"] for m in metrics["models"]] == ["card", "train"]
    assert metrics["against_first"][0]["agreement"] >= 0.9  # the fixture was trained on both layouts


def test_prediction_columns_are_named_after_the_models():
    """Several models: each one's columns carry its file name (and its prompt when prompts are compared);
    two files of the same name get their position; one model, no prefix."""
    from types import SimpleNamespace

    from finsent_local.quality.report import prediction_column_tags

    def runs(*pairs):
        return SimpleNamespace(runs=[SimpleNamespace(model_path=Path(path), prompt=prompt) for path, prompt in pairs])

    assert prediction_column_tags(runs(("a/Llama-FinSent-S-Q4_K_M.gguf", "card"))) == [""]
    assert prediction_column_tags(runs(("a/Llama-FinSent-S-F16.gguf", "card"), ("b/desk model.gguf", "card"))) == [
        "Llama-FinSent-S-F16_", "desk_model_"]
    assert prediction_column_tags(runs(("m.gguf", "card"), ("m.gguf", "train"))) == ["m_card_", "m_train_"]
    assert prediction_column_tags(runs(("a/m.gguf", "card"), ("b/m.gguf", "card"))) == ["m_1_", "m_2_"]
