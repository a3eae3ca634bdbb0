"""Gold labels as people have them, read into one of the model's label sets.

A labelled file's label column holds one of a few public conventions (each documented in the README
with its source). The column's distinct values decide which: the first convention below that maps
every value wins, and the summary says which one it was. Strings are compared case-, space-, hyphen-
and underscore-insensitively; integer-valued strings ("2", "2.0") count as integers. `--label-map`
(a JSON object, inline or a file) replaces the recognition for anything else.

Nothing is guessed row by row: a value no convention maps is an error that lists every such value
with its count, and nothing is evaluated.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.labels import LABELS_3, LABELS_7

# Where a 7-label prediction goes when the gold labels have 3 classes.
COLLAPSE_7_TO_3 = {label: ("negative" if "negative" in label else "positive" if "positive" in label else "neutral")
                   for label in LABELS_7}
# FiQA-style scores in [-1, 1]: within +-NEUTRAL_BAND of 0 is neutral (the band FinGPT's FiQA benchmark
# uses); --neutral-band changes it.
NEUTRAL_BAND = 0.1


class GoldLabelError(ValueError):
    """The label column cannot be read as gold labels: one line for the user."""


def normalize(value: str) -> str:
    """'Strong_Negative', ' strong-negative ' and 'STRONG  NEGATIVE' all read 'strong negative'."""
    return re.sub(r"[\s_\-]+", " ", value).strip().casefold()


@dataclass(frozen=True)
class Convention:
    name: str
    source: str  # where users meet it (for the README and the summary)
    scheme: str  # "7" or "3": the label set the gold labels are in
    mapping: dict = field(default_factory=dict)  # normalized string or int -> label

    def label_of(self, value) -> str | None:
        return self.mapping.get(value)


_SEVEN_ALIASES = {  # NWGI-style 7-class names as they are spelt in the wild
    "strongly negative": "strong negative", "very negative": "strong negative",
    "moderate negative": "moderately negative", "mild negative": "mildly negative",
    "slightly negative": "mildly negative", "mild positive": "mildly positive",
    "slightly positive": "mildly positive", "moderate positive": "moderately positive",
    "strongly positive": "strong positive", "very positive": "strong positive",
}

CONVENTIONS = (
    Convention("3 labels", "FinSent's 3-label scheme; Financial PhraseBank (Malo et al., 2014) as strings",
               "3", {label: label for label in LABELS_3}),
    Convention("7 labels", "FinSent's 7-label scheme; FinGPT's NWGI (News With GPT Instructions) names",
               "7", {**{label: label for label in LABELS_7}, **_SEVEN_ALIASES}),
    Convention("bearish/bullish", "twitter-financial-news-sentiment (zeroshot), as names",
               "3", {"bearish": "negative", "neutral": "neutral", "bullish": "positive"}),
    Convention("-1/0/1", "signed integers: -1 negative, 0 neutral, 1 positive",
               "3", {-1: "negative", 0: "neutral", 1: "positive"}),
    Convention("0/1/2 (bearish, bullish, neutral)",
               "twitter-financial-news-sentiment (zeroshot): 0 = bearish, 1 = bullish, 2 = neutral",
               "3", {0: "negative", 1: "positive", 2: "neutral"}),
)


def _as_key(value):
    """A cell's value as a mapping key: an int for integer values (2, 2.0, "2"), a float for other
    numbers ("0.35" too), a normalized string otherwise; None for an empty cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return normalize(str(value))
    if isinstance(value, (int, float)):
        return int(value) if float(value).is_integer() else float(value)
    text = str(value).strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return normalize(text)
    if math.isfinite(number):
        return int(number) if number.is_integer() and re.fullmatch(r"[+-]?\d+(\.0*)?", text) else number
    return normalize(text)


@dataclass(frozen=True)
class GoldReading:
    """How the gold column was read: its convention and the label of each key."""

    convention: str
    source: str
    scheme: str
    labels: dict  # key -> label in `scheme`

    def label_of(self, value) -> str | None:
        """The gold label of a cell; None for an empty one (a skipped row)."""
        key = _as_key(value)
        return None if key is None else self.labels[key]


