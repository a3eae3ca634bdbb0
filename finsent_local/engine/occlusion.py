"""Word attributions by occlusion: what the model's own answer does when a word is taken away.

- Units are words as a reader sees them, with character offsets (Python string indices, that is Unicode
  code points) into the exact input. A number keeps its sign, currency and unit: "$1.2bn", "-8%",
  "+3.5 pts", "EUR 40m" is two units ("EUR", "40m"). Punctuation is not a unit. With unit="phrase" the
  units are pairs of adjacent words (for texts where one word alone says little: "cuts guidance").
- A variant is the text with one unit removed, along with the space before it (or after it, for a
  first word), so the rest of the text tokenizes as it did and shares its prefix with the original.
- A unit's weight is how the answer changes when it is removed: `weight` = score(text) - score(without),
  on the label scale's expected value (-1 to +1), so a positive weight pushed towards positive;
  `label_weight` = p(label | text) - p(label | without), so a positive one supported the chosen label.
  No sampling and no surrogate: the same numbers on every run for the same model file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNIT_KINDS = ("word", "phrase")

_SIGN = r"[-+\u2212]"
_CURRENCY = r"[$\u20ac\u00a3\u00a5]"
_SCALE = r"(?:bn|mn|mln|million|billion|trillion|thousand|k|m|b|x|bps|bp|pp|pts|pt|percent)"
_NUMBER = (rf"{_SIGN}?{_CURRENCY}?{_SIGN}?\d+(?:[.,]\d+)*"  # -$1,200.50  $-5  +3.5
           rf"(?:%|{_SCALE}\b|\s{_SCALE}\b(?!['\u2019-]\w))?(?![^\W_])")  # 8%  1.2bn  40 million; not 3Q
_WORD = r"[^\W_]+(?:['\u2019&.\-][^\W_]+)*"  # don't  AT&T  U.S  year-on-year  Q3
_UNIT = re.compile(rf"{_NUMBER}|{_WORD}")


@dataclass(frozen=True)
class Unit:
    start: int
    end: int
    text: str


def reader_words(text: str) -> list[Unit]:
    return [Unit(m.start(), m.end(), m.group()) for m in _UNIT.finditer(text)]


def units(text: str, kind: str = "word") -> list[Unit]:
    if kind not in UNIT_KINDS:
        raise ValueError(f"unknown unit {kind!r} (word or phrase)")
    words = reader_words(text)
    if kind == "word" or len(words) < 2:
        return words
    return [Unit(a.start, b.end, text[a.start:b.end]) for a, b in zip(words, words[1:])]


def without(text: str, unit: Unit) -> str:
    """The text with `unit` removed, and one run of white space next to it: the one before it, or, for
    a unit at the start, the one after it."""
    start, end = unit.start, unit.end
    before = len(text[:start]) - len(text[:start].rstrip())
    if before:
        start -= before
    else:
        end += len(text[end:]) - len(text[end:].lstrip())
    return text[:start] + text[end:]


@dataclass
class Attribution:
    start: int
    end: int
    text: str
    weight: float  # score with the unit minus score without it
    label_weight: float  # p(chosen label) with the unit minus without it
    label_without: str  # the label the text gets without the unit

    def as_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "text": self.text, "weight": self.weight,
                "label_weight": self.label_weight, "label_without": self.label_without}


def attribute(label: str, score: float, probs: dict[str, float], unit_list: list[Unit],
              without_results: list) -> list[Attribution]:
    """One Attribution per unit, from the full text's answer and the answer without each unit (objects
    with .label, .score, .probs)."""
    return [Attribution(u.start, u.end, u.text, round(score - r.score, 6), round(probs[label] - r.probs[label], 6),
                        r.label)
            for u, r in zip(unit_list, without_results)]


def strongest(words: list[dict], k: int) -> list[dict]:
    """The k units that moved the score most (largest |weight|; ties: larger |label_weight|, then the
    earlier unit), strongest first."""
    order = sorted(range(len(words)), key=lambda i: (-abs(words[i]["weight"]), -abs(words[i]["label_weight"]), i))
    return [words[i] for i in order[:k]]


def strongest_text(words: list[dict], k: int = 3) -> str:
    """'cuts -0.41; guidance -0.12' : the strongest units with their weights, for a cell or a column."""
    return "; ".join(f"{w['text']} {w['weight']:+.2f}" for w in strongest(words, k))
