"""Boundary precision, recall and F1 of a sentence splitter on tests/segmentation_cases.py, for the
segmentation test and bench/segmentation_bench.py. A boundary is the offset where a sentence after the
first starts; a predicted one counts only at the exact offset."""

from __future__ import annotations

import re
from collections.abc import Callable

from segmentation_cases import CASES, gold_starts, unmarked


def naive_starts(text: str) -> list[int]:
    """The split everyone writes first: after every '. '."""
    return [m.end() for m in re.finditer(r"\. +", text)]


def library_starts(split: Callable[[str], list[tuple[int, int]]]) -> Callable[[str], list[int]]:
    """Starts from (start, end) spans, whitespace skipped, the first sentence's dropped."""
    def starts(text: str) -> list[int]:
        found = []
        for a, _ in split(text):
            while a < len(text) and text[a].isspace():
                a += 1
            found.append(a)
        return sorted(set(found) - {min(found, default=0)})
    return starts


def pysbd_spans(text: str) -> list[tuple[int, int]]:
    import pysbd

    return [(s.start, s.end) for s in pysbd.Segmenter(language="en", clean=False, char_span=True).segment(text)]


def blingfire_spans(text: str) -> list[tuple[int, int]]:
    import blingfire

    return blingfire.text_to_sentences_and_offsets(text)[1] if text.strip() else []


def ours_spans(text: str) -> list[tuple[int, int]]:
    from finsent_local.jobs.sentences import split_sentences

    return [(s.start, s.end) for s in split_sentences(text)]


SPLITTERS = {  # blingfire is measured by bench/segmentation_bench.py only (where it is installed)
    "naive '. ' split": naive_starts,
    "pysbd": library_starts(pysbd_spans),
    "blingfire": library_starts(blingfire_spans),
    "finsent (pysbd + line and item rules)": library_starts(ours_spans),
}


def score(starts: Callable[[str], list[int]]) -> dict:
    true_positive = predicted = gold = 0
    misses = []
    for kind, case in CASES:
        text = unmarked(case)
        want, got = set(gold_starts(case)), set(starts(text))
        true_positive += len(want & got)
        predicted += len(got)
        gold += len(want)
        if want != got:
            misses.append((kind, text, sorted(want - got), sorted(got - want)))
    precision = true_positive / predicted if predicted else 1.0
    recall = true_positive / gold if gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "boundaries": gold, "misses": misses}
