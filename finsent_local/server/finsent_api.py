"""The FinSent API: POST /v1/classify (JSON, batches), POST /v1/explain (labels with word attributions),
POST /v1/documents (a long text as sentence labels and one document result) and GET /v1/label (plain
text, for formulas)."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from ..engine.occlusion import UNIT_KINDS
from ..engine.service import TooManyWords
from ..jobs.documents import DocumentTooLarge, about_names, classify_document
from .context import service
from .errors import ApiError
from .requests import bool_param, json_body, scheme_param

blueprint = Blueprint("finsent", __name__)


def _texts(body: dict, svc) -> tuple[list, bool]:
    """The request's texts, and whether it sent one ("text") rather than a list ("texts")."""
    single = "text" in body
    if single == ("texts" in body):
        raise ApiError(400, "invalid_request", 'send either "text" (one string) or "texts" (a list of strings)')
    texts = [body["text"]] if single else body["texts"]
    if not isinstance(texts, list) or not texts:
        raise ApiError(400, "invalid_request", '"texts" must be a non-empty list of strings', param="texts")
    if len(texts) > svc.limits.max_texts_per_request:
        raise ApiError(413, "too_many_texts",
                       f"at most {svc.limits.max_texts_per_request} texts per request (got {len(texts)})", param="texts")
    return texts, single


@blueprint.post("/v1/classify")
def classify_texts():
    body = json_body()
    svc = service()
    scheme = scheme_param(body.get("scheme"), svc.schemes)
    texts, single = _texts(body, svc)
    results = svc.classify(texts, scheme)
    g.cache_hits = sum(1 for r in results if r.get("cached"))
    labels = list(svc.schemes[scheme].labels)
    if single:
        return {"scheme": scheme, "labels": labels, **results[0]}
    return {"scheme": scheme, "labels": labels, "results": results}


@blueprint.post("/v1/explain")
def explain_texts():
    """Each text's label with, per word (or pair of words), how the answer changes without it."""
    body = json_body()
    svc = service()
    scheme = scheme_param(body.get("scheme"), svc.schemes)
    unit = body.get("unit", "word")
    if unit not in UNIT_KINDS:
        raise ApiError(400, "invalid_parameter", 'unit must be "word" or "phrase"', param="unit")
    texts, single = _texts(body, svc)
    try:
        svc.check_explain_words(texts, unit)
    except TooManyWords as e:
        raise ApiError(413, e.code, str(e), param="texts") from None
    results = svc.explain(texts, scheme, unit)
    g.cache_hits = sum(1 for r in results if r.get("cached"))
    labels = list(svc.schemes[scheme].labels)
    if single:
        return {"scheme": scheme, "labels": labels, **results[0]}
    return {"scheme": scheme, "labels": labels, "results": results}


@blueprint.post("/v1/documents")
def classify_a_document():
    body = json_body()
    svc = service()
    scheme = scheme_param(body.get("scheme"), svc.schemes)
    text = body.get("text")
    if not isinstance(text, str):
        raise ApiError(400, "invalid_request", '"text" must be the document, a string', param="text")
    about = body.get("about")
    if about is not None and not (isinstance(about, str) or (isinstance(about, list)
                                                              and all(isinstance(a, str) for a in about))):
        raise ApiError(400, "invalid_parameter", '"about" must be a name, "Name|Alias", or a list of names',
                       param="about")
    explain = bool_param(body, "explain")  # words for the most positive and most negative sentence
    g.cache_hits = 0

    def classify_counting_hits(texts: list[str], scheme: str) -> list[dict]:
        results = svc.classify(texts, scheme)
        g.cache_hits += sum(1 for r in results if r.get("cached"))
        return results

    try:
        answer = classify_document(text, scheme, svc, about_names(about), classify_counting_hits, explain=explain)
    except DocumentTooLarge as e:
        raise ApiError(413, e.code, str(e), param="text") from None
    return {"scheme": scheme, "labels": list(svc.schemes[scheme].labels), **answer}


@blueprint.get("/v1/label")
def label_as_text():
    """The bare label, for WEBSERVICE(): blank text gives a blank result (so a filled-down column over
    empty rows stays blank); other problems give 400 with a `#FINSENT! ...` line."""
    text = request.args.get("text")
    svc = service()
    try:
        scheme = scheme_param(request.args.get("scheme"), svc.schemes)
    except ApiError as e:
        return _plain(f"#FINSENT! {e.message}", 400)
    if text is None:
        return _plain("#FINSENT! the text parameter is missing (/v1/label?text=...)", 400)
    if not text.strip():
        return _plain("", 200)
    result = svc.classify([text], scheme)[0]
    g.cache_hits = int(bool(result.get("cached")))
    if "error" in result:
        return _plain(f"#FINSENT! {result['error']['message']}", 400)
    return _plain(result["label"], 200)


def _plain(text: str, status: int) -> Response:
    response = Response(text, status=status, mimetype="text/plain")
    response.headers["Cache-Control"] = "private, max-age=3600" if status == 200 else "no-store"
    return response
