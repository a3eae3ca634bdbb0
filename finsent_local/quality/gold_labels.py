"""Gold labels as people have them, read into one of the model's label sets.

A labelled file's label column holds one of a few public conventions (each documented in the README
with its source). The column's distinct values decide which: the first convention below that maps
every value wins, and the summary says which one it was. Strings are compared case-, space-, hyphen-
and underscore-insensitively; integer-valued strings ("2", "2.0") count as integers.

Integers are not guessed: public sets number their classes differently (twitter-financial-news-sentiment
0 bearish, 1 bullish, 2 neutral; Financial PhraseBank on the hub 0 negative, 1 neutral, 2 positive), so
only -1/0/1 (or a subset of it with -1) is read unasked; other integers need a named convention
(`--gold-convention`) or `--label-map`. `--label-map` (a JSON object, inline or a file) adds to the
convention the other values follow, or stands alone when it maps every value.

Nothing is guessed row by row: a value nothing maps is an error that lists every such value as the file
spells it, with its count, and nothing is evaluated.

Where 7 labels are read as 3 (a 7-label prediction against 3-label gold, 7-label gold tuning 3), one
rule holds: the 3-label distribution is the sum of each sign's 7-label probabilities, and the label is
its argmax (collapse_7_to_3); a single 7-label gold label is the one-hot case of the same rule.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.labels import LABELS_3, LABELS_7

# The 3-label class each 7-label class belongs to (its sign).
COLLAPSE_7_TO_3 = {label: ("negative" if "negative" in label else "positive" if "positive" in label else "neutral")
                   for label in LABELS_7}
LABEL_SETS = {"7": LABELS_7, "3": LABELS_3}

if TYPE_CHECKING:  # numpy is imported where it is used: the CLI reads this module's option help at start
    import numpy as np
# FiQA-style scores in [-1, 1], as FinGPT's FiQA benchmark bands them: below -NEUTRAL_BAND negative,
# below NEUTRAL_BAND neutral, else positive (so exactly 0.1 is positive); --neutral-band changes it.
NEUTRAL_BAND = 0.1


def collapse_7_to_3(probs_7, labels_7: tuple[str, ...] = LABELS_7) -> tuple[np.ndarray, np.ndarray]:
    """7-label probabilities (rows x 7, columns in `labels_7`' order) read as 3 labels: (label index per
    row in LABELS_3, rows x 3 probabilities). Each 3-label probability is the sum of its 7-label parts and
    the label is that distribution's argmax, so a label never disagrees with its own probabilities (the
    7-way argmax's sign would: 0.3 neutral against 0.25 + 0.2 + 0.15 positive)."""
    import numpy as np

    groups = np.zeros((len(labels_7), len(LABELS_3)))
    for i, label in enumerate(labels_7):
        groups[i, LABELS_3.index(COLLAPSE_7_TO_3[label])] = 1.0
    probs_3 = np.asarray(probs_7, dtype=float).reshape(-1, len(labels_7)) @ groups
    return probs_3.argmax(axis=1), probs_3


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
    # Recognised from the values alone only when one of these is among them (empty: always).
    requires: frozenset = frozenset()

    def label_of(self, value) -> str | None:
        return self.mapping.get(value)

    def recognises(self, keys) -> bool:
        return all(key in self.mapping for key in keys) and (not self.requires or bool(self.requires & set(keys)))


_SEVEN_ALIASES = {  # NWGI-style 7-class names as they are spelt in the wild
    "strongly negative": "strong negative", "very negative": "strong negative",
    "moderate negative": "moderately negative", "mild negative": "mildly negative",
    "slightly negative": "mildly negative", "mild positive": "mildly positive",
    "slightly positive": "mildly positive", "moderate positive": "moderately positive",
    "strongly positive": "strong positive", "very positive": "strong positive",
}

_BEARISH_BULLISH = {"bearish": "negative", "neutral": "neutral", "bullish": "positive"}
SIGNED = Convention("-1/0/1", "signed integers: -1 negative, 0 neutral, 1 positive",
                    "3", {-1: "negative", 0: "neutral", 1: "positive"}, frozenset({-1}))

