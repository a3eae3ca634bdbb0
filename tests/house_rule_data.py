"""A desk's house rule, for `finsent tune`'s tests: "guidance reiterated" and its kin are mildly positive.

The trained fixture never saw these phrasings and labels them otherwise (neutral, or negative/positive
by the words it knows: "guidance", "profit"). The labelled file mixes the house-rule rows with ordinary
rows of every label (the fixture's own phrases, rightly labelled), as a desk's file would: its other
labels keep the tuned model from pulling every headline towards the new rule. Companies and templates
follow sentiment_data's split: training rows use the training ones, held-out rows the held-out ones.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from sentiment_data import (HELD_OUT_COMPANIES, HELD_OUT_TEMPLATES, TRAIN_COMPANIES, TRAIN_TEMPLATES, VALIDATION_COMPANIES,
                            VALIDATION_TEMPLATES, examples, training_examples)

from finsent_local.engine.labels import LABELS_7

HOUSE_RULE_LABEL = "mildly positive"
HOUSE_RULE_EVENTS = ["reiterates full-year guidance", "keeps its outlook unchanged", "confirms its annual targets",
                     "says guidance reiterated", "maintains its profit forecast"]
HOUSE_ROWS = 60
ORDINARY_ROWS_PER_LABEL = 40


def house_rule_rows(seed: int = 5) -> list[tuple[str, str]]:
    """(headline, 7-class label): HOUSE_ROWS house-rule rows and ORDINARY_ROWS_PER_LABEL of every label."""
    rng = random.Random(seed)
    house = [(t.format(company=c, event=e), HOUSE_RULE_LABEL)
             for e in HOUSE_RULE_EVENTS for c in TRAIN_COMPANIES for t in TRAIN_TEMPLATES]
    ordinary = training_examples()
    rng.shuffle(ordinary)
    per_label = {label: [pair for pair in ordinary if pair[1] == label][:ORDINARY_ROWS_PER_LABEL] for label in LABELS_7}
    rows = rng.sample(house, HOUSE_ROWS) + [pair for label in LABELS_7 for pair in per_label[label]]
    rng.shuffle(rows)
    return rows


def house_rule_held_out() -> list[tuple[str, str]]:
    """The house-rule phrasings with held-out companies and templates: never in the labelled file."""
    return [(t.format(company=c, event=e), HOUSE_RULE_LABEL)
            for e in HOUSE_RULE_EVENTS for c in HELD_OUT_COMPANIES for t in HELD_OUT_TEMPLATES]


def write_labelled_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["headline", "label"])
        writer.writerows(rows)
    return path


REFERENCE_ROWS = 300


def reference_rows(seed: int = 3) -> list[tuple[str, str]]:
    """What the desk reads every day, for `finsent tune --reference`: headlines of every label with the
    fixture's validation companies and templates (never its held-out ones, which the tests measure on)."""
    rows = examples(VALIDATION_COMPANIES, VALIDATION_TEMPLATES)
    random.Random(seed).shuffle(rows)
    return rows[:REFERENCE_ROWS]
