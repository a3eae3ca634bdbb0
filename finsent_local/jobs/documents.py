"""Long documents (press releases, call transcripts, filings): sentence labels plus one document result.

The model was trained on headlines and short news sentences, so a document is split into sentences
(jobs/sentences), each sentence is labelled through the classification service (batched decodes; a
repeated boilerplate sentence is answered by the result cache), and the sentence results are summed up:

- the label distribution, the mean score and the length-weighted mean score (weights: characters);
- the share of non-neutral sentences;
- the most positive and the most negative sentence;
- the document label: the label whose value on the scheme's scale (-1 ... 1) is nearest the mean
  sentence score. It reads the document's overall tone the way each sentence's score reads its
  probabilities, so one confident sentence keeps its own label, and neutral boilerplate pulls a
  document toward neutral; how much of the text takes a side is the non-neutral share beside it.

`about` keeps only the sentences that mention one of the given names (case-insensitive, whole words):
entity-level sentiment. No sentence mentioning them is an answer ("no mention"), not an error.

`explain` adds why to the two sentences that moved the document's score most: the most positive and the
most negative sentence get `words`, each word's weight by occlusion as POST /v1/explain gives it. Only
those two: explaining costs about one classification per word, so a whole document is not explained.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..engine.worker import TURN_TEXTS
from .sentences import Span, split_sentences

DOCUMENT_RULE = "the label whose scale value is nearest the mean sentence score"
# Sentences per call into the service: one engine turn, so each call ends well within the wait limit
# however long the document, and a long document never holds other clients back for long.
DOCUMENT_BATCH = TURN_TEXTS
NO_MENTION = "no mention"


class DocumentTooLarge(ValueError):
    """Over the document limits (characters or sentences): the server answers 413."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def about_names(about: str | list[str] | None) -> list[str]:
    """`"Acme|Acme Corp"` or a list: the names, blanks dropped."""
    if about is None:
        return []
    names = about.split("|") if isinstance(about, str) else list(about)
    return [n.strip() for n in names if isinstance(n, str) and n.strip()]


def mention_matcher(names: list[str]) -> Callable[[str], bool]:
    """Whether a sentence names one of `names`: case-insensitive, and not inside a longer word (Acme
    does not match Acmeco), so a name with dots or '&' matches as written."""
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
                         + r")(?!\w)", re.IGNORECASE)
    return lambda sentence: pattern.search(sentence) is not None


def nearest_label(score: float, labels: tuple[str, ...], values: tuple[float, ...]) -> str:
    return labels[min(range(len(labels)), key=lambda i: (abs(values[i] - score), abs(values[i])))]


def summarize(sentences: list[dict], labels: tuple[str, ...], values: tuple[float, ...]) -> dict:
    """The document result from its sentence results ({"text", "label", "score", ...} or {"error"})."""
    scored = [s for s in sentences if "error" not in s]
    counts = {label: sum(1 for s in scored if s["label"] == label) for label in labels}
    result = {"label": None, "score": None, "length_weighted_score": None, "non_neutral_share": None,
              "label_counts": counts, "sentences": len(sentences), "scored": len(scored),
              "errors": len(sentences) - len(scored), "most_positive": None, "most_negative": None,
              "rule": DOCUMENT_RULE}
    if not scored:
        return result
    mean = sum(s["score"] for s in scored) / len(scored)
    weight = sum(len(s["text"]) for s in scored)
    weighted = sum(s["score"] * len(s["text"]) for s in scored) / weight if weight else mean
    neutral = "neutral" if "neutral" in labels else None
    top = max(scored, key=lambda s: s["score"])
    bottom = min(scored, key=lambda s: s["score"])
    result.update(
        label=nearest_label(mean, labels, values), score=round(mean, 6), length_weighted_score=round(weighted, 6),
        non_neutral_share=round(sum(1 for s in scored if s["label"] != neutral) / len(scored), 6),
        most_positive={k: top[k] for k in ("index", "text", "label", "score")},
        most_negative={k: bottom[k] for k in ("index", "text", "label", "score")},
    )
    return result


def classify_document(text: str, scheme: str, service, about: list[str] | None = None,
                      classify: Callable[[list[str], str], list[dict]] | None = None, explain: bool = False,
                      explain_with: Callable[[list[str], str, str], list[dict]] | None = None) -> dict:
    """{"document": ..., "sentences": [...]} for one text, within the service's document limits.
    Sentences go to `classify(texts, scheme)` (default: the service's) DOCUMENT_BATCH at a time. With
    `explain`, the document's most positive and most negative sentences get their `words` (through
    `explain_with(texts, scheme, unit)`, default: the service's explain)."""
    classify = classify or service.classify
    labelling, limits = service.schemes[scheme], service.limits
    if len(text) > limits.max_document_chars:
        raise DocumentTooLarge("document_too_long",
                               f"document too long ({len(text):,} characters; at most {limits.max_document_chars:,})")
    spans: list[Span] = split_sentences(text)
    if len(spans) > limits.max_document_sentences:
        raise DocumentTooLarge("too_many_sentences", f"document has {len(spans):,} sentences; at most "
                               f"{limits.max_document_sentences:,} per document")
    numbered = list(enumerate(spans))  # index: the sentence's place in the whole document
    names = about_names(about)
    if names:
        mentions = mention_matcher(names)
        numbered = [(i, s) for i, s in numbered if mentions(text[s.start:s.end])]
    sentences = []
    for first in range(0, len(numbered), DOCUMENT_BATCH):
        chunk = numbered[first : first + DOCUMENT_BATCH]
        answers = classify([text[s.start:s.end] for _, s in chunk], scheme)
        for (index, span), result in zip(chunk, answers):
            entry = {"index": index, "start": span.start, "end": span.end, "text": text[span.start:span.end]}
            if "error" in result:
                entry["error"] = result["error"]
            else:
                entry.update(label=result["label"], score=result["score"], probs=result["probs"])
            sentences.append(entry)
    document = summarize(sentences, labelling.labels, labelling.values)
    if explain:
        explain_strongest_sentences(document, scheme, explain_with or service.explain, limits.max_explain_words)
    if names:
        document["about"] = {"names": names, "matched": len(sentences), "of": len(spans)}
        if not sentences:
            document["label"] = NO_MENTION
    return {"document": document, "sentences": sentences}


