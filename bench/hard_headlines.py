"""A harder labelled set for the trained test model: event phrases, templates and companies that its
training data (tests/sentiment_data.py) never used. The model is less sure here, so this is where a
quantization that moves probabilities shows up as changed labels.

Labels are the 7 of Llama-FinSent-S, given by how the phrase reads to a person (a paraphrase of one
of the training phrases' strength), not by what the model says.
"""

from __future__ import annotations

HARD_EVENTS_7 = {
    "strong negative": [
        "stock tumbles 35% amid a fraud inquiry", "seeks court protection from its creditors",
        "crashes after its auditors resign", "loses half its market value in a single session",
    ],
    "moderately negative": [
        "falls short of profit forecasts as expenses climb", "lowers its outlook for the year",
        "drops 7% on disappointing revenue", "posts a bigger loss than a year ago",
    ],
    "mildly negative": [
        "dips a little on a careful forecast", "notes slightly weaker bookings",
        "drifts down in thin trading", "reports a small decline in orders",
    ],
    "neutral": [
        "sets the date of its shareholder meeting", "names a new company secretary",
        "will release its figures next Tuesday", "relocates its head office",
    ],
    "mildly positive": [
        "ticks up on stable orders", "records a small gain in bookings",
        "drifts higher in calm trading", "reports slightly firmer demand",
    ],
    "moderately positive": [
        "tops profit forecasts as revenue grows", "lifts its outlook for the year",
        "rises 7% on robust demand", "swings to a healthy quarterly profit",
    ],
    "strong positive": [
        "rockets 35% on a record quarter", "blows past every forecast with stellar results",
        "more than doubles its profit", "surges on a blockbuster buyout bid",
    ],
}

HARD_COMPANIES = ["Rekall Corp", "Buy n Large", "Spacely Sprockets", "Ollivanders", "Yoyodyne", "Omni Consumer Products"]
HARD_TEMPLATES = ["{company} {event}", "Exclusive - {company} {event}", "In early trading, {company} {event}.",
                  "{company} {event}, filing shows"]


def hard_examples() -> list[tuple[str, str]]:
    """(headline, 7-class label): every event once per company, templates taken in turn."""
    out = []
    for label, events in HARD_EVENTS_7.items():
        for e, event in enumerate(events):
            for c, company in enumerate(HARD_COMPANIES):
                template = HARD_TEMPLATES[(e + c) % len(HARD_TEMPLATES)]
                out.append((template.format(company=company, event=event), label))
    return out
