"""How right the labels are: scikit-learn's metrics on gold and predicted label indices, calibration from
the label probabilities, seeded bootstrap intervals, and one model against another.

Written here only what scikit-learn does not have: the multi-class expected calibration error (its
calibration_curve is binary) with the reliability diagram's bins, the bootstrap resampling loop, and
the comparison of two models' probability distributions.

F1 averages are over the labels present in the gold labels or the predictions (scikit-learn's `labels=`
those): a label absent from both has no F1 to average (counting it as 0 would give perfect answers
on 5 of 7 labels a macro F1 of 0.714). The per-class table marks such a label absent; the bootstrap
resamples follow the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

CALIBRATION_BINS = 10  # equal-width confidence bins, as in Guo et al. (2017)
BOOTSTRAP_SAMPLES = 1000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Predictions:
    """One model's answers for the evaluated rows, in the gold labels' label set."""

    labels: np.ndarray  # predicted label index per row
    probs: np.ndarray  # rows x labels, each row summing to 1


def interval(values: np.ndarray) -> list[float]:
    """The central 95% of bootstrap values."""
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def bootstrap_indices(rows: int, seed: int, samples: int = BOOTSTRAP_SAMPLES):
    """Row indices of each bootstrap sample (the same ones for every model: paired comparisons)."""
    rng = np.random.default_rng(seed)
    for _ in range(samples):
        yield rng.integers(0, rows, rows)


def calibration(gold: np.ndarray, predictions: Predictions, bins: int = CALIBRATION_BINS) -> dict:
    """Expected calibration error of the top label's probability, and the reliability diagram's bins:
    in each confidence bin, how often the predicted label was right."""
    confidence = predictions.probs[np.arange(len(gold)), predictions.labels]
    correct = predictions.labels == gold
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    diagram, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        if count:
            accuracy, mean_confidence = float(correct[inside].mean()), float(confidence[inside].mean())
            ece += count / len(gold) * abs(accuracy - mean_confidence)
        else:
            accuracy = mean_confidence = None
        diagram.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
                        "accuracy": accuracy, "confidence": mean_confidence})
    return {"ece": float(ece), "bins": diagram}


def present_labels(gold: np.ndarray, predicted: np.ndarray) -> list[int]:
    """The label indices F1 is averaged over: those in the gold labels or the predictions."""
    return sorted({int(i) for i in np.unique(gold)} | {int(i) for i in np.unique(predicted)})


def _class_figures(precision, recall, f1, support, present: bool) -> dict:
    if not present:  # in neither the gold labels nor the predictions: nothing to measure
        return {"precision": None, "recall": None, "f1": None, "support": 0, "absent": True}
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(support),
            "absent": False}


def label_metrics(gold: np.ndarray, predictions: Predictions, label_names: tuple[str, ...],
                  seed: int = DEFAULT_SEED) -> dict:
    """Accuracy, macro and weighted F1 (over the labels present in gold or predictions, listed in
    macro_f1_labels), per-class precision/recall/F1/support (None and absent: true for a label in
    neither), the confusion matrix (counts and row-normalised, every label), calibration, and 95%
    bootstrap intervals for accuracy and weighted F1."""
    every = list(range(len(label_names)))
    predicted = predictions.labels
    present = present_labels(gold, predicted)
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, labels=every, zero_division=0)
    counts = confusion_matrix(gold, predicted, labels=every)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.where(counts.sum(axis=1, keepdims=True) > 0, counts / counts.sum(axis=1, keepdims=True), 0.0)
    accuracies, weighted = [], []
    for sample in bootstrap_indices(len(gold), seed):
        accuracies.append(accuracy_score(gold[sample], predicted[sample]))
        sample_gold, sample_predicted = gold[sample], predicted[sample]
        weighted.append(f1_score(sample_gold, sample_predicted, labels=present_labels(sample_gold, sample_predicted),
                                 average="weighted", zero_division=0))
    return {
        "rows": int(len(gold)),
        "accuracy": float(accuracy_score(gold, predicted)),
        "accuracy_95": interval(np.array(accuracies)),
        "macro_f1": float(f1_score(gold, predicted, labels=present, average="macro", zero_division=0)),
        "macro_f1_labels": [label_names[i] for i in present],
        "weighted_f1": float(f1_score(gold, predicted, labels=present, average="weighted", zero_division=0)),
        "weighted_f1_95": interval(np.array(weighted)),
        "per_class": {name: _class_figures(precision[i], recall[i], f1[i], support[i], i in present)
                      for i, name in enumerate(label_names)},
        "confusion": {"labels": list(label_names), "counts": counts.tolist(),
                      "row_normalised": [[float(v) for v in row] for row in normalised]},
        "calibration": calibration(gold, predictions),
    }


def compare(gold: np.ndarray, first: Predictions, other: Predictions, seed: int = DEFAULT_SEED) -> dict:
    """`other` against `first` on the same rows: label agreement, how far the probabilities moved, the
    mean KL divergence KL(first || other), and a paired bootstrap interval for the accuracy difference
    (other minus first: an interval that holds 0 means "no measurable difference")."""
    moved = np.abs(other.probs - first.probs)
    eps = 1e-12  # a probability llama.cpp rounds to 0 would make the divergence infinite
    p, q = np.clip(first.probs, eps, 1.0), np.clip(other.probs, eps, 1.0)
    kl = np.sum(p * np.log(p / q), axis=1)
    right_first, right_other = first.labels == gold, other.labels == gold
    differences = [float(right_other[s].mean() - right_first[s].mean()) for s in bootstrap_indices(len(gold), seed)]
    return {
        "agreement": float(np.mean(first.labels == other.labels)),
        "mean_abs_dp": float(moved.mean()),
        "max_abs_dp": float(moved.max()) if moved.size else 0.0,
        "mean_kl": float(kl.mean()) if kl.size else 0.0,
        "accuracy_difference": float(right_other.mean() - right_first.mean()),
        "accuracy_difference_95": interval(np.array(differences)),
    }


def most_confident_errors(gold: np.ndarray, predictions: Predictions, limit: int = 25) -> list[int]:
    """Rows the model got wrong, most confident first: the ones a person should read."""
    confidence = predictions.probs[np.arange(len(gold)), predictions.labels]
    wrong = np.flatnonzero(predictions.labels != gold)
    return [int(i) for i in wrong[np.argsort(-confidence[wrong], kind="stable")][:limit]]
