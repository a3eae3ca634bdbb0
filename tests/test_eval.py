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


# -- gold labels as people have them ----------------------------------------------------------------------
@pytest.mark.parametrize("values,convention,scheme,expected", [
    (["Strong_Negative", "moderately-negative", " mildly  negative", "NEUTRAL", "mildly positive",
      "Moderately Positive", "strong positive"], "7 labels", "7", list(LABELS_7)),
    (["strongly negative", "slightly positive"], "7 labels", "7", ["strong negative", "mildly positive"]),
    (["positive", "Negative", "neutral"], "3 labels", "3", ["positive", "negative", "neutral"]),
    (["Bearish", "bullish", "Neutral"], "bearish/bullish", "3", ["negative", "positive", "neutral"]),
    ([-1, 0, 1], "-1/0/1", "3", ["negative", "neutral", "positive"]),
    (["-1", "0", "1"], "-1/0/1", "3", ["negative", "neutral", "positive"]),  # as a CSV holds them
    ([0, 1, 2], "0/1/2 (bearish, bullish, neutral)", "3", ["negative", "positive", "neutral"]),
    (["0", "1", "2.0"], "0/1/2 (bearish, bullish, neutral)", "3", ["negative", "positive", "neutral"]),
    ([-0.62, -0.05, 0.1, 0.35, 1], "scores in [-1, 1] (neutral within +-0.1)", "3",
     ["negative", "neutral", "neutral", "positive", "positive"]),
])
def test_every_documented_convention_is_recognised(values, convention, scheme, expected):
    reading = read_gold_labels(Counter(values))
    assert reading.convention == convention and reading.scheme == scheme
    assert [reading.label_of(v) for v in values] == expected
    assert reading.label_of("") is None and reading.label_of(None) is None  # an empty cell: skipped


def test_the_neutral_band_is_settable():
    reading = read_gold_labels(Counter([-0.3, 0.2, 0.5]), band=0.25)
    assert [reading.label_of(v) for v in (-0.3, 0.2, 0.5)] == ["negative", "neutral", "positive"]


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
    code, stdout, stderr = run_finsent("eval", "--model", model, "--input", str(tmp_path / "gold3.csv"), "--text-column",
                                       "headline", "--label-column", "sentiment", "--predictions", str(tmp_path / "p.csv"))
    assert code == 0, stderr
    assert "gold labels read as 0/1/2 (bearish, bullish, neutral); 7-label predictions collapsed to 3" in stdout
    with open(tmp_path / "p.csv", newline="", encoding="utf-8") as f:
        predictions = list(csv.DictReader(f))
    assert list(predictions[0])[:5] == ["row", "text", "gold", "predicted", "model_label"]
    for row in predictions:
        assert row["predicted"] == coarse_label(row["model_label"])  # the 7-label answer, collapsed
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
    assert versus["agreement"] >= 0.95 and versus["mean_abs_dp"] < 0.05 and versus["max_abs_dp"] <= 1
    low, high = versus["accuracy_difference_95"]
    assert low <= versus["accuracy_difference"] <= high
    with open(tmp_path / "p.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    agree = sum(r["m1_predicted"] == r["m2_predicted"] for r in rows) / len(rows)
    assert agree == pytest.approx(versus["agreement"])
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
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page
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
    for name, column, convention in (("gold.parquet", "label", "0/1/2 (bearish, bullish, neutral)"),
                                     ("gold.jsonl", "score", "scores in [-1, 1] (neutral within +-0.1)")):
        code, _, stderr = run_finsent("eval", "--model", model, "--input", str(tmp_path / name), "--text-column", "text",
                                      "--label-column", column, "--json", str(tmp_path / f"{name}.json"))
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