# Recognised from the values, in this order.
CONVENTIONS = (
    Convention("3 labels", "FinSent's 3-label scheme; Financial PhraseBank (Malo et al., 2014) as strings",
               "3", {label: label for label in LABELS_3}),
    Convention("7 labels", "FinSent's 7-label scheme; FinGPT's NWGI (News With GPT Instructions) names",
               "7", {**{label: label for label in LABELS_7}, **_SEVEN_ALIASES}),
    Convention("bearish/bullish", "twitter-financial-news-sentiment (zeroshot), as names", "3", _BEARISH_BULLISH),
    SIGNED,  # only with a -1 among the values: 0/1 alone could be any set's numbering
)

# Named with --gold-convention: how the user says which numbering integer gold labels follow (each
# also reads its set's names).
NAMED_CONVENTIONS = {
    "twitter": Convention("twitter (0 bearish, 1 bullish, 2 neutral)",
                          "twitter-financial-news-sentiment (zeroshot): 0 = bearish, 1 = bullish, 2 = neutral",
                          "3", {0: "negative", 1: "positive", 2: "neutral", **_BEARISH_BULLISH}),
    "phrasebank": Convention("phrasebank (0 negative, 1 neutral, 2 positive)",
                             "Financial PhraseBank on the Hugging Face hub (takala/financial_phrasebank): "
                             "0 = negative, 1 = neutral, 2 = positive",
                             "3", {0: "negative", 1: "neutral", 2: "positive", **{l: l for l in LABELS_3}}),
    "signed": SIGNED,
}
GOLD_CONVENTION_HELP = ("How integer gold labels are numbered: twitter (0 bearish, 1 bullish, 2 neutral: "
                        "twitter-financial-news-sentiment), phrasebank (0 negative, 1 neutral, 2 positive: Financial "
                        "PhraseBank on the hub) or signed (-1, 0, 1). Needed for integers other than -1/0/1.")


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
    """Scores in [-1, 1] that are not all integers (FiQA), banded as FinGPT's FiQA benchmark does:
    below -band negative, below band neutral, else positive."""
    keys = list(keys)
    if not keys or not all(isinstance(k, (int, float)) for k in keys) or all(isinstance(k, int) for k in keys):
        return None
    if not all(-1.0 <= k <= 1.0 for k in keys):
        return None
    labels = {k: "negative" if k < -band else "neutral" if k < band else "positive" for k in keys}
    return GoldReading(f"scores in [-1, 1] (below -{band:g} negative, from {band:g} positive)",
                       "FiQA sentiment scores (banded as FinGPT's FiQA benchmark: below -0.1 negative, "
                       "from -0.1 up to 0.1 neutral, from 0.1 positive)", "3", labels)


def read_gold_labels(values: Counter, label_map: dict | None = None, band: float = NEUTRAL_BAND,
                     convention: str | None = None) -> GoldReading:
    """The reading of a gold column from its distinct non-empty values and their counts (as cell values:
    strings, numbers; the first spelling of a value is the one errors show). `convention`: a name of
    NAMED_CONVENTIONS (--gold-convention) that the values follow. `label_map` maps values of its own
    and the rest follow a convention. Raises GoldLabelError listing what cannot be mapped."""
    counts, written = Counter(), {}
    for value, n in values.items():
        key = _as_key(value)
        if key is not None:
            counts[key] += n
            written.setdefault(key, value)
    if not counts:
        raise GoldLabelError("the label column has no values")
    mapped = _checked_map(label_map) if label_map is not None else {}
    rest = Counter({k: n for k, n in counts.items() if k not in mapped})
    if not rest:
        return _reading_from_map(counts, mapped)
    reading = _convention_reading(rest, written, band, convention)
    return _with_map(reading, counts, mapped, written) if mapped.keys() & counts.keys() else reading


