"""Training data for LoRA fine-tuning: labelled rows read as `finsent eval` reads them, checked, split
into training and validation rows, and turned into (prompt + answer) token sequences whose loss falls on
the answer tokens only, in the prompt layout the engine serves (labels.py).

Kept apart from the training itself (torch, peft): everything here is plain data, so its rules (which
rows, which split, which tokens) are checked without a model.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from ..engine.labels import DEFAULT_PROMPT_PRESET, LabelScheme, default_schemes
from ..quality.gold_labels import COLLAPSE_7_TO_3, NEUTRAL_BAND, GoldLabelError, read_gold_labels

MIN_ROWS_PER_LABEL = 5  # fewer and the validation figures for that label mean nothing
VALIDATION_SHARE = 0.2
IGNORED = -100  # the label id torch's cross-entropy skips: prompt tokens carry no loss
MAX_PROMPT_TOKENS = 1024  # as the engine (EngineOptions.max_prompt_tokens): longer prompts would be cut there


class TuneDataError(ValueError):
    """The labelled rows cannot be trained on as asked: one line for the user."""


@dataclass(frozen=True)
class LabelledRows:
    texts: list[str]
    labels: list[str]  # in the scheme being tuned
    row_numbers: list[int]  # 1-based data rows of the file
    convention: str  # how the gold column was read


def labelled_rows(texts: list, golds: list, row_numbers: list[int], scheme: str,
                  label_map: dict | None = None, neutral_band: float = NEUTRAL_BAND,
                  gold_convention: str | None = None) -> LabelledRows:
    """Gold values read into `scheme`'s labels as `finsent eval` reads them (`gold_convention`: how
    integers are numbered; 7-label gold may train a 3-label scheme, collapsed by sign, the one-hot case
    of gold_labels.collapse_7_to_3; 3-label gold cannot train 7), then checked: at least two labels,
    MIN_ROWS_PER_LABEL each."""
    try:
        reading = read_gold_labels(Counter(_key(g) for g in golds), label_map, neutral_band, gold_convention)
    except GoldLabelError as e:
        raise TuneDataError(str(e)) from None
    if reading.scheme == "3" and scheme == "7":
        raise TuneDataError("the gold labels have 3 classes: they can tune --scheme 3, not 7 (or map them to the 7 "
                            "labels with --label-map)")
    labels = [reading.label_of(_key(g)) for g in golds]
    if reading.scheme == "7" and scheme == "3":
        labels = [COLLAPSE_7_TO_3[label] for label in labels]
    counts = Counter(labels)
    if len(counts) < 2:
        raise TuneDataError(f"every row has the label {labels[0]!r}: fine-tuning needs at least two labels")
    few = {label: n for label, n in counts.items() if n < MIN_ROWS_PER_LABEL}
    if few:
        shown = ", ".join(f"{label!r} has {n}" for label, n in sorted(few.items()))
        raise TuneDataError(f"too few rows: {shown}; at least {MIN_ROWS_PER_LABEL} rows per label are needed")
    return LabelledRows(list(texts), labels, list(row_numbers), reading.convention)


def _key(value):
    return value if isinstance(value, (str, int, float)) else str(value)


def stratified_split(labels: list[str], share: float = VALIDATION_SHARE, seed: int = 0) -> tuple[list[int], list[int]]:
    """(training indices, validation indices): `share` of each label's rows (at least one) to validation,
    chosen by a seeded shuffle, so the same rows and seed give the same split on any machine."""
    if not 0 < share < 1:
        raise TuneDataError(f"the validation share must be between 0 and 1, not {share}")
    rng = random.Random(seed)
    train, validation = [], []
    for label in sorted(set(labels)):
        rows = [i for i, l in enumerate(labels) if l == label]
        rng.shuffle(rows)
        held = max(1, round(len(rows) * share))
        validation += rows[:held]
        train += rows[held:]
    return sorted(train), sorted(validation)


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORED on the prompt, the answer's ids on the answer


def training_examples(rows: LabelledRows, scheme: str, tokenize, preset: str = DEFAULT_PROMPT_PRESET,
                      eos_id: int | None = None) -> list[Example]:
    """Each row as the engine would prompt it, followed by its label's continuation (" strong positive"),
    then `eos_id` when given; the loss is on the continuation (and end) only. `tokenize(text, special)`
    gives token ids, with the tokenizer's begin-of-text when `special`. A prompt over MAX_PROMPT_TOKENS is
    refused with its row number: the engine would cut it, so the model would learn from text it never sees."""
    labelling: LabelScheme = default_schemes()[scheme]
    out = []
    for text, label, row in zip(rows.texts, rows.labels, rows.row_numbers):
        prompt = tokenize(labelling.prompt(text, preset), True)
        if len(prompt) > MAX_PROMPT_TOKENS:
            raise TuneDataError(f"row {row}: the text is too long ({len(prompt):,} prompt tokens; at most "
                                f"{MAX_PROMPT_TOKENS:,}, as the server reads them)")
        answer = tokenize(LabelScheme.continuation(label), False) + ([eos_id] if eos_id is not None else [])
        out.append(Example(prompt + answer, [IGNORED] * len(prompt) + answer))
    return out