def explain_strongest_sentences(document: dict, scheme: str, explain: Callable[[list[str], str, str], list[dict]],
                                max_words: int) -> None:
    """The document's most positive and most negative sentence (the same one when it has one sentence)
    get `words`: /v1/explain's word list. A sentence over /v1/explain's word limit, or one the engine
    could not explain, gets `words_error` ({code, message}) instead; the document result stands."""
    from ..engine.occlusion import units

    extremes = [document[key] for key in ("most_positive", "most_negative") if document.get(key)]
    wanted = list(dict.fromkeys(s["text"] for s in extremes))
    answers: dict[str, dict] = {}
    for sentence in wanted:
        count = len(units(sentence))
        if count > max_words:
            answers[sentence] = {"error": {"code": "too_many_words", "message": f"sentence has {count} words; "
                                           f"at most {max_words} are explained per text"}}
        else:  # one call per sentence: each within what one /v1/explain request may cost
            answers[sentence] = explain([sentence], scheme, "word")[0]
    for entry in extremes:
        answer = answers[entry["text"]]
        if "error" in answer:
            entry["words_error"] = answer["error"]
        else:
            entry["words"] = answer["words"]


# -- files: one row per document --------------------------------------------------------------------------
def document_columns(prefix: str = "") -> list[str]:
    """The columns a document job appends. They follow the file job's layout (label, score, numbers,
    error), so every table writer, the saved results and resume work unchanged: the numbers are the
    length-weighted score, the non-neutral share, the sentences labelled and the indices (0-based, in the
    document) of the most positive and most negative sentence (their texts: --sentences-output)."""
    return [f"{prefix}{name}" for name in ("label", "score", "weighted_score", "non_neutral_share", "sentences",
                                           "most_positive_sentence", "most_negative_sentence", "error")]


SENTENCE_FIELDS = ("row", "sentence", "start", "end", "text", "label", "score", "error")


class DocumentScorer:
    """classify_chunk for the file job with --split sentences: each value a document. Rows are numbered
    from `first_row` (1-based data rows) in the order the job hands them over; each sentence is passed to
    `on_sentences(rows)` as a dict of SENTENCE_FIELDS plus p_<label> (for --sentences-output)."""

    def __init__(self, service, scheme: str, about: list[str] | None, first_row: int,
                 on_sentences: Callable[[list[dict]], None] = lambda rows: None):
        self.service = service
        self.scheme = scheme
        self.about = about
        self.next_row = first_row
        self.on_sentences = on_sentences

    def __call__(self, values: list) -> list:
        from .tables import NotText, RowResult, probability_column

        labels = self.service.schemes[self.scheme].labels
        results, sentence_rows = [], []
        for value in values:
            row, self.next_row = self.next_row, self.next_row + 1
            if isinstance(value, NotText):
                results.append(RowResult(error=value.reason))
                continue
            if value is None or (isinstance(value, str) and not value.strip()):
                results.append(RowResult(error="text is empty"))
                continue
            if not isinstance(value, str):
                results.append(RowResult(error="text must be a string"))
                continue
            try:
                answer = classify_document(value, self.scheme, self.service, self.about)
            except DocumentTooLarge as e:
                results.append(RowResult(error=str(e)))
                continue
            doc = answer["document"]
            if doc["label"] is None:
                results.append(RowResult(error="no sentence could be classified"))
                continue
            extremes = (doc["most_positive"]["index"], doc["most_negative"]["index"]) if doc["most_positive"] else (None, None)
            results.append(RowResult(doc["label"], doc["score"],
                                     (doc["length_weighted_score"], doc["non_neutral_share"], doc["scored"], *extremes)))
            for s in answer["sentences"]:
                entry = {"row": row, "sentence": s["index"], "start": s["start"], "end": s["end"], "text": s["text"],
                         "label": s.get("label"), "score": s.get("score"),
                         "error": s["error"]["message"] if "error" in s else ""}
                entry.update({probability_column(label): (s.get("probs") or {}).get(label) for label in labels})
                sentence_rows.append(entry)
        self.on_sentences(sentence_rows)
        return results