def _convention_reading(counts: Counter, written: dict, band: float, convention: str | None) -> GoldReading:
    """The reading of the values --label-map leaves: the named convention, else the first one that
    recognises them all, else scores; an error otherwise (integers: say which numbering)."""
    if convention is not None:
        named = NAMED_CONVENTIONS.get(convention)
        if named is None:
            raise GoldLabelError(f"no gold convention {convention!r}; use one of {', '.join(NAMED_CONVENTIONS)}")
        unmapped = {k: n for k, n in counts.items() if k not in named.mapping}
        if unmapped:
            raise GoldLabelError(_unmapped_message(unmapped, written, f" as --gold-convention {convention}"))
        return GoldReading(named.name, named.source, named.scheme, {k: named.mapping[k] for k in counts})
    for known in CONVENTIONS:
        if known.recognises(counts):
            return GoldReading(known.name, known.source, known.scheme, {k: known.mapping[k] for k in counts})
    scored = _score_convention(counts, band)
    if scored is not None:
        return scored
    if all(isinstance(k, int) for k in counts) and set(counts) <= {0, 1, 2}:
        raise GoldLabelError(_integers_message(counts))
    # The convention that maps the most rows names what is left over.
    best = max(CONVENTIONS, key=lambda c: sum(n for k, n in counts.items() if k in c.mapping))
    unmapped = {k: n for k, n in counts.items() if k not in best.mapping}
    raise GoldLabelError(_unmapped_message(unmapped, written))


def _integers_message(counts: Counter) -> str:
    values = ", ".join(str(k) for k in sorted(counts))
    signed = " or signed (-1 negative, 0 neutral, 1 positive)" if set(counts) <= {0, 1} else ""
    return (f"the gold labels are the integers {values}, which public sets number differently: say which with "
            "--gold-convention twitter (0 bearish, 1 bullish, 2 neutral; twitter-financial-news-sentiment) or "
            f"phrasebank (0 negative, 1 neutral, 2 positive; Financial PhraseBank on the hub){signed}, "
            "or map them with --label-map")


def _unmapped_message(unmapped: dict, written: dict, reading: str = "") -> str:
    shown = {k: _shown(written.get(k, k)) for k in unmapped}
    listed = ", ".join(f"{shown[k]} ({n:,})" for k, n in sorted(unmapped.items(), key=lambda kv: (-kv[1], shown[kv[0]])))
    return (f"cannot read these gold labels{reading}: {listed}; map them with --label-map "
            "'{\"value\": \"label\", ...}' (labels: the 7 or the 3 of --scheme)")


def _shown(value) -> str:
    """A gold value as the file spells it: text quoted, numbers as they are."""
    if isinstance(value, str):
        return value.strip() if isinstance(_as_key(value), (int, float)) else repr(value)
    return str(value)


def _checked_map(label_map: dict) -> dict:
    """--label-map's entries as value key -> label, each label checked."""
    known = set(LABELS_7) | set(LABELS_3)
    mapping = {}
    for raw, label in label_map.items():
        if not isinstance(label, str) or normalize(label) not in known:
            raise GoldLabelError(f"--label-map maps {raw!r} to {label!r}, which is not a label; use one of "
                                 f"{', '.join(LABELS_7)} or {', '.join(LABELS_3)}")
        mapping[_as_key(raw)] = normalize(label)
    return mapping


def _reading_from_map(counts: Counter, mapping: dict) -> GoldReading:
    """Every value mapped by --label-map: its labels decide the set."""
    used = {mapping[k] for k in counts}
    if used <= set(LABELS_3):
        scheme = "3"
    elif used <= set(LABELS_7):
        scheme = "7"
    else:
        raise GoldLabelError("--label-map mixes the 7 labels and the 3 labels; map every value into one set")
    return GoldReading("--label-map", "given on the command line", scheme, {k: mapping[k] for k in counts})


def _with_map(reading: GoldReading, counts: Counter, mapping: dict, written: dict) -> GoldReading:
    """`reading` (the convention the other values follow) with --label-map's values added."""
    own = [k for k in counts if k in mapping]
    outside = sorted({mapping[k] for k in own} - set(LABEL_SETS[reading.scheme]))
    if outside:
        raise GoldLabelError(f"--label-map maps into {', '.join(outside)}, but the other gold labels are read as "
                             f"{reading.convention} ({reading.scheme} labels): map into those "
                             f"{reading.scheme} labels")
    values = ", ".join(_shown(written[k]) for k in own)
    return GoldReading(f"{reading.convention} and --label-map", f"{reading.source}; --label-map for {values}",
                       reading.scheme, {**reading.labels, **{k: mapping[k] for k in own}})


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
