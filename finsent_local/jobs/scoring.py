"""A table column's values through the classification service, as one RowResult per row: shared by
the single-machine file job and the Ray Data scorer, so the two cannot label a row differently."""

from __future__ import annotations

from ..engine.service import ClassificationService, TooManyWords
from .tables import NotText, RowResult

WHY_WORDS = 3  # classify --explain: the strongest words a why cell lists
WHY_UNIT = "word"


def classify_values(service: ClassificationService, values: list, scheme: str,
                    explain: bool = False) -> list[RowResult]:
    """Values are what the column holds: text, or None for an empty cell (an `empty_text` row),
    or anything else (a number...: an `invalid_text` row). Never raises for one row's value.
    With `explain`, every row also gets `why` (see why_cells)."""
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
    if not explain:
        return out
    whys = why_cells(service, [t if not r.error else None for t, r in zip(texts, out)], scheme)
    return [RowResult(r.label, r.score, r.probs, r.error, why) for r, why in zip(out, whys)]


def why_cells(service: ClassificationService, texts: list[str | None], scheme: str) -> list[str]:
    """The why cell of each text: its WHY_WORDS strongest words with their weights ("cuts -0.41;
    guidance -0.12"), or a sentence saying why it has none. None (a row whose label failed: its error
    column says why) gets "". A text over /v1/explain's word limit is not explained, so one long row
    cannot hold a file's job for long; that row keeps its label."""
    from ..engine.occlusion import strongest_text

    cells: list[str] = ["" for _ in texts]
    todo: dict[int, str] = {}
    for i, text in enumerate(texts):
        if text is None:
            continue
        try:
            service.check_explain_words([text], WHY_UNIT)
        except TooManyWords as e:
            cells[i] = f"not explained: {e.words:,} words; at most {e.limit:,} are explained per text"
            continue
        todo[i] = text
    answers = service.explain(list(todo.values()), scheme, WHY_UNIT) if todo else []
    for i, answer in zip(todo, answers):
        if "error" in answer:
            cells[i] = f"not explained: {answer['error']['message']}"
        elif not answer["words"]:
            cells[i] = "not explained: the text has no words"
        else:
            cells[i] = strongest_text(answer["words"], WHY_WORDS)
    return cells