def _score_convention(keys: Iterable, band: float) -> GoldReading | None:
    """Scores in [-1, 1] that are not all integers (FiQA): negative, neutral within the band, positive."""
    keys = list(keys)
    if not keys or not all(isinstance(k, (int, float)) for k in keys) or all(isinstance(k, int) for k in keys):
        return None
    if not all(-1.0 <= k <= 1.0 for k in keys):
        return None
    labels = {k: "negative" if k < -band else "positive" if k > band else "neutral" for k in keys}
    return GoldReading(f"scores in [-1, 1] (neutral within +-{band:g})",
                       "FiQA sentiment scores (FinGPT's FiQA benchmark bands them at +-0.1)", "3", labels)


def read_gold_labels(values: Counter, label_map: dict | None = None, band: float = NEUTRAL_BAND) -> GoldReading:
    """The reading of a gold column from its distinct non-empty values and their counts (as cell values:
    strings, numbers). Raises GoldLabelError listing what cannot be mapped."""
    counts = Counter()
    for value, n in values.items():
        key = _as_key(value)
        if key is not None:
            counts[key] += n
    if not counts:
        raise GoldLabelError("the label column has no values")
    if label_map is not None:
        return _reading_from_map(counts, label_map)
    for convention in CONVENTIONS:
        if all(key in convention.mapping for key in counts):
            return GoldReading(convention.name, convention.source, convention.scheme,
                               {key: convention.mapping[key] for key in counts})
    scored = _score_convention(counts, band)
    if scored is not None:
        return scored
    # The convention that maps the most rows names what is left over.
    best = max(CONVENTIONS, key=lambda c: sum(n for k, n in counts.items() if k in c.mapping))
    unmapped = {k: n for k, n in counts.items() if k not in best.mapping}
    raise GoldLabelError(_unmapped_message(unmapped))


def _unmapped_message(unmapped: dict) -> str:
    listed = ", ".join(f"{_shown(k)} ({n:,})" for k, n in sorted(unmapped.items(), key=lambda kv: (-kv[1], str(kv[0]))))
    return (f"cannot read these gold labels: {listed}; map them with --label-map "
            "'{\"value\": \"label\", ...}' (labels: the 7 or the 3 of --scheme)")


def _shown(key) -> str:
    return repr(key) if isinstance(key, str) else str(key)


def _reading_from_map(counts: Counter, label_map: dict) -> GoldReading:
    known = set(LABELS_7) | set(LABELS_3)
    mapping = {}
    for raw, label in label_map.items():
        if not isinstance(label, str) or normalize(label) not in known:
            raise GoldLabelError(f"--label-map maps {raw!r} to {label!r}, which is not a label; use one of "
                                 f"{', '.join(LABELS_7)} or {', '.join(LABELS_3)}")
        mapping[_as_key(raw)] = normalize(label)
    unmapped = {k: n for k, n in counts.items() if k not in mapping}
    if unmapped:
        raise GoldLabelError(_unmapped_message(unmapped))
    used = {mapping[k] for k in counts}
    if used <= set(LABELS_3):
        scheme = "3"
    elif used <= set(LABELS_7):
        scheme = "7"
    else:
        raise GoldLabelError("--label-map mixes the 7 labels and the 3 labels; map every value into one set")
    return GoldReading("--label-map", "given on the command line", scheme, {k: mapping[k] for k in counts})


def load_label_map(text: str) -> dict:
    """--label-map: a JSON object inline, or the path of a file holding one."""
    source = text
    if not text.lstrip().startswith("{"):
        try:
            source = Path(text).read_text(encoding="utf-8")
        except OSError as e:
            raise GoldLabelError(f"--label-map {text!r} is neither a JSON object nor a readable file "
                                 f"({e.strerror or e})") from None
    try:
        mapping = json.loads(source)
    except ValueError as e:
        raise GoldLabelError(f"--label-map is not valid JSON ({e})") from None
    if not isinstance(mapping, dict) or not mapping:
        raise GoldLabelError('--label-map must be a JSON object such as {"pos": "positive", "neg": "negative"}')
    return mapping
