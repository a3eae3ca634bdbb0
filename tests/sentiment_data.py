"""Synthetic financial headlines with known 7-class labels, for training and testing the tiny model.

Headlines are `<company> <event>`; the event phrase decides the label. Three disjoint sets of
companies: training, validation (checked while the fixture is built, to decide when training is done)
and held-out (only the tests see it). Validation and held-out use templates training never saw, so
their accuracy means the model learned the phrases, not the sentences.
"""

from __future__ import annotations

import random

from finsent_local.engine.labels import LABELS_3, LABELS_7

EVENTS_7 = {
    "strong negative": [
        "shares plunge 40% after fraud probe", "files for bankruptcy protection", "collapses as lenders pull credit",
        "stock crashes after accounting scandal", "warns of massive losses and halts dividend",
    ],
    "moderately negative": [
        "misses earnings estimates as costs rise", "cuts full-year guidance", "shares fall 8% on weak sales",
        "reports a wider quarterly loss", "downgraded by analysts on shrinking margins",
    ],
    "mildly negative": [
        "shares slip slightly on cautious outlook", "sees a small dip in quarterly orders", "edges lower in quiet trading",
        "reports marginally softer demand", "trims hiring plans a little",
    ],
    "neutral": [
        "schedules its annual general meeting", "appoints a new board secretary", "will publish results next week",
        "moves its headquarters to a new office", "confirms the date of its investor day",
    ],
    "mildly positive": [
        "shares edge higher on steady demand", "reports slightly better quarterly orders", "sees a small rise in sales",
        "nudges margins up a little", "gains modestly in quiet trading",
    ],
    "moderately positive": [
        "beats earnings estimates as sales rise", "raises full-year guidance", "shares climb 8% on strong demand",
        "reports a solid quarterly profit", "upgraded by analysts on wider margins",
    ],
    "strong positive": [
        "shares soar 40% after record profit", "smashes every estimate with blowout results", "doubles profit and hikes dividend",
        "stock skyrockets on a huge takeover offer", "posts record revenue and triples earnings",
    ],
}

TRAIN_COMPANIES = [
    "Acme Corp", "Globex", "Initech", "Umbrella Group", "Stark Industries", "Wayne Holdings", "Hooli", "Vandelay",
    "Soylent Foods", "Tyrell Inc", "Cyberdyne", "Wonka Brands", "Oscorp", "Aperture Labs", "Massive Dynamic",
    "Pied Piper", "Gekko & Co", "Duff Beverages", "Monarch Bank", "Blue Sun",
]
HELD_OUT_COMPANIES = ["Nakatomi Trading", "Virtucon", "Dunder Mifflin", "Sterling Cooper", "Prestige Worldwide",
                      "Bluth Company"]

VALIDATION_COMPANIES = ["Initrode", "Kramerica", "Los Pollos Hermanos", "Gringotts", "Wernham Hogg", "Cogswell Cogs"]

# Varied openings and endings, so the label (its second token above all: "... negative" or
# "... positive") hangs on the event phrase and not on where the phrase sits in the sentence.
TRAIN_TEMPLATES = ["{company} {event}", "{company} {event}.", "Update: {company} {event}",
                   "Report: {company} {event}.", "{company} {event}, sources say", "Markets: {company} {event}",
                   "{company} {event} - analysts react"]
VALIDATION_TEMPLATES = ["{company} {event}", "Breaking: {company} {event}.", "Alert: {company} {event}"]
HELD_OUT_TEMPLATES = ["{company} {event}", "Breaking: {company} {event}."]


def coarse_label(label_7: str) -> str:
    if label_7 == "neutral":
        return "neutral"
    return "negative" if label_7.endswith("negative") else "positive"


def examples(companies: list[str], templates: list[str]) -> list[tuple[str, str]]:
    """(headline, 7-class label) for every company x event x template."""
    out = []
    for label, events in EVENTS_7.items():
        for event in events:
            for company in companies:
                for template in templates:
                    out.append((template.format(company=company, event=event), label))
    return out


def training_examples() -> list[tuple[str, str]]:
    return examples(TRAIN_COMPANIES, TRAIN_TEMPLATES)


def _balanced(pairs: list[tuple[str, str]], per_label: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    by_label: dict[str, list[tuple[str, str]]] = {}
    for text, label in pairs:
        by_label.setdefault(label, []).append((text, label))
    return [pair for label in LABELS_7 for pair in rng.sample(by_label[label], per_label)]


def validation_examples(per_label: int = 20, seed: int = 3) -> list[tuple[str, str]]:
    """A balanced set the fixture build checks its accuracy on (never used by the tests)."""
    return _balanced(examples(VALIDATION_COMPANIES, VALIDATION_TEMPLATES), per_label, seed)


def held_out_examples(per_label: int = 4, seed: int = 7) -> list[tuple[str, str]]:
    """A small, balanced held-out set (per_label headlines for each 7-class label)."""
    return _balanced(examples(HELD_OUT_COMPANIES, HELD_OUT_TEMPLATES), per_label, seed)


assert not {*TRAIN_COMPANIES} & {*VALIDATION_COMPANIES} and not {*HELD_OUT_COMPANIES} & {*VALIDATION_COMPANIES}
assert set(EVENTS_7) == set(LABELS_7) and {coarse_label(l) for l in LABELS_7} == set(LABELS_3)
