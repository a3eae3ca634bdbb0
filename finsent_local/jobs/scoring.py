"""A table column's values through the classification service, as one RowResult per row: shared by
the single-machine file job and the Ray Data scorer, so the two cannot label a row differently."""

from __future__ import annotations

from ..engine.service import ClassificationService
from .tables import NotText, RowResult


def classify_values(service: ClassificationService, values: list, scheme: str) -> list[RowResult]:
    """Values are what the column holds: text, or None for an empty cell (an `empty_text` row),
    or anything else (a number...: an `invalid_text` row). Never raises for one row's value."""
    texts = ["" if v is None or isinstance(v, NotText) else v for v in values]
    labels = service.schemes[scheme].labels
    out = []
    for value, result in zip(values, service.classify(texts, scheme)):
        if isinstance(value, NotText):
            out.append(RowResult(error=value.reason))
        elif "error" in result:
            out.append(RowResult(error=result["error"]["message"]))
        else:
            out.append(RowResult(result["label"], result["score"], tuple(result["probs"][label] for label in labels)))
    return out
